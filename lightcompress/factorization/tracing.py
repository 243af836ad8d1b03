"""Calls of layers that are not in a model's graph: the attribute layers of a subclassed or
keras-hub model, run by the model's own ``call()``. Each layer's ``call`` is wrapped (an instance
attribute, removed afterwards) while the model runs eagerly, recording what it was called on and
what it returned.

``call_nodes`` gives every layer's calls in the form Keras's graph nodes have
(``input_tensors``, ``output_tensors``), so shape-based counts (MACs, per-layer latency profiles)
read a subclassed model as they read a functional one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import keras

from .. import _keras_private as keras_private
from ..data.synthetic import model_inputs_like
from ..errors import UnsupportedModelError


@contextlib.contextmanager
def recorded(layers):
    """Within the block, every call of each of ``layers`` is recorded: yields
    ``{id(layer): [(positional args, output), ...]}``."""
    layers = list({id(layer): layer for layer in layers}.values())
    seen = {id(layer): [] for layer in layers}
    for layer in layers:
        def call(*args, _seen=seen[id(layer)], _call=layer.call, **kwargs):
            out = _call(*args, **kwargs)
            _seen.append((args if args else tuple(kwargs.values())[:1], out))
            return out

        object.__setattr__(layer, "call", call)
    try:
        yield seen
    finally:
        for layer in layers:
            if "call" in vars(layer):
                object.__delattr__(layer, "call")


@dataclass
class Call:
    """One recorded call, shaped like a Keras graph node: tensors of batch size None."""

    input_tensors: list
    output_tensors: list


def _symbolic(values) -> list:
    return [keras.KerasTensor((None, *tuple(v.shape)[1:]), dtype=keras.backend.standardize_dtype(v.dtype))
            for v in keras.tree.flatten(values) if hasattr(v, "shape") and len(v.shape) > 0]


def call_nodes(model, layers) -> dict:
    """{id(layer): [node or Call, ...]}: the graph's nodes (``keras_private.graph_nodes``) and, for
    those of ``layers`` no graph holds (a subclassed or keras-hub model's attribute layers, the
    projections inside an attention layer), their calls recorded on one random example (none when
    the model's input sizes are not fixed)."""
    found = keras_private.graph_nodes(model)

    layers = [layer for layer in layers if id(layer) not in found]
    if not layers:
        return found
    try:
        x = model_inputs_like(model, batch=1)
    except UnsupportedModelError:
        return found
    try:
        with recorded(layers) as seen:
            model(x, training=False)
    except Exception:  # noqa: BLE001 - a model that cannot run on random inputs: its counts stay unknown
        return found
    for layer in layers:
        calls = [Call(_symbolic(args), _symbolic(out)) for args, out in seen[id(layer)]]
        if calls:
            found[id(layer)] = calls
    return found
