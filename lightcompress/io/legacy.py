"""Model files saved by older Keras, made loadable by rewriting their config before Keras sees it.

Nothing in the file is executed: the config is JSON, rewritten as data, and the rewritten copy
is what Keras loads (the user's file is never touched). Each kind of rewrite is reported in one
line (see ``Rewrites.lines``):

- initializer, regularizer and constraint configs carrying ``dtype`` (TF 2.0-2.3 tf.keras);
- activations saved as TensorFlow function names (``softmax_v2`` is ``softmax``);
- an input shape with ``None`` where the first weighted layer's kernel says the size;
- HDF5 content under a ``.keras`` name (the format is sniffed from the first bytes);
- ``groups: 1`` in a DepthwiseConv2D (tf.keras 2.3-2.15 wrote it for every one);
- ``time_major`` in a recurrent layer (every Keras 2 LSTM, GRU, SimpleRNN, ConvLSTM);
- ``batch_input_shape`` on a Sequential's first layer: an InputLayer of that shape put before it
  (Keras 3 would read it as a shape without the batch, one axis too many);
- an initializer saved as a function reference (``random_normal``): its Keras class;
- a Sequential config that is a bare list of layers (Keras 2.0-2.2);
- a wrapped layer (Bidirectional, TimeDistributed) without the ``module`` key Keras 3 needs there;
- a ``.keras`` of tf.keras 2.13-2.15: Keras 2's model modules, BatchNormalization axes as lists;
- a nested Functional's one input and output saved as lists of one;
- a model name TensorFlow's graphs refuse (``>``), its characters replaced;
- ``hard_sigmoid`` in a file Keras 2 wrote: Keras 2's (``0.2·x + 0.5``), not Keras 3's (``x/6 + 0.5``).

Each rule is one small function over one layer config (``LAYER_RULES``) or over one Sequential's
layer list (``SEQUENTIAL_RULES``), or over the whole config, with the note it adds (``NOTES``).
Where the rewritten config builds but Keras 3 still cannot read a Keras 2 file's weights,
``build_from_config`` builds the model and ``carry_weights`` sets its weights, layer by layer by
name, to those tf_keras reads from the file in a worker process (``tf_keras_weights.py``).

>>> config = {"class_name": "Sequential", "config": {"layers": [
...     {"class_name": "Dense", "config": {"name": "d", "activation": "softmax_v2",
...      "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None, "dtype": "float32"}}}}]}}
>>> fixed, done = rewrite_config(config)
>>> fixed["config"]["layers"][0]["config"]["activation"], done.lines()
('softmax', ["dropped 'dtype' from 1 initializer config (layer 'd')", "activation 'softmax_v2' read as 'softmax' (layer 'd')"])
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import keras
import numpy as np

from .. import _keras_private as keras_private
from ..layers import keras2_activations

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"

# TensorFlow function names saved as activations by tf.keras 2.x, and the Keras 3 name for each.
ACTIVATION_RENAMES = {"softmax_v2": "softmax", "log_softmax_v2": "log_softmax", "relu_v2": "relu",
                      "swish_v2": "swish", "gelu_v2": "gelu"}
OBJECT_KEYS = ("_initializer", "_regularizer", "_constraint")
SHAPE_KEYS = ("batch_shape", "batch_input_shape")
GRAPH_CLASSES = ("Sequential", "Functional", "Model")
RECURRENT = ("LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
# Keras 2 initializer functions (``keras.initializers.random_normal`` and its aliases), by the name
# a config saved them under, and the Keras 3 class of each.
INITIALIZER_FUNCTIONS = {
    "random_normal": "RandomNormal", "random_uniform": "RandomUniform", "truncated_normal": "TruncatedNormal",
    "glorot_uniform": "GlorotUniform", "glorot_normal": "GlorotNormal", "he_uniform": "HeUniform",
    "he_normal": "HeNormal", "lecun_uniform": "LecunUniform", "lecun_normal": "LecunNormal",
    "orthogonal": "Orthogonal", "zeros": "Zeros", "ones": "Ones", "identity": "Identity",
}
# Model classes in a `.keras` written by tf.keras 2.13-2.15 name Keras 2's modules
# (``keras.src.engine.functional``), which Keras 3 cannot import; the module Keras 3 writes for each.
KERAS_2_PACKAGES = ("keras", "tf_keras")
KERAS3_MODEL_MODULES = {"Functional": "keras.src.models.functional", "Sequential": "keras",
                        "Model": "keras.src.models.model"}
# The note of each rule below, {layers} the layers it rewrote.
NOTES = {
    "depthwise-groups": "dropped 'groups': 1 from DepthwiseConv2D {layers} (tf.keras 2.3-2.15 wrote it; "
                        "a depthwise convolution has no groups)",
    "time-major": "dropped 'time_major': false from recurrent {layers} (Keras 2 wrote it; Keras 3 is "
                  "batch-major only)",
    "first-layer-shape": "put an InputLayer before {layers}: Keras 2's 'batch_input_shape' on a Sequential's "
                         "first layer",
    "function-initializer": "initializer saved as a function read as its Keras class ({layers})",
    "wrapped-module": "wrapper {layers}: the wrapped layer's config given the 'module' key Keras 3 needs "
                      "there (Keras 2 wrote none)",
    "engine-module": "model{s} {names}: Keras 2's module (keras.src.engine, tf_keras.src.engine) read as Keras 3's",
    "norm-axis": "BatchNormalization {layers}: axis [n] read as n (Keras 2 wrote a list)",
    "hard-sigmoid": "'hard_sigmoid' of {layers} read as Keras 2's (clip(0.2x + 0.5), not Keras 3's clip(x/6 + 0.5))",
    "graph-name": "model {names}: TensorFlow's graphs refuse its characters",
    "sequential-list": "Sequential {names}: its config, a bare list of layers (Keras 2.0-2.2), read as a named list",
    "nested-single-io": "nested model{s} {names}: its one input and output read as single tensors (Keras 2 "
                        "wrote lists of one, which Keras 3 passes on as lists)",
}


def sniff(path) -> str | None:
    """The file's real format from its first bytes: "h5", "keras" (a zip archive) or None.

    An HDF5 file may start with a user block (``h5py.File(..., userblock_size=512)``): its
    signature is then at 512, 1024, 2048, ... (where the HDF5 library itself looks), and the first
    bytes are anything, a zip's magic included. A zip's magic at 0 is taken for a zip unless the
    file has no zip directory at its end and an HDF5 signature at a user-block offset.
    """
    with open(path, "rb") as f:
        head = f.read(8)
        if head.startswith(HDF5_MAGIC):
            return "h5"
        size = f.seek(0, 2)
        offset, user_block = 512, False
        while offset + len(HDF5_MAGIC) <= size and not user_block:
            f.seek(offset)
            user_block = f.read(len(HDF5_MAGIC)) == HDF5_MAGIC
            offset *= 2
        if head.startswith(ZIP_MAGIC) and not (user_block and not zipfile.is_zipfile(f)):
            return "keras"
    return "h5" if user_block else None


@dataclass
class Rewrites:
    """What was rewritten, by kind: {kind: [layer names or details]}."""

    done: dict = field(default_factory=dict)

    def add(self, kind: str, detail: str):
        self.done.setdefault(kind, []).append(detail)

    def __bool__(self):
        return bool(self.done)

    def lines(self) -> list[str]:
        out = []
        for kind, details in self.done.items():
            layers = ", ".join(f"'{d}'" for d in dict.fromkeys(details))
            if kind in NOTES:
                names = list(dict.fromkeys(details))
                shown = ", ".join(f"'{d}'" for d in names[:3])
                shown += f" and {len(names) - 3} more" if len(names) > 3 else ""
                plural = "s" if len(names) != 1 else ""
                out.append(NOTES[kind].format(layers=f"layer{plural} {shown}", names=shown, s=plural))
                continue
            if kind == "dtype":
                n = len(details)
                out.append(f"dropped 'dtype' from {n} initializer config{'s' if n != 1 else ''} "
                           f"(layer{'s' if len(set(details)) != 1 else ''} {layers})")
            elif kind.startswith("activation:"):
                old, new = kind.split(":", 1)[1].split("->")
                out.append(f"activation '{old}' read as '{new}' (layer{'s' if len(set(details)) != 1 else ''} {layers})")
            else:
                out.extend(f"{kind}: {d}" for d in details)
        return out


def layer_configs(config):
    """Every layer config in a model config (a dict with ``class_name`` and a ``config`` dict),
    nested models included."""
    if isinstance(config, dict):
        if "class_name" in config and isinstance(config.get("config"), dict):
            yield config
        for value in config.values():
            yield from layer_configs(value)
    elif isinstance(config, list):
        for value in config:
            yield from layer_configs(value)


def _name(layer) -> str:
    return str(layer["config"].get("name", "?"))


def _shape_holders(config) -> list:
    """The dicts that may declare an input shape: every layer's config and the model's own."""
    return [layer["config"] for layer in layer_configs(config)] + [config.get("config") or {}]


def _drop_object_dtypes(layer, done: Rewrites):
    for key, value in layer["config"].items():
        if key.endswith(OBJECT_KEYS) and isinstance(value, dict) and isinstance(value.get("config"), dict):
            if "dtype" in value["config"]:
                del value["config"]["dtype"]
                done.add("dtype", _name(layer))


def _rename_activation(layer, done: Rewrites):
    value = layer["config"].get("activation")
    if isinstance(value, str) and value in ACTIVATION_RENAMES:
        layer["config"]["activation"] = ACTIVATION_RENAMES[value]
        done.add(f"activation:{value}->{ACTIVATION_RENAMES[value]}", _name(layer))


def _drop_depthwise_groups(layer, done: Rewrites):
    """``groups: 1`` in a DepthwiseConv2D: tf.keras 2.3-2.15 inherited the key from Conv2D and wrote
    it for every depthwise convolution (MobileNet, EfficientNet, Teachable Machine); Keras 3 refuses
    it. Another value is left for Keras to refuse."""
    config = layer["config"]
    if layer["class_name"] == "DepthwiseConv2D" and config.get("groups") == 1:
        del config["groups"]
        done.add("depthwise-groups", _name(layer))


def _drop_time_major(layer, done: Rewrites):
    """``time_major: false`` in a recurrent layer (Keras 2 wrote it; Keras 3 reads batch-major
    sequences only, which is what false means). True is left for Keras to refuse."""
    config = layer["config"]
    if layer["class_name"] in RECURRENT and config.get("time_major") is False:
        del config["time_major"]
        done.add("time-major", _name(layer))


def _function_initializer(layer, done: Rewrites):
    """An initializer saved as a function reference (``{"class_name": "function", "config":
    "random_normal"}``, Keras 3 saving a Keras 2 style function into a legacy .h5): its Keras class.
    Only a fresh layer draws from it; a loaded model's weights come from the file."""
    for key, value in layer["config"].items():
        if key.endswith("_initializer") and isinstance(value, dict) and value.get("class_name") == "function" \
                and value.get("config") in INITIALIZER_FUNCTIONS:
            layer["config"][key] = {"class_name": INITIALIZER_FUNCTIONS[value["config"]], "config": {}}
            done.add("function-initializer", _name(layer))


