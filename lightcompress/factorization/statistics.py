"""The statistics collector: what each factorisable layer sees on real inputs, gathered once for
the factorisation method that asks (``methods.Method.needs``); nothing else collects.

One streaming pass over calibration batches runs a sub-model of the model that returns the
inputs of the chosen layers (every call of a shared layer), turns each into the rows its kernel
matrix multiplies (the registry's ``input_matrix``: im2col patches in (kh, kw, c) order for a
Conv2D, the last axis for a Dense), and accumulates the statistics asked for (``STATISTICS``: their second moment E[x·xᵀ], their
mean) in float64. Only the moments are kept, never the activations, so memory is one n×n matrix per layer.

Calibration images are drawn from the *training* images (``calibration_images``), never the test
images. With ``reference`` (the original model) the pass also accumulates the cross moment
E[x̂·xᵀ] between the layer's inputs in ``model`` (x̂: from already-factorised earlier layers) and
in the original (x), and the original's mean: sequential calibration, see
``linalg.sequential_target``.

Layers outside the model's graph (the attribute layers of a subclassed or keras-hub model, layers
inside nested models) are calibrated too: their ``call`` is wrapped while the model runs eagerly on
each batch, recording what they were called on (``_Hooks``). Layer types without an
``input_matrix`` are not calibrated (their factors stay plain SVD); ``Statistics.skipped`` says
which and why.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import keras
import numpy as np

from .. import _keras_private as keras_private
from ..errors import DataError, OptionError
from ..layers import registry
from .candidates import named_layers
from .tracing import recorded

# The statistics a method may declare it needs (``Method.needs``), per layer:
STATISTICS = ("input_covariance",  # E[x·xᵀ] of the rows the kernel multiplies (LayerMoments.cov)
              "input_mean")  # E[x] (LayerMoments.mean)
ROWS_PER_CHUNK = 1 << 15  # rows of an input matrix turned into a moment at once (memory bound)
# Most rows per layer: a conv sees one row per output position, 242,000 for 2,000 images of the
# fmnist models' 11×11 conv, far more than a 576×576 moment needs; above this, every k-th row of
# each batch is kept (the offset turning with the batch, so all positions are seen). With a
# compiled probe this took keras2's pass (2,000 images) from 28 s to 7 s on the shared 2 cores.
MAX_ROWS = 20_000


@dataclass
class LayerMoments:
    """Second moment (n, n) and mean (n,) of the rows one layer's kernel matrix multiplies (each
    None when not asked for)."""

    cov: np.ndarray | None
    mean: np.ndarray | None
    rows: int
    cross: np.ndarray | None = None  # E[x̂·xᵀ] (sequential calibration)
    reference_mean: np.ndarray | None = None  # mean of x (the original model's inputs)


@dataclass
class Statistics:
    """What one collection gathered: ``LayerMoments`` per layer path, on ``samples`` inputs."""

    layers: dict = field(default_factory=dict)  # {layer path: LayerMoments}
    samples: int = 0
    seconds: float = 0.0
    source: str = ""
    skipped: dict = field(default_factory=dict)  # {layer path: reason}

    def digest(self) -> str:
        """A short hash of the moments (sensitivity cache keys)."""
        h = hashlib.sha256()
        for name in sorted(self.layers):
            h.update(name.encode())
            for value in (self.layers[name].cov, self.layers[name].mean):
                if value is not None:
                    h.update(np.ascontiguousarray(value).tobytes())
        return h.hexdigest()[:16]


def check_count(count) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise OptionError("is invalid", option="calibration_samples", value=count, allowed="1 or more training images")
    return count


def calibration_images(prepared, count: int, seed: int = 0) -> np.ndarray:
    """``count`` training images of the data set ``prepared`` (never its test images), spread
    over its training split (see ``Dataset.sample``: drawn at random in memory, read in batches
    from a stream)."""
    check_count(count)
    if prepared.count("train") == 0:
        raise DataError(f"{prepared.name} has no training images to calibrate on.")
    return prepared.sample("train", count, seed + 7)[0]


def _layer_inputs(model, names):
    """({name: [input tensors of every call]}, {name: reason not calibrated})."""
    calls = keras_private.graph_nodes(model)
    found, skipped = {}, {}
    for name, layer in named_layers(model):
        if name not in names:
            continue
        entry = registry.entry_for(layer)
        if entry is None or entry.input_matrix is None:
            skipped[name] = "layer type has no calibration view (input_matrix)"
            continue
        if "/" in name:
            skipped[name] = "inside a nested model"
            continue
        tensors = [n.input_tensors[0] for n in calls.get(id(layer), []) if n.input_tensors]
        if not tensors:
            skipped[name] = "not called in the model's graph"
            continue
        found[name] = (layer, entry, tensors)
    return found, skipped


def _probe(model, found, skipped):
    """A sub-model returning every found layer's inputs; layers it cannot reach are skipped."""
    outputs, kept = [], {}
    for name, (layer, entry, tensors) in list(found.items()):
        try:
            keras.Model(model.inputs, tensors)
        except (ValueError, TypeError, KeyError):
            skipped[name] = "its inputs are not reachable from the model's inputs"
            continue
        kept[name] = (layer, entry, len(outputs), len(tensors))
        outputs.extend(tensors)
    probe = keras.Model(model.inputs, outputs) if outputs else None
    return probe, kept


