"""A Keras 3 model as a plain architecture spec (JSON) and weights (NumPy), for the tf_keras worker.

Only layers in ``LAYERS`` are written, each with the config keys the twin needs (Keras 3 names on
the left, tf_keras names on the right); anything else is refused in one line naming the layer,
before any work. Keys that only matter for training from scratch (initialisers, regularisers,
constraints) are dropped: the weights are copied. A key outside the whitelist whose value is not
a default (a LoRA rank, a quantisation config, mixed precision) is refused rather than dropped.

Supported graphs: Sequential models (nested Sequentials, as the lowering of a LightLayer makes
them, are flattened) and Functional models whose layers are each called once.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from ..errors import UnsupportedModelError
from ..io.models import plain_copy

SPEC_VERSION = 1

_CONV = {"filters": "filters", "kernel_size": "kernel_size", "strides": "strides", "padding": "padding",
         "data_format": "data_format", "dilation_rate": "dilation_rate", "groups": "groups",
         "activation": "activation", "use_bias": "use_bias"}
_POOL = {"pool_size": "pool_size", "strides": "strides", "padding": "padding", "data_format": "data_format"}
_GLOBAL_POOL = {"data_format": "data_format", "keepdims": "keepdims"}

# class name -> {Keras 3 config key: tf_keras config key}
LAYERS = {
    "Dense": {"units": "units", "activation": "activation", "use_bias": "use_bias"},
    "Conv2D": _CONV,
    "Conv1D": {k: v for k, v in _CONV.items()},
    "DepthwiseConv2D": {"kernel_size": "kernel_size", "strides": "strides", "padding": "padding",
                        "data_format": "data_format", "dilation_rate": "dilation_rate",
                        "depth_multiplier": "depth_multiplier", "activation": "activation", "use_bias": "use_bias"},
    "MaxPooling2D": _POOL,
    "AveragePooling2D": _POOL,
    "MaxPooling1D": _POOL,
    "AveragePooling1D": _POOL,
    "GlobalAveragePooling2D": _GLOBAL_POOL,
    "GlobalMaxPooling2D": _GLOBAL_POOL,
    "GlobalAveragePooling1D": _GLOBAL_POOL,
    "Flatten": {"data_format": "data_format"},
    "Dropout": {"rate": "rate", "noise_shape": "noise_shape", "seed": "seed"},
    "BatchNormalization": {"axis": "axis", "momentum": "momentum", "epsilon": "epsilon", "center": "center",
                           "scale": "scale"},
    "LayerNormalization": {"axis": "axis", "epsilon": "epsilon", "center": "center", "scale": "scale"},
    "Activation": {"activation": "activation"},
    "ReLU": {"max_value": "max_value", "negative_slope": "negative_slope", "threshold": "threshold"},
    "LeakyReLU": {"negative_slope": "alpha"},
    "Softmax": {"axis": "axis"},
    "Reshape": {"target_shape": "target_shape"},
    "ZeroPadding2D": {"padding": "padding", "data_format": "data_format"},
    "Rescaling": {"scale": "scale", "offset": "offset"},
    "Add": {},
    "Multiply": {},
    "Average": {},
    "Concatenate": {"axis": "axis"},
}

# Keys dropped without a look: training-from-scratch settings (the weights are copied) and names.
_IGNORED = ("name", "trainable", "dtype", "_initializer", "_regularizer", "_constraint", "seed",
            "renorm_clipping", "renorm_momentum")  # the last two act only with renorm=True (refused)
# Keys dropped when they hold a default value (None / False / 0 / {} ...).
_DEFAULT_ONLY = ("lora_rank", "lora_alpha", "quantization_config", "synchronized", "rms_scaling", "renorm")
_ACTIVATIONS = ("linear", "relu", "relu6", "sigmoid", "softmax", "tanh", "elu", "selu", "softplus", "softsign",
                "swish", "silu", "gelu", "hard_sigmoid", "exponential")


def _refuse(layer_name, why, fix=None):
    fix = fix or f"the tfmot baselines rebuild only these layer types: {', '.join(sorted(LAYERS))}"
    raise UnsupportedModelError(f"layer '{layer_name}' {why}; {fix}.")


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


def _is_default(value):
    return value in (None, False, 0, "", {}, []) or value == "float32"


def layer_entry(layer) -> dict:
    """{class, name, config (tf_keras keys)} of one layer, or UnsupportedModelError naming it."""
    cls = type(layer).__name__
    if cls not in LAYERS or type(layer).__module__.split(".")[0] != "keras":
        _refuse(layer.name, f"is a {cls}, which tf_keras cannot rebuild from a whitelisted config")
    config = layer.get_config()
    dtype = getattr(layer, "dtype_policy", None)
    if dtype is not None and getattr(dtype, "name", "float32") != "float32":
        _refuse(layer.name, f"computes in {dtype.name} (mixed precision)", "save a float32 copy of the model first")
    keys = LAYERS[cls]
    out = {}
    for key, value in config.items():
        if key in keys:
            out[keys[key]] = _jsonable(value)
        elif key in _DEFAULT_ONLY:
            if not _is_default(value):
                _refuse(layer.name, f"has {key}={value!r}, which the tf_keras twin cannot reproduce",
                        "merge or remove it (e.g. a LoRA adapter) and save the model again")
        elif key in _IGNORED or any(key.endswith(s) for s in _IGNORED if s.startswith("_")):
            continue
        elif not _is_default(value):
            _refuse(layer.name, f"has {key}={value!r}, which the tf_keras twin does not rebuild",
                    "only standard settings of standard layers can be compared with tfmot")
    activation = out.get("activation")
    if activation is not None and activation not in _ACTIVATIONS:
        _refuse(layer.name, f"uses activation {activation!r}, which is not a built-in activation",
                "use a built-in activation name")
    return {"class": cls, "name": layer.name, "config": out}


def _flat_sequential(model, prefix=""):
    """The layers of a Sequential model, nested Sequentials flattened."""
    for layer in model.layers:
        if isinstance(layer, keras.Sequential):
            yield from _flat_sequential(layer)
        elif isinstance(layer, keras.Model):
            _refuse(layer.name, "is a nested Functional model inside a Sequential")
        else:
            yield layer


def _history_names(value, found):
    """Layer names in the keras_history entries of a serialised call's arguments."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            found.append(value["config"]["keras_history"][0])
            return found
        for v in value.values():
            _history_names(v, found)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _history_names(v, found)
    return found