def _first_layer_shape(layers, done: Rewrites):
    """``batch_input_shape`` on a Sequential's first layer (Keras 2's ``Dense(..., input_shape=...)``):
    an InputLayer of that shape put before the layer. Keras 3 reads the key as ``input_shape``, a shape
    without the batch axis, and builds the model with one axis too many ("Kernel shape must have the
    same length as input", "Shapes used to initialize variables must be fully-defined"). The key on a
    later layer, which Keras 2 ignored, is dropped."""
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict) or layer.get("class_name") == "InputLayer" \
                or not isinstance(layer.get("config"), dict) or "batch_input_shape" not in layer["config"]:
            continue
        shape = layer["config"].pop("batch_input_shape")
        if i == 0 and isinstance(shape, list):
            dtype = layer["config"].get("dtype")
            layers.insert(0, {"class_name": "InputLayer", "config": {
                "batch_shape": shape, "dtype": dtype if isinstance(dtype, str) else "float32",
                "sparse": False, "name": f"{_name(layer)}_input"}})
            done.add("first-layer-shape", _name(layer))
        return  # the first layer decides; later ones lose the key below


def _later_layer_shapes(layers, done: Rewrites):
    """``batch_input_shape`` on a Sequential layer that is not its first (Keras 2 ignored it there)."""
    for layer in layers[1:]:
        if isinstance(layer, dict) and layer.get("class_name") != "InputLayer" \
                and isinstance(layer.get("config"), dict):
            layer["config"].pop("batch_input_shape", None)


