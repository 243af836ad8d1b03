"""Loading and saving Keras models: `.h5` (Keras 2 or 3) and `.keras`.

Loading reads the file's config first, so a model that lightcompress must not or cannot load is
refused with a one-line reason before Keras runs anything: Lambda layers (Python code) unless the
caller trusts the file, Keras-2 TF-op layers, classes Keras does not know, weights-only files.
Saving is atomic (a temporary file beside the target, then a rename), refuses to overwrite an
existing file unless forced, and never writes over an input; ``check_owned`` is the one rule of
what ``force`` may replace (only an earlier artefact of the output's kind). A subclassed or
keras-hub model holding LightLayer twins is saved with its substitutions recorded (``substitutions``), so it loads back.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import tempfile
import uuid
import warnings
import zipfile
import zlib
from pathlib import Path

import h5py
import keras
import numpy as np

from .. import _keras_private as keras_private
from .. import layers as _registers_the_light_layers  # noqa: F401 - files holding them load
from .._user_code import import_user_module
from ..errors import LightCompressWarning, ModelLoadError, OptionError, OutputPathError, UnsupportedModelError
from . import legacy, substitutions
from .files import check_regular_file, read_bounded, size_text

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
CODE_LAYERS = ("Lambda",)
TF_OP_LAYERS = ("TFOpLambda", "SlicingOpLambda")
GRAPH_MODELS = ("Sequential", "Functional", "Model")


def read_config(path) -> dict:
    """The architecture config stored in a model file, without loading the model."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file; check the path.")
    if path.is_dir():
        raise ModelLoadError(
            f"{path} is a folder (a TensorFlow SavedModel?); give a .keras or .h5 model file."
        )
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelLoadError(
            f"{path}: unknown model format '{path.suffix}'; give a .keras or .h5 file saved by Keras."
        )
    if path.name.endswith(".weights.h5"):
        raise ModelLoadError(_weights_only(path))
    check_regular_file(path, "a .keras or .h5 model file", ModelLoadError)  # a FIFO would hang open()
    config = _read_keras_config(path) if real_format(path) == "keras" else _read_h5_config(path)
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str) \
            or not (isinstance(config.get("config", {}), dict) or legacy.is_sequential_list(config)):
        kind = type(config).__name__ if not isinstance(config, dict) else "an object without a model class"
        raise ModelLoadError(f"{path} holds a model config that is {_article(kind)}, not a Keras model "
                             f"config; the file is damaged: save the model again.")
    try:
        _depth_ok(config, MAX_CONFIG_DEPTH)
    except RecursionError:
        raise ModelLoadError(f"{path} holds a model config nested deeper than {MAX_CONFIG_DEPTH} levels; "
                             f"the file is damaged or not a Keras model: save the model again.") from None
    return config


MAX_CONFIG_DEPTH = 200  # a real model config nests a few tens of levels (nested models, layer configs)

# What may be read from a model file, checked on the sizes the file declares before anything is
# read (and on the bytes while reading): a 1 MB `.keras` may hold a config.json inflating to 1 GiB.
# A config is JSON of about 1 KB per layer: ResNet152 (517 layers) 0.49 MB, EfficientNetB7 (816)
# 0.76 MB, ConvNeXtXLarge 0.26 MB (Keras 3.15). 64 MB is 80 times the largest, room for some 60,000
# layers, while parsing it (about 10 times the text in Python objects) still fits any machine.
MAX_CONFIG_BYTES = 64 * 2 ** 20
MAX_METADATA_BYTES = 2 ** 20  # metadata.json: Keras's version and the date saved, about 100 bytes
# An HDF5 attribute Keras reads (model_config, training_config, keras_version, layer_names,
# weight_names): the configs are the largest; Keras splits name lists into 64 KB attributes.
MAX_ATTRIBUTE_BYTES = MAX_CONFIG_BYTES
# Any other member of a `.keras` (the weights file, assets) is bounded by the memory available
# (check_memory) and by its expansion: Keras stores members uncompressed (1 time), deflate takes
# float weights to about 1.1 times; over 100 times its stored bytes and over 256 MB is a
# decompression bomb, not a model (Keras's own guard: 100 times and 4 GiB, then reads it whole).
MAX_EXPANSION = 100
EXPANSION_FLOOR = 256 * 2 ** 20
# Compressions read in bounded steps: zipfile inflates deflate a bounded chunk at a time, while
# bzip2 and lzma inflate a whole read at once (a few KB may become GBs); Keras writes neither.
BOUNDED_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
MEMBER_LIMITS = {"config.json": (MAX_CONFIG_BYTES, "a model config"),
                 "metadata.json": (MAX_METADATA_BYTES, "Keras's metadata")}


