"""Rebuild a model with the LightLayers a plan asks for, SVD-initialised.

The model is rebuilt with ``keras.models.clone_model`` (Sequential and Functional graphs, nested
models, shared layers, raw tensor operations). Every layer of the new model is a new object:
planned layers become their registered LightLayer twins, all others are recreated from their
config and given a copy of their weights. The source model is never changed, and the two models
share nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from .. import _keras_private as keras_private
from ..layers import registry
from .candidates import candidates, iter_layers, weight_bytes
from .statistics import calibrated_weights
from ..errors import OptionError, RankError, UnsupportedModelError
from ..planning import LayerFilter, LayerPlan, Plan, make_plan


def check_graph_model(model):
    if not keras_private.is_graph_model(model):
        raise UnsupportedModelError(
            f"model '{model.name}' is a subclassed model ({type(model).__name__}); lightcompress "
            f"rewrites Sequential and Functional models only.")


def rebuild(model, replace) -> keras.Model:
    """A copy of ``model`` sharing nothing with it, where ``replace(layer)`` may return a new
    layer for any layer (None keeps a recreated copy with the same weights)."""
    check_graph_model(model)
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


def apply_plan(model, plan: Plan, calibration=None, bias_correction=False, on_layer=None) -> keras.Model:
    """A new model in which every converted layer of ``plan`` is its LightLayer twin: plain SVD
    factors, or data-aware ones for the layers ``calibration`` (``calibration.Calibration``) covers.

    Plain factors come from the decompositions the plan was decided from (``plan.sources``), so no
    kernel is decomposed twice; each layer's work is released once its twin is built.
    ``on_layer(done, total, name)`` reports progress."""
    by_name = {p.name: p for p in plan.converted}
    planned: dict[int, tuple] = {}  # {id(layer): (LayerPlan, Candidate)}
    parts: dict[int, dict] = {}  # composite layers: {id(owner): {part: (rank, mode)}}
    for c in candidates(model):
        p = by_name.get(c.name)
        if p is None:
            continue
        if c.owner is None:
            source = plan.sources.get(c.name)
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
        moments = calibration.layers.get(p.name) if calibration is not None else None
        factors = None
        if moments is None and p.mode in entry.matrix_modes:
            try:
                factors = source.factors(p.mode, p.rank)
            except RankError as err:
                raise RankError(f"layer '{layer.name}': {err}") from None
        twin = entry.make_twin(layer, p.rank, p.mode, factors)
        source.release()
        if moments is not None:
            weights = calibrated_weights(entry, layer, p.rank, p.mode, moments, bias_correction)
            if weights is not None and len(weights) == len(twin.weights):
                twin.set_weights(weights)
        done.append(p.name)
        if on_layer:
            on_layer(len(done), len(planned), p.name)
        return twin

    try:
        return rebuild(model, replace)
    finally:
        plan.sources = {}  # applied: the candidates (and the layers they hold) are not kept


def calibrate_and_apply(model, plan: Plan, x, *, sequential=False, bias_correction=False, calibration=None,
                        batch_size=64):
    """(new model, Calibration): ``plan`` applied with data-aware factors from inputs ``x``.

    ``sequential``: each layer is calibrated on the inputs the already-factorised layers before
    it produce (one pass per converted layer), against the original's inputs (cross moments).
    ``calibration``: moments of the original model already collected (reused when not sequential).
    """
    from .statistics import Calibration, collect

    names = [p.name for p in plan.converted]
    if not sequential:
        cal = calibration if calibration is not None else collect(model, x, names, batch_size)
        return apply_plan(model, plan, cal, bias_correction), cal
    moments, seconds, skipped = {}, 0.0, {}
    done = []
    for name in names:
        if done:
            partial = Plan(plan.policy, [p for p in plan.layers if p.name in done], method=plan.method)
            current = apply_plan(model, partial, Calibration(dict(moments)), bias_correction)
            cal = collect(current, x, [name], batch_size, reference=model)
        else:
            cal = collect(model, x, [name], batch_size)
        moments.update(cal.layers)
        skipped.update(cal.skipped)
        seconds += cal.seconds
        done.append(name)
    result = Calibration(moments, len(x[0]) if isinstance(x, (list, tuple)) else len(x), seconds,
                         "sequential", skipped)
    return apply_plan(model, plan, result, bias_correction), result


def _token_vocabularies(model) -> dict:
    """{index of a model input: vocabulary size} for inputs that feed an Embedding directly."""
    from .. import _keras_private as keras_private

    positions = {id(t): i for i, t in enumerate(model.inputs)}
    vocab = {}
    for nodes in keras_private.graph_nodes(model).values():
        for node in nodes:
            size = getattr(node.operation, "input_dim", None)
            if size is None or not isinstance(node.operation, keras.layers.Layer):
                continue
            for tensor in node.input_tensors:
                i = positions.get(id(tensor))
                if i is not None:
                    vocab[i] = min(vocab.get(i, size), int(size))
    return vocab


RANDOM_INPUT_MACS = 4e10  # multiply-accumulates one comparison on random inputs may cost (~1-2 s here)


def random_batch(model, most=32, least=2) -> int:
    """How many random inputs to compare ``model`` on: ``most``, fewer for a model whose forward
    pass is costly (VGG16, 15.5 GMACs per example: 2), never fewer than ``least``."""
    from .candidates import layer_stats

    per_example = sum(s.macs or 0 for s in layer_stats(model))
    return int(max(least, min(most, RANDOM_INPUT_MACS // max(per_example, 1))))


def model_inputs_like(model, batch=32, seed=0):
    """Random inputs shaped for ``model``'s inputs (unknown sizes other than batch fail): token
    ids below the vocabulary size for inputs that feed an Embedding (or have an integer dtype),
    floats in [0, 1) otherwise."""
    rng = np.random.default_rng(seed)
    vocab = _token_vocabularies(model)
    arrays = []
    for i, tensor in enumerate(model.inputs):
        shape = tuple(tensor.shape)[1:]
        if any(d is None for d in shape):
            raise UnsupportedModelError(
                f"input '{tensor.name}' has an unknown size {tuple(tensor.shape)}; give a data set so "
                f"real inputs can be used."
            )
        integer = "int" in str(tensor.dtype)
        if i in vocab or integer:
            dtype = str(tensor.dtype) if integer else "float32"
            arrays.append(rng.integers(0, vocab.get(i, 2), size=(batch, *shape)).astype(dtype))
        else:
            arrays.append(rng.random((batch, *shape), dtype=np.float32))
    return arrays if len(arrays) > 1 else arrays[0]


@dataclass
class OutputDifference:
    """How far a converted model's outputs are from the original's on the same inputs.

    ``agreement`` (classification outputs) comes first in every report: a small relative
    difference of probabilities says little when the predicted classes changed."""

    relative: float  # ||y - y'|| / ||y|| over all outputs
    max_abs: float
    agreement: float | None  # fraction of examples with the same argmax (classification outputs)
    examples: int
    source: str
    changed: int | None = None  # examples whose top-1 class changed


def output_difference(original, converted, x, source="random inputs") -> OutputDifference:
    ys = _as_list(original.predict(x, verbose=0, batch_size=256))
    ys2 = _as_list(converted.predict(x, verbose=0, batch_size=256))
    diff = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(ys, ys2)))
    norm = np.sqrt(sum(np.sum(a**2) for a in ys))
    agreement = changed = None
    if ys[0].ndim == 2 and ys[0].shape[1] > 1:
        same = np.argmax(ys[0], 1) == np.argmax(ys2[0], 1)
        agreement, changed = float(np.mean(same)), int(np.sum(~same))
    return OutputDifference(
        relative=float(diff / norm) if norm > 0 else float(diff),
        max_abs=float(max(np.max(np.abs(a - b)) for a, b in zip(ys, ys2))),
        agreement=agreement,
        examples=int(len(ys[0])),
        source=source,
        changed=changed,
    )


def _as_list(y):
    return [np.asarray(a) for a in y] if isinstance(y, (list, tuple)) else [np.asarray(y)]


@dataclass
class Conversion:
    """A converted model and the numbers that describe the conversion."""

    model: keras.Model
    plan: Plan
    params_before: int
    params_after: int
    weight_bytes_before: int
    weight_bytes_after: int
    difference: OutputDifference
    method: str = "svd"
    calibration_seconds: float | None = None  # wall time of the calibration passes
    calibration_samples: int | None = None


def convert(model, rule=None, layer_filter: LayerFilter | None = None, x=None, source="random inputs",
            plan=None, *, calibration_x=None, method=None, sequential=False, bias_correction=False) -> Conversion:
    """Plan ranks with ``rule`` and ``layer_filter`` (or take ``plan``), rebuild ``model`` with
    LightLayers, and measure the result.

    ``x``: inputs to compare the two models' outputs on (random inputs when None).
    ``calibration_x``: training inputs for data-aware factors (``method`` "data-aware", the default
    when they are given; "svd" forces plain truncated SVD). The plan's errors are then output
    errors on them, so the rank rules allocate by what each layer computes.
    """
    from .statistics import check_method, collect

    if (rule is None) == (plan is None):
        raise OptionError("give either a rank rule or a plan to convert, not both or neither.")
    method = check_method(method, calibration_x is not None)
    cal = None
    if method == "data-aware":
        cal = collect(model, calibration_x)
    if plan is None:
        plan = make_plan(model, rule, layer_filter, calibration=cal)
    plan.method = method
    seconds = None
    if cal is not None:
        new_model, used = calibrate_and_apply(model, plan, calibration_x, sequential=sequential,
                                              bias_correction=bias_correction,
                                              calibration=None if sequential else cal)
        seconds = cal.seconds + (used.seconds if sequential else 0.0)
    else:
        new_model = apply_plan(model, plan)
    if x is None:
        x = model_inputs_like(model, random_batch(model))
    return Conversion(
        model=new_model,
        plan=plan,
        params_before=int(model.count_params()),
        params_after=int(model.count_params()) - plan.params_saved(),
        weight_bytes_before=weight_bytes(model),
        weight_bytes_after=weight_bytes(new_model),
        difference=output_difference(model, new_model, x, source),
        method=method,
        calibration_seconds=seconds,
        calibration_samples=None if cal is None else cal.samples,
    )