def is_sequential_list(config) -> bool:
    """Whether ``config`` is a Sequential saved by Keras 2.0-2.2: its ``config`` a bare list of layers."""
    return (isinstance(config, dict) and config.get("class_name") == "Sequential"
            and isinstance(config.get("config"), list))


def _sequential_lists(config, done: Rewrites):
    """A Sequential config that is a bare list of layers (Keras 2.0-2.2.4 wrote ``{"class_name":
    "Sequential", "config": [layers]}``): ``{"name": ..., "layers": [layers]}``, as every later Keras
    writes it, nested ones included (named ``sequential``, ``sequential_1``, ... as Keras names them)."""
    found = []

    def visit(value):
        if isinstance(value, list):
            for item in value:
                visit(item)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)
            if is_sequential_list(value):
                found.append(value)

    visit(config)
    for n, sequential in enumerate(reversed(found)):  # outermost first: it is 'sequential'
        name = "sequential" if n == 0 else f"sequential_{n}"
        sequential["config"] = {"name": name, "layers": sequential["config"]}
        done.add("sequential-list", name)


def _graph_name(config, done: Rewrites):
    """The top model's name when TensorFlow's graph node names refuse it (``>`` in
    ``BiLSTM_Model_v0.2.0>bilstm_model_128>``): its other characters replaced by ``_``. Keras 2
    accepted any name; tracing the model (``predict``, conversion) fails on it. Layers refer to
    each other by their own names, never by the model's, so nothing else changes."""
    inner = config.get("config")
    name = inner.get("name") if isinstance(inner, dict) else None
    if isinstance(name, str) and name and not re.fullmatch(r"[A-Za-z0-9.][A-Za-z0-9_.\-/]*", name):
        inner["name"] = re.sub(r"[^A-Za-z0-9_.\-/]", "_", name)
        if not re.match(r"[A-Za-z0-9.]", inner["name"]):
            inner["name"] = "m" + inner["name"]
        done.add("graph-name", f"{name}' renamed '{inner['name']}")


