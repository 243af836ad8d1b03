"""Layers swapped in place inside subclassed and keras-hub models, and how files keep the swaps.

A Sequential or Functional model is rebuilt whole by ``keras.models.clone_model``. Any other model
(a ``keras.Model`` subclass, a keras-hub task or backbone) is rebuilt by its own class from its
config, which creates the original layers; so its LightLayer twins are put in place afterwards:

- ``layer_tree(model)``: every layer of the model as ``(path, layer)``, by graph name inside
  functional graphs and by attribute name elsewhere (``transformer_layer_0/_self_attention_layer/
  _query_dense``, ``blocks/1``), the paths planning and reports use;
- ``substitute(model, {id(old): new})``: ``new`` takes ``old``'s place wherever the model holds it
  (attributes, lists of layers, tracked sublayers, functional graph nodes), ``old`` untracked;
- ``records(model)`` / ``restore(model, records)``: the twins of a model as data (path, twin
  config) and their re-creation in a model rebuilt from its config;
- ``copy_model(model)``: an independent copy keeping the class, twins and weights;
- ``SubstitutedModel``: the registered config wrapper a `.keras` file holds for such a model, so
  ``keras.models.load_model`` (once lightcompress is imported) rebuilds the model, puts its twins
  back, then loads the weights.
"""

from __future__ import annotations

import json
import zipfile

import keras

from .. import _keras_private as keras_private
from ..errors import UnsupportedModelError
from ..layers import registry
from ..layers.base import PACKAGE

# Attributes Keras keeps its own bookkeeping in: never names for a sublayer.
_KERAS_ATTRIBUTES = frozenset({"_layers", "_operations", "_operations_by_depth", "_nodes", "_nodes_by_depth",
                               "_functional", "_inbound_nodes", "_outbound_nodes", "_inputs", "_outputs",
                               "_inputs_struct", "_outputs_struct", "_tracker", "_nnx_op_mapping",
                               "nnx_operations"})


def _internal(attr) -> bool:
    """Keras's (and TensorFlow's ``_self_unconditional_*`` tracking) bookkeeping attributes."""
    return (attr in _KERAS_ATTRIBUTES or attr.startswith("__") or attr.startswith("_self_unconditional_")
            or attr in ("_self_saveable_object_factories", "_self_name_based_restores"))


def in_place(model) -> bool:
    """True for models whose layers are swapped in place (all but plain Sequential/Functional)."""
    return isinstance(model, keras.Model) and not keras_private.is_plain_graph_model(model)


def is_twin(layer) -> bool:
    return registry.twin_entry(layer) is not None or type(layer) in registry.COMPOSITE_TWINS


def _is_leaf(layer) -> bool:
    """A layer not descended into: a registered type, a twin, or one holding no sublayers."""
    if isinstance(layer, keras.Model):
        return False
    return (registry.entry_for(layer) is not None or registry.composite_for(layer) is not None
            or is_twin(layer) or not keras_private.sublayers(layer))


def _attribute_names(container) -> dict:
    """{id(sublayer): path segment}: the attribute (or ``attribute/index`` in a list) holding it."""
    names = {}
    for attr, value in vars(container).items():
        if _internal(attr):
            continue
        if isinstance(value, keras.layers.Layer):
            names.setdefault(id(value), attr)
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, keras.layers.Layer):
                    names.setdefault(id(item), f"{attr}/{i}")
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, keras.layers.Layer):
                    names.setdefault(id(item), f"{attr}/{key}")
    return names


def children(container) -> list:
    """[(path segment, layer)] directly under ``container``: its functional graph's layers by name
    first, then the sublayers it holds as attributes."""
    out, seen = [], set()
    if keras_private.is_graph_model(container):
        for layer in container.layers:
            out.append((layer.name, layer))
            seen.add(id(layer))
    names = _attribute_names(container)
    for layer in keras_private.sublayers(container):
        if id(layer) in seen or isinstance(layer, keras.layers.InputLayer):
            continue
        seen.add(id(layer))
        out.append((names.get(id(layer), layer.name), layer))
    return out


def layer_tree(model, prefix="", leaves_only=True):
    """Yield ``(path, layer)`` for every layer under ``model`` (leaves only, or every node of the
    tree), each once (the first place it is held)."""
    seen = set()

    def walk(container, prefix):
        for segment, layer in children(container):
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            path = f"{prefix}{segment}"
            leaf = _is_leaf(layer)
            if leaf or not leaves_only:
                yield path, layer
            if not leaf:
                yield from walk(layer, f"{path}/")

    yield from walk(model, prefix)


def _swap(value, old, new):
    """``value`` (a layer, list, tuple or dict) with ``old`` swapped for ``new``; lists and dicts
    are changed in place. Returns (value, changed)."""
    if value is old:
        return new, True
    if isinstance(value, list):
        hit = [i for i, item in enumerate(value) if item is old]
        for i in hit:
            list.__setitem__(value, i, new)
        if hit:
            keras_private.settle_list(value)
        return value, bool(hit)
    if isinstance(value, tuple) and any(item is old for item in value):
        items = [new if item is old else item for item in value]
        return (value.__class__(*items) if hasattr(value, "_fields") else value.__class__(items)), True
    if isinstance(value, dict):
        hit = [k for k, item in value.items() if item is old]
        for k in hit:
            dict.__setitem__(value, k, new)
        return value, bool(hit)
    return value, False


