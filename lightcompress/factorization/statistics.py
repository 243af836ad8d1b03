"""Calibration: what each factorisable layer sees on real inputs, for data-aware factors.

One streaming pass over calibration batches runs a sub-model of the model that returns the
inputs of the chosen layers (every call of a shared layer), turns each into the rows its kernel
matrix multiplies (the registry's ``input_matrix``: im2col patches in (kh, kw, c) order for a
Conv2D, the last axis for a Dense), and accumulates their second moment E[x·xᵀ] and mean in
float64. Only the moments are kept, never the activations, so memory is one n×n matrix per layer.

Calibration images are drawn from the *training* images (``calibration_images``), never the test
images. With ``reference`` (the original model) the pass also accumulates the cross moment
E[x̂·xᵀ] between the layer's inputs in ``model`` (x̂: from already-factorised earlier layers) and
in the original (x): sequential calibration, see ``svd.sequential_target``.

Layers inside nested models, and layer types without an ``input_matrix``, are not calibrated
(their factors stay plain SVD); ``Calibration.skipped`` says which and why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import keras
import numpy as np

from .. import _keras_private as keras_private, linalg as svd
from ..layers import registry
from .candidates import iter_layers
from ..errors import DataError, OptionError

METHODS = ("svd", "data-aware")
ROWS_PER_CHUNK = 1 << 15  # rows of an input matrix turned into a moment at once (memory bound)
# Most rows per layer: a conv sees one row per output position, 242,000 for 2,000 images of the
# fmnist models' 11×11 conv, far more than a 576×576 moment needs; above this, every k-th row of
# each batch is kept (the offset turning with the batch, so all positions are seen). With a
# compiled probe this took keras2's pass (2,000 images) from 28 s to 7 s on the shared 2 cores.
MAX_ROWS = 20_000


@dataclass
class LayerMoments:
    """Second moment (n, n) and mean (n,) of the rows one layer's kernel matrix multiplies."""

    cov: np.ndarray
    mean: np.ndarray
    rows: int
    cross: np.ndarray | None = None  # E[x̂·xᵀ] (sequential calibration)
    reference_mean: np.ndarray | None = None  # mean of x (the original model's inputs)


@dataclass
class Calibration:
    layers: dict = field(default_factory=dict)  # {layer path: LayerMoments}
    samples: int = 0
    seconds: float = 0.0
    source: str = ""
    skipped: dict = field(default_factory=dict)  # {layer path: reason}

    def cov_for(self, name):
        moments = self.layers.get(name)
        return None if moments is None else moments.cov

    def digest(self) -> str:
        """A short hash of the moments (sensitivity cache keys)."""
        import hashlib

        h = hashlib.sha256()
        for name in sorted(self.layers):
            h.update(name.encode())
            h.update(np.ascontiguousarray(self.layers[name].cov).tobytes())
        return h.hexdigest()[:16]


def check_method(method, has_data: bool) -> str:
    """The factorisation method to use: ``method`` checked, or the default ("data-aware" with
    calibration data, "svd" without)."""
    if method is None:
        return "data-aware" if has_data else "svd"
    if method not in METHODS:
        raise OptionError("is unknown", option="method", value=method, allowed=f"one of {', '.join(METHODS)}")
    if method == "data-aware" and not has_data:
        raise OptionError("method='data-aware' needs calibration inputs; give a data set (data=NAME), "
                          "or use method='svd'.")
    return method


def check_count(count) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise OptionError("is invalid", option="calibration", value=count, allowed="1 or more training images")
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
    for name, layer in iter_layers(model):
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


def _rows(entry, layer, tensor):
    return np.asarray(keras.ops.convert_to_numpy(entry.input_matrix(layer, tensor)), dtype=np.float32)


def _accumulate(acc, name, rows, ref_rows):
    n = rows.shape[1]
    if name not in acc:
        acc[name] = [np.zeros((n, n)), np.zeros(n), 0, None if ref_rows is None else np.zeros((n, n)),
                     None if ref_rows is None else np.zeros(n)]
    a = acc[name]
    for i in range(0, len(rows), ROWS_PER_CHUNK):
        chunk = np.ascontiguousarray(rows[i:i + ROWS_PER_CHUNK])
        a[0] += chunk.T @ chunk
        a[1] += chunk.sum(axis=0, dtype=np.float64)
        if ref_rows is not None:
            ref = np.ascontiguousarray(ref_rows[i:i + ROWS_PER_CHUNK])
            a[3] += chunk.T @ ref
            a[4] += ref.sum(axis=0, dtype=np.float64)
    a[2] += len(rows)