def _nested_single_io(config, done: Rewrites):
    """A Functional nested in another model whose ``input_layers``/``output_layers`` is a list of one
    ``[name, node, tensor]`` (Keras 2 always wrote lists): the single ``[name, node, tensor]``. Keras 3
    makes a list of one a one-element list output, which the next layer of a Sequential then gets
    whole (Teachable Machine: "expects 1 named input(s) ... but it received 2 input tensors")."""
    for layer in layer_configs(config.get("config") or {}):
        if layer["class_name"] not in ("Functional", "Model"):
            continue
        for key in ("input_layers", "output_layers"):
            value = layer["config"].get(key)
            if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list) \
                    and len(value[0]) == 3 and isinstance(value[0][0], str):
                layer["config"][key] = value[0]
                done.add("nested-single-io", _name(layer))


def _wrapped_layer_module(layer, done: Rewrites):
    """The layer a wrapper holds (Bidirectional, TimeDistributed: ``"layer"``, ``"backward_layer"``)
    saved without ``module`` (Keras 2): ``"module": "keras.layers"``. Keras 3 reads a wrapped layer
    with its new deserializer, which finds a built-in class only through that key ("Could not
    locate class 'GRU'"); a class Keras does not have still fails there, with its name."""
    for key in ("layer", "backward_layer"):
        inner = layer["config"].get(key)
        if isinstance(inner, dict) and isinstance(inner.get("class_name"), str) \
                and isinstance(inner.get("config"), dict) and "module" not in inner:
            inner["module"] = "keras.layers"
            inner.setdefault("registered_name", None)
            done.add("wrapped-module", _name(layer))