def _article(kind):
    return kind if kind.startswith("an ") else f"a {kind}"


def _depth_ok(value, budget):
    """Raise RecursionError when ``value`` nests deeper than ``budget`` (checked without recursion
    limits of its own: the walk is iterative)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > budget:
            raise RecursionError
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def real_format(path) -> str:
    """"keras" or "h5": the format the file's first bytes show (a ``.keras`` name may hold HDF5
    content), else the one its suffix names."""
    try:
        sniffed = legacy.sniff(path)
    except OSError:
        sniffed = None
    return sniffed or ("keras" if Path(path).suffix.lower() == ".keras" else "h5")


def _weights_only(path):
    return (
        f"{path} holds weights only, no architecture; save the whole model with "
        f"model.save('model.keras') and pass that file."
    )


def _too_big(path, name, size, limit, what, where="inflates to"):
    return (f"{path}: {name} {where} {size:,} bytes, over the {size_text(limit)} {what} may take; "
            f"the file is damaged or not a Keras model.")


def open_archive(path) -> zipfile.ZipFile:
    """The `.keras` zip archive at ``path``, its directory checked before any member is inflated:
    no member encrypted or compressed in a way read unbounded, config.json and metadata.json
    within their limits, no other member a decompression bomb. One line when it cannot be read."""
    try:
        archive = zipfile.ZipFile(path)
    except UnicodeDecodeError:
        raise ModelLoadError(f"{path}: the archive's member names are marked UTF-8 but are not; the file is "
                             f"damaged: save the model again.") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ModelLoadError(
            f"{path} is not a Keras model archive ({err}); give a file written by model.save()."
        ) from None
    try:
        _check_members(path, archive)
    except BaseException:
        archive.close()
        raise
    return archive


def _check_members(path, archive):
    for info in archive.infolist():
        name = info.filename
        if info.flag_bits & 0x1:
            raise ModelLoadError(f"{path}: member '{name}' is encrypted, which Keras never writes; extract "
                                 f"the archive with its password, or save the model again.")
        if info.compress_type not in BOUNDED_COMPRESSIONS:
            method = zipfile.compressor_names.get(info.compress_type, f"method {info.compress_type}")
            raise ModelLoadError(f"{path}: member '{name}' is compressed with {method}, which lightcompress "
                                 f"does not read (only stored or deflate); save the model again.")
        if name in MEMBER_LIMITS:
            limit, what = MEMBER_LIMITS[name]
            if info.file_size > limit:
                raise ModelLoadError(_too_big(path, name, info.file_size, limit, what))
        elif info.file_size > max(EXPANSION_FLOOR, MAX_EXPANSION * info.compress_size):
            raise ModelLoadError(
                f"{path}: {name} inflates to {info.file_size:,} bytes from {info.compress_size:,} stored, over "
                f"{MAX_EXPANSION} times; the file is damaged or a decompression bomb, not a Keras model.")


def read_member(path, archive, name) -> bytes:
    """Member ``name`` (config.json or metadata.json) of an archive from ``open_archive``, read in
    bounded chunks: never more than its limit + 1 bytes, whatever its directory entry says."""
    limit, what = MEMBER_LIMITS[name]
    with archive.open(name) as member:
        data = read_bounded(member, limit)
    if data is None:
        raise ModelLoadError(
            f"{path}: {name} inflates past the {size_text(limit)} {what} may take (its directory entry "
            f"says {archive.getinfo(name).file_size:,} bytes); the file is damaged or not a Keras model.")
    return data


def _read_keras_config(path):
    try:
        with open_archive(path) as archive:
            raw = read_member(path, archive, "config.json")
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ModelLoadError(f"{path} holds a model config nested too deeply to read; the file is damaged "
                             f"or not a Keras model: save the model again.") from None
    except UnicodeDecodeError:
        raise ModelLoadError(f"{path} holds a config.json that is not UTF-8 text; the file is damaged: "
                             f"save the model again.") from None
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError, EOFError, zlib.error,
            RuntimeError, NotImplementedError) as err:
        raise ModelLoadError(
            f"{path} is not a Keras model archive ({str(err).strip() or type(err).__name__}); give a file "
            f"written by model.save()."
        ) from None


def _declared_attribute_bytes(attrs, name) -> int:
    """Bytes an HDF5 attribute declares (its stored size, or its elements times their type's
    size if more), read from its header: nothing of its value is read."""
    aid = attrs.get_id(name)
    shape = aid.shape
    elements = 0 if shape is None else int(np.prod(shape, dtype=np.float64))
    try:
        stored = aid.get_storage_size()
    except RuntimeError:  # h5py raises on a size of 0 (an empty attribute, e.g. an input layer's weight_names)
        stored = 0
    return int(max(stored, elements * aid.get_type().get_size()))


def check_attributes(path, f):
    """Refuse an HDF5 model any of whose attributes (model_config, training_config, layer_names,
    ...: what Keras reads) declares more than MAX_ATTRIBUTE_BYTES, before any value is read."""
    def check(where, obj):
        for name in obj.attrs:
            declared = _declared_attribute_bytes(obj.attrs, name)
            if declared > MAX_ATTRIBUTE_BYTES:
                what = "a model config" if name.endswith("_config") else "an HDF5 attribute of a model"
                place = f"attribute '{name}'" + ("" if where == "/" else f" of {where}")
                raise ModelLoadError(_too_big(path, place, declared, MAX_ATTRIBUTE_BYTES, what, "declares"))

    check("/", f)
    f.visititems(lambda name, obj: check(f"/{name}", obj))


def _read_h5_config(path):
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise ModelLoadError(
            f"{path} is not an HDF5 file; give a .h5 model saved by Keras's model.save()."
        ) from None
    try:
        with f:
            check_attributes(path, f)
            raw = f.attrs.get("model_config")
            weights_only = raw is None and ("layer_names" in f.attrs or "model_weights" not in f)
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as err:  # h5py's errors on a damaged header
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ModelLoadError(f"{path}: its HDF5 attributes cannot be read ({reason}); the file is damaged: "
                             f"save the model again.") from None
    if raw is None:
        if weights_only:
            raise ModelLoadError(_weights_only(path))
        raise ModelLoadError(f"{path} has no model config; give a file saved by model.save().")
    if isinstance(raw, (bytes, str)) and len(raw) > MAX_ATTRIBUTE_BYTES:  # a variable-length string
        raise ModelLoadError(_too_big(path, "attribute 'model_config'", len(raw), MAX_ATTRIBUTE_BYTES,
                                      "a model config", "holds"))
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        raise ModelLoadError(f"{path} holds a model_config attribute of type {type(raw).__name__}, not JSON "
                             f"text; the file is damaged: save the model again.")
    try:
        return json.loads(raw)
    except RecursionError:
        raise ModelLoadError(f"{path} holds a model config nested too deeply to read; the file is damaged "
                             f"or not a Keras model: save the model again.") from None
    except json.JSONDecodeError as err:
        raise ModelLoadError(f"{path} holds a model config that is not valid JSON ({err}); the file is "
                             f"damaged: save the model again.") from None


def _layer_name(layer_config):
    return layer_config["config"].get("name", "?")


def check_config(path, config, trust=False):
    """Refuse a model config that lightcompress cannot or must not load; explain how to fix it."""
    layers = list(legacy.layer_configs(config.get("config", {})))
    for layer in layers:
        if layer["class_name"] in TF_OP_LAYERS:
            raise ModelLoadError(
                f"{path}: layer '{_layer_name(layer)}' is a {layer['class_name']} (a raw TensorFlow op "
                f"saved by Keras 2), which Keras 3 cannot load; rebuild the model with Keras layers "
                f"in place of tf ops and save it again."
            )
    if not trust:
        for layer in layers:
            if layer["class_name"] in CODE_LAYERS:
                raise ModelLoadError(
                    f"{path}: layer '{_layer_name(layer)}' is a Lambda layer holding Python code, "
                    f"refused in safe mode; pass trust=True only if you trust the file's "
                    f"author."
                )


def declared_weight_bytes(path) -> int:
    """Bytes of the weights a model file declares, no weight loaded: in a `.keras` archive the
    sizes its directory declares for its weights file (the weights plus a little HDF5 metadata:
    reading the dataset shapes through the zip stream re-reads the archive, 3.7 s for VGG16) and
    every other member but the two JSON files (assets: all are read at load), in `.h5` the
    dataset shapes."""
    path = Path(path)
    try:
        if real_format(path) == "keras":
            with zipfile.ZipFile(path) as archive:
                return sum(int(info.file_size) for info in archive.infolist() if info.filename not in MEMBER_LIMITS)
        with h5py.File(path, "r") as f:
            return _dataset_bytes(f)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):
        return 0


def _dataset_bytes(group) -> int:
    """Bytes of every dataset under an HDF5 group."""
    sizes = []
    group.visititems(lambda _, obj: sizes.append(int(obj.size) * obj.dtype.itemsize)
                     if isinstance(obj, h5py.Dataset) else None)
    return sum(sizes)


def optimizer_bytes(path) -> int:
    """Bytes of optimizer state (Adam's moments, ...) a model file holds beside the model's
    weights: an `.h5`'s ``optimizer_weights`` group, a `.keras` archive's ``optimizer`` group.
    0 when none, or when the file cannot be read."""
    try:
        if real_format(path) == "keras":
            with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as member, \
                    h5py.File(member, "r") as f:
                return _dataset_bytes(f["optimizer"]) if "optimizer" in f else 0
        with h5py.File(path, "r") as f:
            return _dataset_bytes(f["optimizer_weights"]) if "optimizer_weights" in f else 0
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):
        return 0


def available_memory() -> int | None:
    """Bytes of memory available to this process (MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(path, weight_bytes=None, available=None):
    """Refuse a model whose weights alone would not fit in the memory available, before Keras
    allocates them (loading takes about twice the weights: the file's copy and the model's)."""
    weight_bytes = declared_weight_bytes(path) if weight_bytes is None else weight_bytes
    available = available_memory() if available is None else available
    if available is not None and 2 * weight_bytes > available:
        raise ModelLoadError(
            f"{path} declares {weight_bytes / 2**30:.2f} GiB of weights; loading it needs about "
            f"{2 * weight_bytes / 2**30:.2f} GiB and this machine has {available / 2**30:.2f} GiB available: "
            f"use a machine with more memory.")


def load_model(path, trust=False, custom_objects=None) -> keras.Model:
    """Load a model from `.keras` or `.h5`, uncompiled: Sequential, Functional, or a subclassed or
    keras-hub model whose class is importable (LightLayer twins put back in place).

    ``trust=True`` allows Lambda layers (it turns Keras's safe mode off); never for untrusted files.
    ``custom_objects``: a Python file or module defining (and registering) the model's own
    classes, imported first; it runs that code. A file whose weights would not fit in memory is
    refused before anything is allocated. A file of older Keras is read through a rewritten copy of
    its config (``legacy``; one ``LightCompressWarning`` per kind of rewrite) and, where Keras 3
    still cannot read a Keras 2 file's weights, with the weights tf_keras reads (a worker process).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise OptionError(f"model path={path!r} is not a path; give the path of a .keras or .h5 file.")
    if custom_objects is not None:
        import_custom_objects(custom_objects)
    path = Path(path)
    config = read_config(path)
    check_config(path, config, trust=trust)
    check_memory(path)
    fmt = real_format(path)
    fan_in = legacy.first_kernel_fan_in(path, fmt) if legacy.needs_fan_in(config) else None
    fixed, rewrites = legacy.rewrite_config(config, fan_in, keras_2=legacy.saved_by_keras_2(path, fmt))
    notes = rewrites.lines()
    if fmt != ("keras" if path.suffix.lower() == ".keras" else "h5"):
        notes.insert(0, f"{'HDF5' if fmt == 'h5' else 'a Keras archive'} under a '{path.suffix}' name: read as .{fmt}")
    for note in notes:
        warnings.warn(f"{path}: {note}", LightCompressWarning, stacklevel=2)
    with tempfile.TemporaryDirectory(prefix="lightcompress-") as folder:
        readable = legacy.write_copy(path, fmt, fixed, folder) if notes else path
        try:
            model = _keras_load(path, readable, fixed, trust)
        except ModelLoadError as err:
            model = _carried(path, fmt, fixed, trust, err, folder)
    if not isinstance(model, keras.Model):
        raise UnsupportedModelError(f"{path} loaded as a {type(model).__name__}, not a Keras model.")
    check_finite(model, f"{path}: ")
    return model


def _carried(path, fmt, fixed, trust, err, folder) -> keras.Model:
    """Keras 3 could not load a file Keras 2 wrote: the model built from its rewritten config, the
    weights carried from tf_keras (in a worker process) layer by layer. ``err`` stands when the
    config itself does not build (Keras's reason says why) or Keras 3 wrote the file."""
    if _unknown_classes(fixed) or not legacy.saved_by_keras_2(path, fmt):
        raise err
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = legacy.build_from_config(fixed, trust)
    except Exception as build_err:  # noqa: BLE001 - the config does not build: Keras's reason in err says why
        code = legacy.unreadable_lambda(fixed, build_err)
        raise (ModelLoadError(f"{path}: {code}") if code else err) from None
    reason = str(err).split(f"could not be loaded by Keras {keras.__version__}: ", 1)[-1]
    try:
        count = legacy.carry_weights(path, model, folder)
    except legacy.CarryError as why:
        raise ModelLoadError(f"{err}; carrying its weights from tf_keras did not work either: {why}") from None
    warnings.warn(f"{path}: weights carried from tf_keras layer by layer ({count} layers) into the model its "
                  f"config builds; Keras 3 could not read them: {reason}", LightCompressWarning, stacklevel=3)
    return model


def import_custom_objects(module) -> None:
    """Import the file (``path/to/net.py``) or module (``pkg.net``) that registers a model's classes."""
    if not isinstance(module, (str, os.PathLike)):
        raise OptionError(f"custom_objects={module!r} is not a module; give a Python file or module name.")
    import_user_module(str(module), OptionError, "custom_objects file")


def check_finite(model, where="") -> None:
    """A one-line ``ModelLoadError`` naming the first weight of ``model`` holding NaN or inf.

    Called on every model loaded and before every model is saved: a model with non-finite weights
    computes nothing useful, and fine-tuning or factorising it only spreads the NaN.
    """
    for weight in model.weights:
        values = np.asarray(weight.numpy())
        if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            bad = int(values.size - np.count_nonzero(np.isfinite(values)))
            raise ModelLoadError(
                f"{where}weight '{weight.path}' holds {bad} NaN or infinite value{'s' if bad != 1 else ''}; "
                f"the model is damaged: restore or retrain it.")


def _keras_load(path, readable, config, trust):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return keras.models.load_model(readable, compile=False, safe_mode=not trust)
    except Exception as err:  # Keras raises many types; report the layer and the innermost reason
        unknown = _unknown_classes(config)
        if unknown:
            name, cls, module = unknown[0]
            raise ModelLoadError(
                f"{path}: layer '{name}' is of class '{cls}'{f' (module {module})' if module else ''}, which "
                f"Keras does not know; give the module that defines it (registered with "
                f"keras.saving.register_keras_serializable): custom_objects=path/to/module.py.") from None
        raise ModelLoadError(f"{path} could not be loaded by Keras {keras.__version__}: {_keras_reason(err)}") from None


def _keras_reason(err) -> str:
    """Keras's error in one line: the layer it failed on and the informative line of the innermost
    exception (the one naming inputs and shapes), not the layer configs it quotes, the generic
    "Exception encountered when calling X.call()." heading, the arguments it lists or the terminal
    colour codes; whitespace collapsed, at most ``most`` characters."""
    most = 300  # its shapes and names fit; a quoted config does not
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", str(err)).strip()
    layer = re.search(r"deserializing class '([^']+)' using config=\{'name': '([^']+)'", text)
    inner = text.rsplit("Exception encountered:", 1)[-1]
    inner = re.split(r"^\s*Arguments received by ", inner, maxsplit=1, flags=re.MULTILINE)[0]
    lines = [" ".join(line.split()) for line in inner.splitlines()]
    lines = [line for line in lines if line and not line.startswith("•")]
    informative = [line for line in lines if not re.match(r"Exception encountered when calling \S+", line)]
    reason = (informative or lines or [type(err).__name__])[0]
    if len(reason) > most:
        reason = reason[:most - 3].rstrip() + "..."
    return f"layer '{layer.group(2)}' ({layer.group(1)}): {reason}" if layer else reason


def _graph_layers(config):
    """Layer configs of a model config's layer lists, nested models included."""
    for layer in (config.get("config") or {}).get("layers", []) if isinstance(config, dict) else []:
        if isinstance(layer, dict) and "class_name" in layer:
            yield layer
            yield from _graph_layers(layer)


def _unknown_classes(config) -> list:
    """(layer name, class name, module) of the model and every layer whose class Keras cannot find."""
    found = []
    config = substitutions.unwrap(config)
    for layer in [config, *_graph_layers(config)]:
        cls, module = layer["class_name"], layer.get("module") or ""
        known = (keras.saving.get_registered_object(layer.get("registered_name") or cls) is not None
                 or hasattr(keras.layers, cls) or hasattr(keras.models, cls) or cls in GRAPH_MODELS
                 or _importable(cls, module))
        if not known:
            found.append((_layer_name(layer), cls, module))
    return found


def _importable(cls, module) -> bool:
    """Whether Keras finds ``cls`` by importing ``module`` (it does so for keras-hub classes)."""
    if module.split(".", 1)[0] not in ("keras_hub", "keras_nlp", "keras_cv"):
        return False
    try:
        return isinstance(vars(importlib.import_module(module)).get(cls), type)
    except Exception:  # noqa: BLE001 - not installed, or broken: unknown
        return False


def default_output(path) -> Path:
    """`dir/model.h5` -> `dir/model.light.keras`."""
    path = Path(path)
    if not path.name:  # "." or "/": named by the folder it is (loading then says it is a folder)
        path = path.resolve()
    return path.with_name(f"{path.stem}.light.keras")


def check_output(path, *, force=False, inputs=(), suffixes=(".keras", ".h5")) -> Path:
    """Validate an output path before any long work: suffix, folder, no input, no silent overwrite."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise OutputPathError(f"output {path} must end in {' or '.join(suffixes)}."
                              if any(suffixes) else f"output {path} must be a folder name without a suffix.")
    if not path.parent.is_dir():
        raise OutputPathError(f"output folder {path.parent} does not exist; create it first.")
    if not os.access(path.parent, os.W_OK):
        raise OutputPathError(f"output folder {path.parent} is not writable; choose another output path.")
    check_owned(path, folder=not any(suffixes), inputs=inputs)
    if path.exists() and not force:
        raise OutputPathError(f"{path} exists; pass force=True to overwrite it, or choose another output path.")
    return path


# What ``force=True`` may replace: only what lightcompress itself writes there. A SavedModel folder
# holds these entries and nothing else (``variables/`` only the variables files).
SAVED_MODEL_FILES = {"saved_model.pb", "saved_model.pbtxt", "fingerprint.pb", "keras_metadata.pb"}
SAVED_MODEL_FOLDERS = {"variables", "assets", "assets.extra"}


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _foreign_entries(folder: Path) -> list:
    """The entries of ``folder`` that a SavedModel does not have (sorted; ``variables/x`` for
    ones inside ``variables/``); links count as foreign."""
    foreign = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_symlink():
            foreign.append(entry.name)
        elif entry.name in SAVED_MODEL_FILES and entry.is_file():
            continue
        elif entry.name in SAVED_MODEL_FOLDERS and entry.is_dir():
            if entry.name == "variables":
                foreign += [f"variables/{v.name}" for v in sorted(entry.iterdir(), key=lambda e: e.name)
                            if v.is_symlink() or not v.is_file()
                            or not (v.name == "variables.index" or v.name.startswith("variables.data-"))]
        else:
            foreign.append(entry.name)
    return foreign


def check_owned(path, *, folder=False, inputs=()) -> None:
    """Refuse an output ``path`` whose existing entry ``force=True`` must not replace. The one
    ownership rule of every output, checked before the work and again at the moment of replacement.

    Whatever ``force`` says, an output never is: a symbolic link (refused: neither the link nor
    what it points to is replaced), an input or a folder holding one, the working folder or a
    folder holding it. A file output (``folder=False``) replaces only a regular file; a SavedModel
    output (``folder=True``) only an empty folder or one holding exactly a SavedModel
    (``saved_model.pb``/``.pbtxt``, ``variables/``, ``assets/``, ``assets.extra/``,
    ``fingerprint.pb``, ``keras_metadata.pb``). A path that does not exist passes.
    """
    path = Path(path)
    if path.is_symlink():
        raise OutputPathError(f"output {path} is a symbolic link; lightcompress replaces neither a link nor "
                              f"what it points to: choose another output path.")
    if not path.exists():
        return
    real = path.resolve()
    for source in map(Path, inputs):
        if source.exists() and _same(path, source):
            raise OutputPathError(
                f"output {path} is the input {'folder' if source.is_dir() else 'file'}; lightcompress never "
                f"overwrites its input: choose another output path."
            )
    here = Path.cwd().resolve()
    if real == here or real in here.parents:
        raise OutputPathError(f"output {path} {'is' if real == here else 'holds'} the working folder; "
                              f"lightcompress never replaces it: choose a new "
                              f"{'folder' if folder else 'file'} name.")
    for source in map(Path, inputs):
        if source.exists() and real in source.resolve().parents:
            raise OutputPathError(f"output {path} is a folder holding the input {source}; lightcompress never "
                                  f"replaces it: choose a new {'folder' if folder else 'file'} name.")
    if not folder:
        if path.is_dir():
            raise OutputPathError(f"output {path} is a folder; force=True replaces only an earlier file: "
                                  f"choose a file name.")
        if not path.is_file():
            raise OutputPathError(f"output {path} is not a regular file; force=True replaces only an earlier "
                                  f"file: choose another output path.")
        return
    if not path.is_dir():
        raise OutputPathError(f"output {path} is a file; a SavedModel is a folder: choose another output path.")
    foreign = _foreign_entries(path)
    if foreign:
        names = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise OutputPathError(f"output {path} is a folder holding other files ({names}); force=True replaces "
                              f"only an earlier SavedModel folder: choose a new folder name.")
    if any(path.iterdir()) and not any((path / name).is_file() for name in ("saved_model.pb", "saved_model.pbtxt")):
        raise OutputPathError(f"output {path} is a folder without a saved_model.pb; force=True replaces only "
                              f"an earlier SavedModel folder: choose a new folder name.")


TMP_PREFIX = ".lightcompress-tmp-"


def remove_stale_temporaries(folder: Path):
    """Remove temporary files left in ``folder`` by a killed lightcompress run (its pid is gone)."""
    for stale in folder.glob(f"{TMP_PREFIX}*"):
        try:
            pid = int(stale.name[len(TMP_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            try:
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
            except OSError:
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def name_max(folder) -> int:
    """The longest file name ``folder``'s file system takes (255 where it cannot be asked)."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def temporary_beside(path, suffix=None) -> Path:
    """A temporary name in ``path``'s folder: ``.lightcompress-tmp-<pid>-<random>-<name>``, the name
    shortened (its suffix, or ``suffix``, kept) so the whole fits the file system's NAME_MAX
    whenever ``path``'s own name fits.

    >>> len(temporary_beside(Path("/tmp") / ("m" * 249 + ".keras")).name) <= 255
    True
    >>> temporary_beside(Path("/tmp/model.keras")).suffix
    '.keras'
    """
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    head = f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-"
    stem = path.name[:len(path.name) - len(path.suffix)] if path.suffix else path.name
    room = name_max(path.parent if path.parent.exists() else Path(".")) - len(head.encode()) - len(suffix.encode())
    stem = stem.encode()[:max(room, 1)].decode(errors="ignore") or "m"
    return path.with_name(f"{head}{stem}{suffix}")


def atomic_write(path, write, inputs=()):
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place
    (after checking again that ``path`` is one ``check_owned`` lets it replace, never an input).

    The temporary file is named ``.lightcompress-tmp-<pid>-<random>-<name>`` and removed on every
    exit path; ones left by a killed run are removed here, by the next write to the folder.
    """
    path = Path(path)
    remove_stale_temporaries(path.parent)
    tmp = temporary_beside(path)
    try:
        write(tmp)
        check_owned(path, inputs=inputs)  # again at the moment of replacement: the path may have changed
        os.replace(tmp, path)
    except OSError as err:
        raise OutputPathError(f"could not write {path}: {err.strerror or err}; free some space or "
                              f"choose another output path.") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def plain_copy(model):
    """A copy of ``model`` with the same weights and no optimizer state (a smaller file)."""
    if substitutions.in_place(model):
        return substitutions.copy_model(model)
    with keras_private.unsafe_scope():  # an in-memory model: no code is loaded from a file
        copy = model.__class__.from_config(model.get_config())  # architecture only: not compiled
    copy.set_weights(model.get_weights())
    return copy


def save_model(model, path, *, force=False, inputs=(), include_optimizer=False) -> Path:
    """Save atomically to `.keras` or `.h5`; returns the path written.

    The optimizer state is left out unless asked for: the file holds the model as it will be
    used, and its size on disk is the model's.
    """
    path = check_output(path, force=force, inputs=inputs)
    check_finite(model, f"not saved to {path}: ")
    if not include_optimizer and getattr(model, "optimizer", None) is not None:
        model = plain_copy(model)
    recorded = substitutions.records(model)
    if recorded and path.suffix.lower() != ".keras":
        raise OutputPathError(f"output {path}: a {type(model).__name__} holding LightLayers is saved to "
                              f".keras only (its substitutions are recorded there); use a .keras name.")

    def write(tmp):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not recorded:
                model.save(tmp)
                return
            raw = tmp.with_name(f"{tmp.stem}.raw.keras")  # starts like tmp: removed if left by a killed run
            try:
                model.save(raw)
                substitutions.rewrite_archive(raw, tmp, recorded)
            finally:
                if raw.exists():
                    raw.unlink()

    return atomic_write(path, write, inputs)


def write_json(data, path, *, force=False, inputs=()) -> Path:
    """Write ``data`` as indented JSON, atomically; never over an input, nor over an existing
    file unless forced."""
    path = check_output(path, force=force, inputs=inputs, suffixes=(".json",))
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"), inputs)


def check_model(model) -> keras.Model:
    """``model`` if it is a Keras model; a one-line ``OptionError`` naming what was given otherwise."""
    if not isinstance(model, keras.Model):
        raise OptionError(f"model={type(model).__name__} is not a Keras model; give a keras.Model or the "
                          f"path of a .keras or .h5 file.")
    return model