def _endpoint_names(entries):
    if entries and isinstance(entries[0], str):  # one endpoint: [name, node, tensor]
        entries = [entries]
    return [e[0] for e in entries]


def _functional(model):
    config = model.get_config()
    by_name = {layer.name: layer for layer in model.layers}
    layers, ordered = [], []
    for entry in config["layers"]:
        name = entry["config"].get("name", entry.get("name"))
        layer = by_name.get(name)
        if layer is None:
            _refuse(name, "is an operation node (e.g. x + y written as Python); use keras.layers.Add etc.")
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            _refuse(name, "is a nested model inside a Functional model")
        nodes = entry.get("inbound_nodes") or []
        if len(nodes) != 1:
            _refuse(name, f"is called {len(nodes)} times (a shared layer)")
        kwargs = {k: v for k, v in (nodes[0].get("kwargs") or {}).items() if k not in ("training", "mask")}
        if kwargs:
            _refuse(name, f"is called with arguments {sorted(kwargs)}")
        item = layer_entry(layer)
        item["inbound"] = _history_names(nodes[0].get("args", []), [])
        layers.append(item)
        ordered.append(layer)
    inputs = [{"name": n, "shape": list(by_name[n].batch_shape[1:])}
              for n in _endpoint_names(config["input_layers"])]
    return {"kind": "functional", "inputs": inputs, "layers": layers,
            "outputs": _endpoint_names(config["output_layers"])}, ordered


def model_spec(model) -> tuple[dict, list]:
    """(spec dict, the model's layers in spec order) for a Sequential or Functional model."""
    if isinstance(model, keras.Sequential):
        if not model.inputs:
            raise UnsupportedModelError(f"Sequential model '{model.name}' is not built; give it a keras.Input first.")
        ordered = list(_flat_sequential(model))
        spec = {"kind": "sequential", "inputs": [{"name": "input", "shape": list(model.inputs[0].shape[1:])}],
                "layers": [layer_entry(layer) for layer in ordered]}
    else:
        spec, ordered = _functional(model)
    if any(None in i["shape"] for i in spec["inputs"]):
        raise UnsupportedModelError(
            f"model '{model.name}' has an input of unknown size {spec['inputs']}; the baselines need fixed input shapes.")
    spec["version"] = SPEC_VERSION
    spec["name"] = model.name
    return spec, ordered


def write_model(model, folder) -> list:
    """Write ``spec.json`` and ``weights.npz`` into ``folder``; returns the layers in spec order."""
    spec, ordered = model_spec(model)
    folder = Path(folder)
    (folder / "spec.json").write_text(json.dumps(spec, indent=1))
    arrays = {}
    for i, layer in enumerate(ordered):
        for j, w in enumerate(layer.get_weights()):
            arrays[f"{i}/{j}"] = np.asarray(w)
    np.savez(folder / "weights.npz", **arrays)
    return ordered


def read_weights(path, ordered) -> list:
    """Per-layer weight lists (spec order) from a worker's ``.npz``."""
    with np.load(path) as data:
        return [[data[f"{i}/{j}"] for j in range(len(layer.get_weights()))] for i, layer in enumerate(ordered)]


def put_weights(model, path):
    """A copy of ``model`` holding the weights in ``path`` (a worker's ``.npz``); ``model`` is unchanged."""
    copy = plain_copy(model)
    _, ordered = model_spec(copy)
    for layer, weights in zip(ordered, read_weights(path, ordered)):
        if weights:
            expected = [w.shape for w in layer.get_weights()]
            got = [w.shape for w in weights]
            if expected != got:
                raise UnsupportedModelError(
                    f"layer '{layer.name}' came back from tf_keras with weights of shapes {got}, not "
                    f"{expected}; report this as a bug.")
            layer.set_weights(weights)
    return copy