def _engine_module(layer, done: Rewrites):
    """A model class saved with a Keras 2 module (``keras.src.engine.functional``, written by tf.keras
    2.13-2.15 in its ``.keras`` files; ``tf_keras.src.engine.functional``, tf_keras 2.16+ for nested
    models): the module Keras 3 writes for the class."""
    module = layer.get("module")
    if isinstance(module, str) and module.split(".")[-2:-1] == ["engine"] and module.split(".")[0] in KERAS_2_PACKAGES \
            and layer["class_name"] in KERAS3_MODEL_MODULES:
        layer["module"] = KERAS3_MODEL_MODULES[layer["class_name"]]
        done.add("engine-module", _name(layer))


def _batch_norm_axis(layer, done: Rewrites):
    """A BatchNormalization's ``axis`` saved as a list of one (Keras 2 always did): the int Keras 3
    takes. Keras 3 converts it itself in a legacy ``.h5`` (whose layers have no ``module`` key), not in
    a ``.keras`` that tf.keras 2.13-2.15 wrote ("int() argument must be ... not 'list'")."""
    axis = layer["config"].get("axis")
    if layer["class_name"] == "BatchNormalization" and "module" in layer and isinstance(axis, list) and len(axis) == 1 \
            and isinstance(axis[0], int):
        layer["config"]["axis"] = axis[0]
        done.add("norm-axis", _name(layer))


LAYER_RULES = (_drop_object_dtypes, _rename_activation, _drop_depthwise_groups, _drop_time_major,
               _function_initializer, _wrapped_layer_module, _engine_module, _batch_norm_axis)
SEQUENTIAL_RULES = (_first_layer_shape, _later_layer_shapes)


def _sequential_layer_lists(config):
    """The layer list of every Sequential in a model config, nested ones included."""
    for layer in layer_configs(config):
        if layer["class_name"] == "Sequential" and isinstance(layer["config"].get("layers"), list):
            yield layer["config"]["layers"]


def _keras2_hard_sigmoid(layer, done: Rewrites):
    """``hard_sigmoid`` in a file Keras 1-2 wrote (the LSTM/GRU ``recurrent_activation`` default up
    to Keras 2.2): Keras 2's function, registered by lightcompress (Keras 3's has another slope, so
    the model would load and silently compute something else)."""
    for key, value in layer["config"].items():
        if key.endswith("activation") and value == "hard_sigmoid":
            layer["config"][key] = keras2_activations.config_of(keras2_activations.HARD_SIGMOID)
            done.add("hard-sigmoid", _name(layer))


def _fill_input_shape(config, fan_in, done: Rewrites):
    """A declared input shape whose last size is None, filled from the first kernel's fan-in."""
    if fan_in is None or _starts_with_embedding(config):
        return
    for holder in _shape_holders(config):
        for key in SHAPE_KEYS + ("build_input_shape",):
            shape = holder.get(key) if isinstance(holder, dict) else None
            if isinstance(shape, list) and len(shape) >= 2 and shape[-1] is None:
                holder[key] = shape[:-1] + [int(fan_in)]
                where = holder.get("name", "the model")
                done.add("input shape", f"{key} of '{where}' {tuple(shape)} -> {tuple(holder[key])} "
                                        f"(from the first kernel's input size)")


def _starts_with_embedding(config) -> bool:
    """Whether the model's first layer (past inputs, into nested models) is an Embedding: its input's
    last axis is then the sequence, of any length, and its first kernel's size is the vocabulary."""
    for layer in _layer_list_entries(config):
        if layer["class_name"] not in ("InputLayer",) + GRAPH_CLASSES:
            return layer["class_name"] == "Embedding"
    return False


def _layer_list_entries(model):
    """The entries of a model config's layer list in file order, a nested model's where it sits."""
    if isinstance(model, dict) and model.get("class_name") in GRAPH_CLASSES and isinstance(model.get("config"), dict):
        for entry in model["config"].get("layers") or []:
            if isinstance(entry, dict) and isinstance(entry.get("class_name"), str):
                yield entry
                yield from _layer_list_entries(entry)


def needs_fan_in(config) -> bool:
    """Whether a declared input shape ends in None (the file's first kernel is then read)."""
    if _starts_with_embedding(config):
        return False
    holders = _shape_holders(config)
    return any(isinstance(h.get(k), list) and len(h[k]) >= 2 and h[k][-1] is None
               for h in holders if isinstance(h, dict) for k in SHAPE_KEYS + ("build_input_shape",))