def substitute(model, replacements: dict) -> int:
    """Put each ``replacements[id(old)]`` in ``old``'s place wherever ``model`` holds it; the old
    layers are untracked (``model.weights`` and ``count_params()`` no longer count them). Twins
    take the name of the layer they replace (graph paths and weight paths stay the same).
    Returns how many places changed."""
    if not replacements:
        return 0
    everything = keras_private.all_sublayers(model)
    olds = {id(layer): layer for layer in everything if id(layer) in replacements}
    containers = [model, *[layer for layer in everything if id(layer) not in replacements]]
    changed = 0
    for key, old in olds.items():
        new = replacements[key]
        new.name = old.name
        for parent in containers:
            tracked = keras_private.replace_tracked(parent, old, new)
            graphed = keras_private.replace_in_graph(parent, old, new)
            changed += tracked + graphed
            for attr, value in list(vars(parent).items()):
                if _internal(attr):
                    continue
                swapped, hit = _swap(value, old, new)
                if hit:
                    changed += 1
                    if swapped is not value:
                        object.__setattr__(parent, attr, swapped)
    return changed


# -- the record of the swaps, and their re-creation ---------------------------------------------

def records(model) -> list[dict]:
    """[{"path", "layer"}]: every twin in an in-place model (path as ``layer_tree`` names it, the
    twin serialized with its build config); empty for plain graph models."""
    if not in_place(model):
        return []
    return [{"path": path, "layer": keras.saving.serialize_keras_object(layer)}
            for path, layer in layer_tree(model) if is_twin(layer)]


def restore(model, recorded) -> None:
    """Re-create the recorded twins (built from their configs) in ``model``, rebuilt from its config."""
    if not recorded:
        return
    found = dict(layer_tree(model))
    replacements = {}
    for record in recorded:
        old = found.get(record["path"])
        if old is None:
            raise UnsupportedModelError(
                f"model '{model.name}' ({type(model).__name__}) has no layer '{record['path']}' once rebuilt "
                f"from its config; its class must create the same layers it did when it was converted.")
        twin = keras.saving.deserialize_keras_object(record["layer"])
        if not twin.built:
            raise UnsupportedModelError(f"the twin of layer '{record['path']}' holds no build config; "
                                        f"it cannot be re-created.")
        replacements[id(old)] = twin
    substitute(model, replacements)


def copy_model(model) -> keras.Model:
    """An independent copy of an in-place model: its class rebuilt from its config, its twins
    re-created, the weights copied. The model is not changed."""
    cls = type(model)
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    custom = {cls.__name__: cls}
    if config.get("registered_name"):
        custom[config["registered_name"]] = cls
    try:
        with keras_private.unsafe_scope():  # in memory already: no code is read from a file
            copy = keras.saving.deserialize_keras_object(config, custom_objects=custom)
    except Exception as err:  # noqa: BLE001 - a user class whose config does not rebuild it
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnsupportedModelError(
            f"model '{model.name}' ({cls.__name__}) cannot be rebuilt from its get_config(): {reason}; "
            f"give the class a get_config()/from_config() pair that recreates it.") from None
    if not copy.built and model.built:
        build = model.get_build_config() if hasattr(model, "get_build_config") else None
        if build:
            copy.build_from_config(build)
    restore(copy, records(model))
    source, target = model.weights, copy.weights
    if len(source) != len(target) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(source, target)):
        raise UnsupportedModelError(
            f"model '{model.name}' ({cls.__name__}) rebuilt from its config holds other weights than it "
            f"does ({len(target)} against {len(source)}); its class must build every layer in "
            f"__init__ or build().")
    for a, b in zip(source, target):
        b.assign(a)
    return copy


@keras.saving.register_keras_serializable(package=PACKAGE)
class SubstitutedModel:
    """The config a `.keras` file holds for an in-place model with twins: the model's own config
    and its substitutions. ``from_config`` returns the model itself (of its own class), twins in
    place, ready for Keras to load its weights."""

    def __init__(self, model_config, substitutions):
        self.model_config, self.substitutions = model_config, substitutions

    def get_config(self):
        return {"model": self.model_config, "substitutions": self.substitutions}

    @classmethod
    def from_config(cls, config):
        model = keras.saving.deserialize_keras_object(config["model"])
        restore(model, config["substitutions"])
        return model


WRAPPER = {"module": __name__, "class_name": "SubstitutedModel", "registered_name": f"{PACKAGE}>SubstitutedModel"}


def wrapped_config(model_config: dict, recorded: list) -> dict:
    """The config.json a `.keras` archive holds for a model with recorded substitutions."""
    return {**WRAPPER, "config": {"model": model_config, "substitutions": recorded}}


def unwrap(config: dict) -> dict:
    """The model's own config (inside the wrapper when there is one)."""
    if isinstance(config, dict) and config.get("class_name") == WRAPPER["class_name"]:
        return (config.get("config") or {}).get("model") or {}
    return config


def rewrite_archive(source, target, recorded) -> None:
    """Copy the `.keras` archive ``source`` to ``target`` with its config.json wrapped with
    ``recorded`` substitutions."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "config.json":
                data = json.dumps(wrapped_config(json.loads(data), recorded)).encode("utf-8")
            zout.writestr(info, data)
