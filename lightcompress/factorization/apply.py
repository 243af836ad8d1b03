"""Rebuild a model with the LightLayers a plan asks for, SVD-initialised.

A Sequential or Functional model is rebuilt with ``keras.models.clone_model`` (graphs, nested
models, shared layers, raw tensor operations); any other model (subclassed, keras-hub) is copied
through its own class and its layers swapped in place (``inplace``). Every layer of the new model is a new object:
planned layers become their registered LightLayer twins, all others are recreated from their
config and given a copy of their weights. The source model is never changed, and the two models
share nothing.
"""

from __future__ import annotations

from dataclasses import replace

import keras

from .. import _keras_private as keras_private
from ..errors import RankError, UnsupportedModelError
from ..layers import registry
from .candidates import candidates
from .inplace import rebuild_in_place
from .methods import get_method
from .statistics import Statistics, collect


def check_graph_model(model):
    """Refuse what cannot be rebuilt: anything but a Keras model."""
    if not isinstance(model, keras.Model):
        raise UnsupportedModelError(
            f"{type(model).__name__} is not a Keras model; lightcompress rewrites keras.Model instances only.")


def rebuild(model, replace) -> keras.Model:
    """A copy of ``model`` sharing nothing with it, where ``replace(layer)`` may return a new
    layer for any layer (None keeps a recreated copy with the same weights)."""
    check_graph_model(model)
    if not keras_private.is_plain_graph_model(model):
        return rebuild_in_place(model, replace)
    copies = []

    def clone(layer):
        new = replace(layer)
        if new is not None:
            return new
        if not isinstance(layer, keras.layers.Layer):
            return layer  # a raw operation (``x + y``): stateless, nothing to copy
        new = layer.__class__.from_config(layer.get_config())
        copies.append((layer, new))
        return new

    # The model is already in memory: recreating its Lambda layers from their config runs no
    # code that is not already loaded, so safe mode (a guard for files) is lifted here.
    with keras_private.unsafe_scope():
        new_model = keras.models.clone_model(model, clone_function=clone, recursive=True)
    if not new_model.built:
        new_model.build(model.input_shape)
    for old, new in copies:
        if old.weights:
            new.set_weights(old.get_weights())
    return new_model


def apply_plan(model, plan, statistics=None, on_layer=None, method=None, sources=None) -> keras.Model:
    """A new model in which every converted layer of ``plan`` is its LightLayer twin, its factors
    made by the plan's method (``plan.method``) from the layer's ``statistics``
    (``statistics.Statistics``); a layer without statistics gets plain SVD factors.

    Plain factors come from the decompositions the plan was decided from (``sources``, from
    ``planning.rules.decide``: a matrix mode's SVD, Tucker-2's bases), so no kernel is decomposed
    twice; each layer's work is released once its twin is built.
    ``on_layer(done, total, name)`` reports progress. ``method``: the plan's method already
    resolved (a ``methods.Method``), else looked up by its name."""
    method = get_method(plan.method if method is None else method)
    by_name = {p.name: p for p in plan.converted}
    planned: dict[int, tuple] = {}  # {id(layer): (LayerPlan, Candidate)}
    parts: dict[int, dict] = {}  # composite layers: {id(owner): {part: (rank, mode)}}
    for c in candidates(model):
        p = by_name.get(c.name)
        if p is None:
            continue
        if c.owner is None:
            source = (sources or {}).get(c.name)
            planned[id(c.layer)] = (p, source if source is not None and source.layer is c.layer else c)
        else:
            parts.setdefault(id(c.owner), {})[c.part] = (p.rank, p.mode)
    done = []

    def replace(layer):
        if id(layer) in parts:
            return registry.composite_for(layer).build_twin(layer, parts[id(layer)])
        if id(layer) not in planned:
            return None
        p, source = planned[id(layer)]
        entry = registry.entry_for(layer)
        moments = statistics.layers.get(p.name) if statistics is not None else None
        weights = None if moments is None else method.weights(entry, layer, p.rank, p.mode, moments)
        factors = None
        if moments is None and (p.mode in entry.matrix_modes or source.prepared(p.mode, None) is not None):
            try:
                factors = source.factors(p.mode, p.rank)
            except RankError as err:
                raise RankError(f"layer '{layer.name}': {err}") from None
        twin = entry.make_twin(layer, p.rank, p.mode, factors)
        source.release()
        if weights is not None and len(weights) == len(twin.weights):
            twin.set_weights(weights)
        done.append(p.name)
        if on_layer:
            on_layer(len(done), len(planned), p.name)
        return twin

    return rebuild(model, replace)


def calibrate_and_apply(model, plan, x, *, statistics=None, batch_size=64, method=None, sources=None):
    """(new model, Statistics): ``plan`` applied with factors of its method (``plan.method``)
    on the statistics it needs of inputs ``x``.

    A ``sequential`` method has each layer's statistics collected on the inputs the
    already-factorised layers before it produce (one pass per converted layer), against the
    original's inputs (cross moments). ``statistics``: the original model's, already collected
    (reused when the method is not sequential). ``method``: as ``apply_plan``'s.
    """
    method = get_method(plan.method if method is None else method)
    names = [p.name for p in plan.converted]
    if not method.sequential:
        found = statistics if statistics is not None else collect(model, x, names, batch_size, needs=method.needs)
        return apply_plan(model, plan, found, method=method, sources=sources), found
    moments, seconds, skipped = {}, 0.0, {}
    done = []
    for name in names:
        if done:
            partial = replace(plan, layers=[p for p in plan.layers if p.name in done], not_considered=[])
            current = apply_plan(model, partial, Statistics(dict(moments)), method=method)
            found = collect(current, x, [name], batch_size, reference=model, needs=method.needs)
        else:
            found = collect(model, x, [name], batch_size, needs=method.needs)
        moments.update(found.layers)
        skipped.update(found.skipped)
        seconds += found.seconds
        done.append(name)
    result = Statistics(moments, len(x[0]) if isinstance(x, (list, tuple)) else len(x), seconds,
                        "sequential", skipped)
    return apply_plan(model, plan, result, method=method, sources=sources), result