def rewrite_config(config, fan_in=None, keras_2=False) -> tuple[dict, Rewrites]:
    """(a rewritten copy of ``config``, what was rewritten). ``fan_in``: the input size of the
    model's first kernel, read from the file's weights (fills an input shape ending in None);
    ``keras_2``: Keras 1 or 2 wrote the file (its names mean Keras 2's functions)."""
    config = copy.deepcopy(config)
    done = Rewrites()
    _sequential_lists(config, done)  # first: the other rules find layers in the {"layers": [...]} form
    for layer in layer_configs(config):
        for rule in LAYER_RULES:
            rule(layer, done)
        if keras_2:
            _keras2_hard_sigmoid(layer, done)
    for layers in list(_sequential_layer_lists(config)):
        for rule in SEQUENTIAL_RULES:
            rule(layers, done)
    if keras_2:  # a Keras 3 file's list of one is the list its author built
        _nested_single_io(config, done)
    _graph_name(config, done)
    _fill_input_shape(config, fan_in, done)
    return config, done


def first_kernel_fan_in(path, fmt) -> int | None:
    """The input size of the first kernel stored in a model file (``kernel.shape[-2]``: a Dense's
    input units, a convolution's input channels), or None."""
    found = []

    def visit(name, obj):
        if not found and isinstance(obj, h5py.Dataset) and obj.ndim >= 2:
            found.append(int(obj.shape[-2]))

    try:
        if fmt == "keras":
            with zipfile.ZipFile(path) as archive:
                if "model.weights.h5" not in archive.namelist():
                    return None
                with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as f:
                    f.visititems(visit)
        else:
            with h5py.File(path, "r") as f:
                group = f["model_weights"] if "model_weights" in f else f
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("layer_names", [])]
                for name in names or list(group):
                    if name in group:
                        group[name].visititems(visit)
                    if found:
                        break
    except (OSError, KeyError, ValueError):
        return None
    return found[0] if found else None


def write_copy(path, fmt, config, folder) -> Path:
    """A copy of the model file at ``path`` in ``folder`` holding ``config``, named for its real
    format (``.h5`` or ``.keras``)."""
    target = Path(folder) / ("model.h5" if fmt == "h5" else "model.keras")
    if fmt == "h5":
        shutil.copyfile(path, target)
        with h5py.File(target, "r+") as f:
            f.attrs["model_config"] = json.dumps(config)
        return target
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = json.dumps(config).encode() if item.filename == "config.json" else src.read(item.filename)
            dst.writestr(item, data)
    return target


# -- the fallback: weights carried from tf_keras -------------------------------------------------

TF_KERAS_WORKER = Path(__file__).with_name("tf_keras_weights.py")  # imports nothing from lightcompress
CARRY_SECONDS = 600  # loading TensorFlow and tf_keras takes some 10 s; the largest files here a minute


class CarryError(Exception):
    """Why the weights could not be carried from tf_keras, in one line."""


def saved_by_keras_2(path, fmt) -> bool:
    """Whether Keras 1 or 2 (tf.keras) wrote the file, as its ``keras_version`` says (an ``.h5``
    without one is old enough): the files tf_keras reads."""
    try:
        if fmt == "keras":
            with zipfile.ZipFile(path) as archive:
                version = json.loads(archive.read("metadata.json")).get("keras_version", "")
        else:
            with h5py.File(path, "r") as f:
                version = f.attrs.get("keras_version", "2")
    except (OSError, KeyError, ValueError, AttributeError):
        return False
    version = version.decode() if isinstance(version, bytes) else str(version)
    return version.split(".")[0] in ("1", "2")


def build_from_config(config, trust=False):
    """The Keras 3 model a (rewritten) Sequential or Functional config describes, weights fresh."""
    if config.get("class_name") not in GRAPH_CLASSES:
        raise CarryError(f"its model is a {config.get('class_name')}, not a Sequential or Functional model")
    cls = keras.Sequential if config["class_name"] == "Sequential" else keras.Model
    with keras_private.unsafe_scope() if trust else contextlib.nullcontext():  # Lambda code: trusted only
        return cls.from_config(copy.deepcopy(config["config"]))


