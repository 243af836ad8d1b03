"""A model with every LightLayer lowered to the standard Keras layers it computes: the first
step of every export. The per-layer lowerings are the registry's (each in its type's module of ``lightcompress.layers``).

>>> import keras, numpy as np
>>> from lightcompress import LightDense
>>> light = LightDense(8, rank=2, name="fc_light")
>>> model = keras.Sequential([keras.Input((16,)), light])
>>> lowered = lower_model(model)
>>> [type(layer).__name__ for layer in lowered.layers]
['Dense', 'Dense']
>>> x = np.ones((1, 16), "float32")
>>> bool(np.allclose(lowered.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5))
True
"""

from __future__ import annotations

import keras

from .. import _keras_private as keras_private
from ..data.synthetic import model_inputs_like
from ..errors import UnsupportedModelError
from ..io import substitutions
from ..layers.base import base_name
from ..layers.registry import composite_twin_entry, twin_entry


def lowering_for(layer):
    """The registry's lowering function for ``layer`` (a LightLayer twin), or None."""
    entry = twin_entry(layer)
    return None if entry is None else entry.lower


class _Chain:
    """What the clone function returns for a LightLayer: its lowered layers, called in turn."""

    def __init__(self, layers):
        self.layers = layers

    def __call__(self, *args, **kwargs):
        x = self.layers[0](*args, **kwargs)
        for layer in self.layers[1:]:
            x = layer(x)
        return x


def _container_names(model):
    return {layer.name for layer in model.layers}


def _unique_base(layer, taken):
    """A base name whose ``_a``/``_b`` layers collide with no other layer at this level."""
    base = base_name(layer, None)
    candidate, n = base, 0
    suffixes = ("_a", "_b", "_core")  # _core: the middle conv of a Tucker-2 LightConv2D
    while any(f"{candidate}{s}" in taken for s in suffixes):
        n += 1
        candidate = f"{base}_lowered" if n == 1 else f"{base}_lowered{n}"
    taken.update(f"{candidate}{s}" for s in suffixes)
    return candidate


class _Lowerer:
    """One lowering pass; a cache shared across nested models keeps shared layers shared."""

    def __init__(self):
        self.cache = {}  # id(source layer or model) -> clone (layer, model or _Chain)
        self.copies = []  # (source layer, recreated layer): weights copied once the graph is built

    def clone(self, layer, taken):
        key = id(layer)
        if key in self.cache:
            return self.cache[key]
        if isinstance(layer, keras.Model):
            new = self.model(layer)
        elif (lower := lowering_for(layer)) is not None:
            new = _Chain(lower(layer, base=_unique_base(layer, taken)))
        elif isinstance(layer, keras.layers.Layer):
            new = layer.__class__.from_config(layer.get_config())
            self.copies.append((layer, new))
        else:  # an operation node (``h + x`` in a Functional model): stateless, no weights
            try:
                new = layer.__class__.from_config(layer.get_config())
            except Exception:  # noqa: BLE001 - an op whose config does not rebuild it: reuse it
                new = layer
        self.cache[key] = new
        return new

    def model(self, model):
        if substitutions.in_place(model):  # a keras.Model subclass, a keras-hub task or backbone
            return _lower_in_place(model)
        if isinstance(model, keras.Sequential):
            return self._sequential(model)
        taken = _container_names(model)

        def call_function(op, *args, **kwargs):
            return op(*args, **kwargs)

        with keras_private.unsafe_scope():  # an in-memory model: recreating Lambdas loads no code
            return keras.models.clone_model(
                model, clone_function=lambda layer: self.clone(layer, taken), call_function=call_function
            )

    def _sequential(self, model):
        if not model.built or not model.inputs:
            raise UnsupportedModelError(
                f"Sequential model '{model.name}' is not built (no input shape); build it or give "
                f"it a keras.Input first."
            )
        taken = _container_names(model)
        new_layers = []
        with keras_private.unsafe_scope():
            for layer in model.layers:
                new = self.clone(layer, taken)
                new_layers.extend(new.layers if isinstance(new, _Chain) else [new])
        source_input = keras_private.sequential_input(model)
        inputs = keras.Input(
            batch_shape=source_input.batch_shape, dtype=source_input.dtype, name=source_input.name
        )
        return keras.Sequential([inputs, *new_layers], name=model.name, trainable=model.trainable)

    def finish(self):
        for old, new in self.copies:
            new.set_weights(old.get_weights())