def collect(model, x, names=None, batch_size: int = 64, reference=None, source="calibration inputs",
            on_batch=None) -> Calibration:
    """Input moments of the layers ``names`` (default: every registered layer) of ``model`` on
    inputs ``x``, in one streaming pass of ``batch_size`` examples.

    With ``reference`` (a model with layers of the same names, usually the original) the cross
    moments between the two models' inputs of each layer are accumulated too.
    """
    start = time.perf_counter()
    if names is None:
        names = [name for name, layer in iter_layers(model) if registry.entry_for(layer) is not None]
    names = set(names)
    found, skipped = _layer_inputs(model, names)
    probe, kept = _probe(model, found, skipped)
    ref_probe = ref_kept = None
    if reference is not None and kept:
        ref_found, _ = _layer_inputs(reference, set(kept))
        ref_probe, ref_kept = _probe(reference, ref_found, {})
    acc = {}
    xs = x if isinstance(x, (list, tuple)) else [x]
    count = len(xs[0])
    for start_row in range(0, count, batch_size) if probe is not None else ():
        batch = [a[start_row:start_row + batch_size] for a in xs]
        outs = probe.predict_on_batch(batch)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        ref_outs = None
        if ref_probe is not None:
            ref_outs = ref_probe.predict_on_batch(batch)
            ref_outs = ref_outs if isinstance(ref_outs, (list, tuple)) else [ref_outs]
        batches = -(-count // batch_size)
        for name, (layer, entry, first, calls) in kept.items():
            for k in range(calls):
                rows = _rows(entry, layer, outs[first + k])
                ref_rows = None
                if ref_outs is not None and name in ref_kept:
                    r_layer, r_entry, r_first, _ = ref_kept[name]
                    ref_rows = _rows(r_entry, r_layer, ref_outs[r_first + k])
                step = max(1, -(-len(rows) * batches * calls // MAX_ROWS))
                if step > 1:
                    offset = (start_row // batch_size) % step
                    rows = rows[offset::step]
                    ref_rows = None if ref_rows is None else ref_rows[offset::step]
                _accumulate(acc, name, rows, ref_rows)
        if on_batch:
            on_batch(min(start_row + batch_size, count), count)
    layers = {}
    for name, (cov, total, rows, cross, ref_total) in acc.items():
        if rows == 0:
            continue
        layers[name] = LayerMoments(cov / rows, total / rows, rows,
                                    None if cross is None else cross / rows,
                                    None if ref_total is None else ref_total / rows)
    skipped.update({name: "no rows seen" for name in kept if name not in layers})
    return Calibration(layers, count, time.perf_counter() - start, source, skipped)


def calibrated_weights(entry, layer, rank, mode, moments, bias_correction=False):
    """The twin's weights (kernels, then the bias if it has one) from data-aware factors on the
    layer's input ``moments`` (``calibration.LayerMoments``); None if they are not finite.

    With cross moments (sequential calibration) the kernel factorised is ``svd.sequential_target``.
    ``bias_correction`` adds the mean output shift E[x]·W − E[x̂]·W_r to the bias."""
    kernel = entry.kernel(layer)
    base = entry.modes[0]
    w = entry.to_matrix(kernel, base)
    target = kernel
    if moments.cross is not None:
        target = entry.from_matrix(svd.sequential_target(w, moments.cov, moments.cross), kernel.shape, base)
        target = np.asarray(target, dtype=kernel.dtype)
    weights = [np.asarray(k) for k in entry.factors(target, rank, mode, moments.cov)]
    bias = getattr(layer, "bias", None)
    if bias is not None:
        bias = keras.ops.convert_to_numpy(bias).astype(np.float64)
        if bias_correction:
            approx = entry.to_matrix(entry.approximate(target, rank, mode, moments.cov), base)
            ref_mean = moments.mean if moments.reference_mean is None else moments.reference_mean
            bias = bias + ref_mean @ w.astype(np.float64) - moments.mean @ approx.astype(np.float64)
        weights.append(bias.astype(kernel.dtype))
    return weights if all(np.all(np.isfinite(v)) for v in weights) else None
