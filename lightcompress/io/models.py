"""Loading and saving Keras models: `.h5` (Keras 2 or 3) and `.keras`.

Loading reads the file's config first, so a model that lightcompress must not or cannot load is
refused with a one-line reason before Keras runs anything: Lambda layers (Python code) unless the
caller trusts the file, Keras-2 TF-op layers, subclassed models, weights-only files.
Saving is atomic (a temporary file beside the target, then a rename), refuses to overwrite an
existing file unless forced, and never writes over an input.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
import zipfile
from pathlib import Path

import h5py
import keras

from .. import _keras_private as keras_private
from .. import layers as _registers_the_light_layers  # noqa: F401 - files holding them load
from ..errors import ModelLoadError, OutputPathError, UnsupportedModelError

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
    if path.suffix.lower() == ".keras":
        return _read_keras_config(path)
    return _read_h5_config(path)


def _weights_only(path):
    return (
        f"{path} holds weights only, no architecture; save the whole model with "
        f"model.save('model.keras') and pass that file."
    )


def _read_keras_config(path):
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
        raise ModelLoadError(
            f"{path} is not a Keras model archive ({err}); give a file written by model.save()."
        ) from None


def _read_h5_config(path):
    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            weights_only = raw is None and ("layer_names" in f.attrs or "model_weights" not in f)
    except OSError:
        raise ModelLoadError(
            f"{path} is not an HDF5 file; give a .h5 model saved by Keras's model.save()."
        ) from None
    if raw is None:
        if weights_only:
            raise ModelLoadError(_weights_only(path))
        raise ModelLoadError(f"{path} has no model config; give a file saved by model.save().")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise ModelLoadError(f"{path} holds a model config that is not valid JSON ({err}); the file is "
                             f"damaged: save the model again.") from None


def _layer_configs(config):
    """Every layer config in a model config, nested models included."""
    if isinstance(config, dict):
        if "class_name" in config and isinstance(config.get("config"), dict):
            yield config
        for value in config.values():
            yield from _layer_configs(value)
    elif isinstance(config, list):
        for value in config:
            yield from _layer_configs(value)


def _layer_name(layer_config):
    return layer_config["config"].get("name", "?")


def check_config(path, config, trust=False):
    """Refuse a model config that lightcompress cannot or must not load; explain how to fix it."""
    top = config.get("class_name")
    if top not in GRAPH_MODELS:
        raise UnsupportedModelError(
            f"{path} holds a subclassed model (class '{top}'); lightcompress rewrites Sequential "
            f"and Functional models only: rebuild it with keras.Sequential or the functional API."
        )
    layers = list(_layer_configs(config.get("config", {})))
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
    size of its weights file (the weights plus a little HDF5 metadata: reading the dataset shapes
    through the zip stream re-reads the archive, 3.7 s for VGG16), in `.h5` the dataset shapes."""
    path = Path(path)
    total = 0

    def add(_, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            total += int(obj.size) * obj.dtype.itemsize

    try:
        if path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as archive:
                if "model.weights.h5" not in archive.namelist():
                    return 0
                return int(archive.getinfo("model.weights.h5").file_size)
        else:
            with h5py.File(path, "r") as f:
                f.visititems(add)
    except (OSError, zipfile.BadZipFile, KeyError):
        return 0
    return total


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


def load_model(path, trust=False) -> keras.Model:
    """Load a Sequential or Functional model from `.keras` or `.h5`, uncompiled.

    ``trust=True`` allows Lambda layers (it turns Keras's safe mode off); never for untrusted files.
    A file whose weights would not fit in memory is refused before anything is allocated.
    """
    path = Path(path)
    check_config(path, read_config(path), trust=trust)
    check_memory(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = keras.models.load_model(path, compile=False, safe_mode=not trust)
    except Exception as err:  # Keras raises many types; report its first line
        unknown = _unknown_classes(read_config(path))
        if unknown:
            name, cls, module = unknown[0]
            raise ModelLoadError(
                f"{path}: layer '{name}' is of class '{cls}'{f' (module {module})' if module else ''}, which "
                f"Keras does not know; import the package defining it (registered with "
                f"keras.saving.register_keras_serializable) before loading, or rebuild the model with "
                f"Keras layers.") from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(
            f"{path} could not be loaded by Keras {keras.__version__}: {first}"
        ) from None
    if not isinstance(model, (keras.Sequential, keras.Model)) or not _is_graph_model(model):
        raise UnsupportedModelError(
            f"{path} loaded as a subclassed model ({type(model).__name__}); lightcompress rewrites "
            f"Sequential and Functional models only."
        )
    return model


def _graph_layers(config):
    """Layer configs of a model config's layer lists, nested models included."""
    for layer in (config.get("config") or {}).get("layers", []) if isinstance(config, dict) else []:
        if isinstance(layer, dict) and "class_name" in layer:
            yield layer
            yield from _graph_layers(layer)


def _unknown_classes(config) -> list:
    """(layer name, class name, module) of every layer whose class Keras cannot find."""
    found = []
    for layer in _graph_layers(config):
        cls, module = layer["class_name"], layer.get("module") or ""
        known = (keras.saving.get_registered_object(layer.get("registered_name") or cls) is not None
                 or hasattr(keras.layers, cls) or hasattr(keras.models, cls) or cls in GRAPH_MODELS)
        if not known:
            found.append((_layer_name(layer), cls, module))
    return found


def _is_graph_model(model):
    return keras_private.is_graph_model(model)


def default_output(path) -> Path:
    """`dir/model.h5` -> `dir/model.light.keras`."""
    path = Path(path)
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
    for source in inputs:
        if Path(source).exists() and path.resolve() == Path(source).resolve():
            raise OutputPathError(
                f"output {path} is the input file; lightcompress never overwrites its input: "
                f"choose another output path."
            )
    if path.exists() and not force:
        raise OutputPathError(f"{path} exists; pass force=True to overwrite it, or choose another output path.")
    return path


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


def atomic_write(path, write):
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    The temporary file is named ``.lightcompress-tmp-<pid>-<random>-<name>`` and removed on every
    exit path; ones left by a killed run are removed here, by the next write to the folder.
    """
    path = Path(path)
    remove_stale_temporaries(path.parent)
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        write(tmp)
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
    if not include_optimizer and getattr(model, "optimizer", None) is not None:
        model = plain_copy(model)

    def write(tmp):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.save(tmp)

    return atomic_write(path, write)


def write_json(data, path, *, force=False, inputs=()) -> Path:
    """Write ``data`` as indented JSON, atomically; never over an input, nor over an existing
    file unless forced."""
    path = check_output(path, force=force, inputs=inputs, suffixes=(".json",))
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))