# -- models whose layers are swapped in place (subclasses, keras-hub) ------------------------

def _standard(layers, name):
    """One layer standing for a twin's lowering: the layer itself, or a Sequential of two or three."""
    if len(layers) == 1:
        return layers[0]
    return keras.Sequential(list(layers), name=name)


def _lower_composite(twin, taken):
    """The composite's own lowering of ``twin``: a layer of its class with each factorised part
    swapped for the standard layers it computes (one layer, or a ``_standard`` Sequential)."""
    def lower_part(source, name):
        lower = lowering_for(source)
        return None if lower is None else _standard(lower(source, base=_unique_base(source, taken)), name)

    plain, swaps = composite_twin_entry(twin).lower(twin, lower_part)
    substitutions.substitute(plain, swaps)  # built: its tracker is locked against setattr
    return plain


def _call_once(model, source):
    """Keras exports a subclassed model only once it has been called (its input signature is
    the first call's); a copy rebuilt from its config never was."""
    if keras_private.is_graph_model(model) or getattr(model, "_called", False):
        return

    try:
        x = model_inputs_like(source, batch=1)
    except UnsupportedModelError:  # no input shape known: the caller's export will say so
        return
    model(x, training=False)


def _lower_in_place(model) -> keras.Model:
    """A copy of an in-place model (same class) in which every twin is replaced, where the copy
    holds it, by the standard layers it computes (a ``keras.Sequential`` when there are two)."""
    copy = substitutions.copy_model(model)
    tree = list(substitutions.layer_tree(copy, leaves_only=False))
    taken = {layer.name for _, layer in tree}
    replacements = {}
    for _, layer in substitutions.layer_tree(copy):
        lower = lowering_for(layer)
        if lower is not None:
            replacements[id(layer)] = _standard(lower(layer, base=_unique_base(layer, taken)), layer.name)
        elif composite_twin_entry(layer) is not None:
            replacements[id(layer)] = _lower_composite(layer, taken)
    substitutions.substitute(copy, replacements)
    _call_once(copy, model)
    return copy


def lower_model(model) -> keras.Model:
    """A new model computing what ``model`` computes, with every LightLayer lowered.

    Sequential and Functional models, nested models (lowered recursively), shared layers
    (lowered once, still shared) and operation nodes are supported. Layers that are not
    lowered are recreated from their config with a copy of their weights; ``model`` is not
    changed and the two models share no weights.

    Any other model (a ``keras.Model`` subclass, a keras-hub task or backbone) is copied through
    its own class and each twin is swapped, where the copy holds it (an attribute, a list, a
    functional graph node), for its standard layers: one layer, or a ``keras.Sequential`` of the
    two a factorisation computes. The copy keeps the model's class, so exporting it traces the
    class's ``call``: the artefact needs neither lightcompress nor the class's code to run.
    """
    lowerer = _Lowerer()
    new_model = lowerer.model(model)
    lowerer.finish()
    return new_model


def light_layers(model) -> list:
    """Every layer in ``model`` (nested models included) that the registry can lower; in a
    subclassed or keras-hub model, every twin wherever it is held (attention twins included)."""
    if substitutions.in_place(model):
        return [layer for _, layer in substitutions.layer_tree(model)
                if lowering_for(layer) is not None or composite_twin_entry(layer) is not None]
    found, seen = [], set()

    def walk(container):
        for layer in container.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if isinstance(layer, keras.Model):
                walk(layer)
            elif lowering_for(layer) is not None:
                found.append(layer)

    walk(model)
    return found