def _add(acc, name, rows, ref_rows, needs, calls, batch_index):
    """Accumulate one call's rows, every k-th when the pass would see more than ``MAX_ROWS``
    (``calls``: this layer's calls over the whole pass; the offset turns with the batch)."""
    step = max(1, -(-len(rows) * calls // MAX_ROWS))
    if step > 1:
        offset = batch_index % step
        rows = rows[offset::step]
        ref_rows = None if ref_rows is None else ref_rows[offset::step]
    _accumulate(acc, name, rows, ref_rows, needs)


# Reasons a layer has no tensor in the model's graph; its inputs are recorded by hooks instead.
_OUTSIDE_GRAPH = ("inside a nested model", "not called in the model's graph")


class _Hooks:
    """Inputs of layers outside the model's graph, recorded (``tracing.recorded``) while the
    model runs eagerly on a batch."""

    def __init__(self, model, layers):
        self.model, self.layers = model, layers  # {name: (layer, entry)}

    @classmethod
    def of_skipped(cls, model, skipped):
        """Hooks for the layers ``skipped`` as outside the graph (taken out of ``skipped``), or None."""
        wanted = {name for name, reason in skipped.items() if reason in _OUTSIDE_GRAPH}
        layers = {}
        for name, layer in named_layers(model):
            entry = registry.entry_for(layer) if name in wanted else None
            if entry is not None and entry.input_matrix is not None and id(layer) not in {id(v[0]) for v in layers.values()}:
                layers[name] = (layer, entry)
                del skipped[name]
        return cls(model, layers) if layers else None

    def run(self, batch) -> dict:
        """{name: (layer, entry, [the input of each call])} for one batch."""
        with recorded(layer for layer, _ in self.layers.values()) as seen:
            self.model(batch[0] if len(batch) == 1 else batch, training=False)
        return {name: (layer, entry, [args[0] for args, _ in seen[id(layer)]])
                for name, (layer, entry) in self.layers.items()}


def _rows(entry, layer, tensor):
    return np.asarray(keras.ops.convert_to_numpy(entry.input_matrix(layer, tensor)), dtype=np.float32)


def _accumulate(acc, name, rows, ref_rows, needs):
    n = rows.shape[1]
    cov, mean = "input_covariance" in needs, "input_mean" in needs
    if name not in acc:
        acc[name] = [np.zeros((n, n)) if cov else None, np.zeros(n) if mean else None, 0,
                     np.zeros((n, n)) if cov and ref_rows is not None else None,
                     np.zeros(n) if mean and ref_rows is not None else None]
    a = acc[name]
    for i in range(0, len(rows), ROWS_PER_CHUNK):
        chunk = np.ascontiguousarray(rows[i:i + ROWS_PER_CHUNK])
        ref = None if ref_rows is None else np.ascontiguousarray(ref_rows[i:i + ROWS_PER_CHUNK])
        if a[0] is not None:
            a[0] += chunk.T @ chunk
        if a[1] is not None:
            a[1] += chunk.sum(axis=0, dtype=np.float64)
        if a[3] is not None:
            a[3] += chunk.T @ ref
        if a[4] is not None:
            a[4] += ref.sum(axis=0, dtype=np.float64)
    a[2] += len(rows)


def check_needs(needs) -> tuple:
    """``needs`` (statistic names) checked against ``STATISTICS``.

    >>> check_needs(["input_mean", "input_covariance"])
    ('input_covariance', 'input_mean')
    """
    unknown = sorted(set(needs) - set(STATISTICS))
    if unknown:
        raise OptionError(f"statistics {', '.join(map(repr, unknown))} are unknown; a method may need "
                          f"{', '.join(STATISTICS)}.")
    return tuple(s for s in STATISTICS if s in set(needs))


def collect(model, x, names=None, batch_size: int = 64, reference=None, source="calibration inputs",
            on_batch=None, needs=STATISTICS) -> Statistics:
    """The statistics ``needs`` (default: all of ``STATISTICS``) of the inputs of the layers
    ``names`` (default: every registered layer) of ``model`` on inputs ``x``, in one streaming
    pass of ``batch_size`` examples.

    With ``reference`` (a model with layers of the same names, usually the original) the cross
    moments between the two models' inputs of each layer (and the reference's mean, when the
    mean is asked for) are accumulated too.
    """
    needs = check_needs(needs)
    start = time.perf_counter()
    if names is None:
        names = [name for name, layer in named_layers(model) if registry.entry_for(layer) is not None]
    names = set(names)
    found, skipped = _layer_inputs(model, names)
    probe, kept = _probe(model, found, skipped)
    hooks = _Hooks.of_skipped(model, skipped)
    ref_probe = ref_kept = None
    if reference is not None and kept:
        ref_found, _ = _layer_inputs(reference, set(kept))
        ref_probe, ref_kept = _probe(reference, ref_found, {})
    acc = {}
    xs = x if isinstance(x, (list, tuple)) else [x]
    count = len(xs[0])
    batches = -(-count // batch_size)
    for start_row in range(0, count, batch_size) if probe is not None or hooks else ():
        batch = [a[start_row:start_row + batch_size] for a in xs]
        for name, (layer, entry, tensors) in (hooks.run(batch) if hooks else {}).items():
            for tensor in tensors:
                _add(acc, name, _rows(entry, layer, tensor), None, needs, batches * len(tensors), start_row // batch_size)
        if probe is None:
            if on_batch:
                on_batch(min(start_row + batch_size, count), count)
            continue
        outs = probe.predict_on_batch(batch)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        ref_outs = None
        if ref_probe is not None:
            ref_outs = ref_probe.predict_on_batch(batch)
            ref_outs = ref_outs if isinstance(ref_outs, (list, tuple)) else [ref_outs]
        for name, (layer, entry, first, calls) in kept.items():
            for k in range(calls):
                rows = _rows(entry, layer, outs[first + k])
                ref_rows = None
                if ref_outs is not None and name in ref_kept:
                    r_layer, r_entry, r_first, _ = ref_kept[name]
                    ref_rows = _rows(r_entry, r_layer, ref_outs[r_first + k])
                _add(acc, name, rows, ref_rows, needs, batches * calls, start_row // batch_size)
        if on_batch:
            on_batch(min(start_row + batch_size, count), count)
    layers = {}
    for name, (cov, total, rows, cross, ref_total) in acc.items():
        if rows == 0:
            continue
        layers[name] = LayerMoments(None if cov is None else cov / rows, None if total is None else total / rows, rows,
                                    None if cross is None else cross / rows,
                                    None if ref_total is None else ref_total / rows)
    skipped.update({name: "no rows seen" for name in [*kept, *(hooks.layers if hooks else ())] if name not in layers})
    return Statistics(layers, count, time.perf_counter() - start, source, skipped)