MARSHAL_ERRORS = ("EOF read where object expected", "bad marshal data", "unknown type code")


def unreadable_lambda(config, error) -> str | None:
    """Why a trusted Lambda layer cannot be rebuilt, when ``error`` is Python failing to read its
    saved bytecode (marshalled by another Python version: "EOF read where object expected"), else
    None. No Keras or tf_keras of this Python can run that code."""
    if not isinstance(error, (EOFError, ValueError, TypeError)) or not any(m in str(error) for m in MARSHAL_ERRORS):
        return None
    for layer in layer_configs(config):
        function = layer["config"].get("function") if layer["class_name"] == "Lambda" else None
        if isinstance(function, list) or (isinstance(function, dict) and function.get("class_name") == "__lambda__"):
            return (f"layer '{_name(layer)}' (Lambda) holds Python bytecode written by another Python version, "
                    f"which Python {sys.version_info.major}.{sys.version_info.minor} cannot read ({error}); rebuild "
                    f"the Lambda from its source code, or replace it with Keras layers, and save the model again.")
    return None


def _leaf_layers(model, prefix=""):
    """(path, layer) of every layer holding weights, nested models entered (as the worker walks)."""
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if type(layer).__name__ in GRAPH_CLASSES and hasattr(layer, "layers"):
            yield from _leaf_layers(layer, f"{path}/")
        elif layer.weights:
            yield path, layer


def _read_with_tf_keras(path, folder, seconds) -> tuple[dict, object]:
    """({"layers": [...], "inputs": [...]}, the weights npz) of the file at ``path``, read by tf_keras
    in a worker process."""
    if importlib.util.find_spec("tf_keras") is None:
        raise CarryError("tf_keras, which reads Keras 2 files, is not installed: pip install 'lightcompress[baseline]'")
    folder = Path(folder)
    source = Path(path)
    wanted = (".h5", ".hdf5") if sniff(path) == "h5" else (".keras",)
    if source.suffix.lower() not in wanted:  # tf_keras goes by the name: HDF5 under a .keras name

        source = folder / f"tf_keras_source{wanted[0]}"
        shutil.copyfile(path, source)
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        proc = subprocess.run([sys.executable, str(TF_KERAS_WORKER), str(source), str(folder)],
                              capture_output=True, text=True, timeout=seconds, env=env)
    except subprocess.TimeoutExpired:
        raise CarryError(f"tf_keras took over {seconds} s to read it") from None
    result = folder / "layers.json"
    if not result.exists():
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        last = (lines or ["no output"])[-1].strip()
        raise CarryError(f"the tf_keras worker stopped (exit {proc.returncode}): {last}")
    info = json.loads(result.read_text())
    if "error" in info:
        raise CarryError(f"tf_keras cannot read it either ({info['error']})")
    return info, np.load(folder / "weights.npz")


def carry_weights(path, model, folder, seconds=CARRY_SECONDS) -> int:
    """Set the weights of ``model`` (built from the file's rewritten config) to those tf_keras reads
    from the file at ``path``, layer by layer by name, each shape checked; the number of layers set."""
    info, arrays = _read_with_tf_keras(path, folder, seconds)
    if not model.built and len(info["inputs"]) == 1:
        model.build(tuple(info["inputs"][0]))
    targets = dict(_leaf_layers(model))
    with arrays:
        for entry in info["layers"]:
            layer = targets.pop(entry["path"], None)
            if layer is None:
                raise CarryError(f"layer '{entry['path']}' of the file is not in the model its config builds")
            variables = layer.trainable_weights + layer.non_trainable_weights
            shapes = [tuple(shape) for _, shape in entry["weights"]]
            if [tuple(v.shape) for v in variables] != shapes:
                raise CarryError(f"layer '{entry['path']}' holds weights of shapes {shapes} in the file and "
                                 f"{[tuple(v.shape) for v in variables]} in Keras 3")
            for i, variable in enumerate(variables):
                variable.assign(arrays[f"{entry['path']}|{i}"])
    if targets:
        raise CarryError(f"layer '{next(iter(targets))}' of the model has weights the file does not hold")
    return len(info["layers"])
