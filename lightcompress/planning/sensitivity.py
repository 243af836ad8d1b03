"""Sensitivity analysis: how much each layer alone costs the model at each rank of a ladder.

For every candidate layer, mode and rank r, the layer's kernel in a copy of the model is replaced
by the kernel (and bias) its rank-r factors compute, as the factorisation method that will be
applied makes them (``Method.truncated``, from the original layer), so the plan reflects its
starting point, and
the model is evaluated on a held-out slice of the *training* data, never
the test set. The result is cached on disk, keyed by the model's weights and architecture, the
data slice, and the ladder, so a second run with another target reuses it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from ..io import cache
from ..factorization.methods import resolve_method
from ..factorization.candidates import candidates, macs_per_rank
from ..data.dataset import Dataset
from ..training.evaluation import evaluate, output_kind
from ..io.models import plain_copy
from .filters import LayerFilter

LADDER = (1 / 32, 1 / 16, 1 / 8, 3 / 16, 1 / 4, 5 / 16, 3 / 8, 7 / 16, 1 / 2, 5 / 8, 3 / 4, 7 / 8, 1.0)  # of break-even
CACHE_VERSION = 5  # 2: skip reasons in Python words, options carry latency; 3: calibrated factors;
# 4: keyed by the method's name, bias correction measured from the original kernel; 5: a shared
# layer's MACs summed over its calls


@dataclass
class Option:
    """One way to treat one layer: a mode and rank (None: kept as it is), what it costs and loses."""

    rank: int | None
    mode: str | None
    params: int
    macs: int
    loss: float  # on the held-out slice, with only this layer changed
    accuracy: float
    latency: float | None = None  # ms at batch 1 in the profiled runtime (see latency.profile)


@dataclass
class LayerSensitivity:
    name: str
    kind: str
    kernel_shape: list
    options: list  # [Option, ...]; the first is "keep"


@dataclass
class Sensitivity:
    base_loss: float
    base_accuracy: float
    examples: int
    layers: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)  # {name: reason}
    evaluations: int = 0  # model evaluations run to build this (0 when read from the cache)
    seconds: float = 0.0
    cache_file: str | None = None
    from_cache: bool = False
    method: str = "svd"

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        layers = [LayerSensitivity(**{**ls, "options": [Option(**o) for o in ls["options"]]})
                  for ls in d.pop("layers")]
        return cls(layers=layers, **d)


def ladder(limit: int, multiple: int = 1, fractions=LADDER) -> list[int]:
    """Ranks to try for a layer whose break-even rank is ``limit`` (``fractions`` of it), rounded
    to ``multiple``."""
    ranks = set()
    for fraction in fractions:
        r = max(1, int(round(fraction * limit)))
        if multiple > 1:
            r = max(multiple, int(round(r / multiple)) * multiple)
        if r <= limit:
            ranks.add(r)
    return sorted(ranks)


def cache_key(model, data: Dataset, layer_filter: LayerFilter, multiple: int, method_name="svd",
              statistics=None) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, model.to_json(), LADDER, multiple, layer_filter.conv_mode,
                         layer_filter.include, layer_filter.exclude, layer_filter.min_params,
                         layer_filter.min_saving, method_name,
                         None if statistics is None else statistics.digest()]).encode())
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    x, y = data.arrays("test")
    h.update(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()[:32]


def default_cache_dir() -> Path:
    return cache.root() / "sensitivity"


def _parse(data) -> Sensitivity:
    result = Sensitivity.from_dict(data)
    result.evaluations, result.from_cache = 0, True
    return result


def analyse(model, data: Dataset, layer_filter: LayerFilter | None = None, multiple=1, cache_dir=None,
            use_cache=True, on_step=None, warn=None, method=None, statistics=None) -> Sensitivity:
    """The sensitivity table of ``model`` on ``data`` (a held-out slice of training images).

    ``layer_filter`` chooses the layers (include, exclude, min_params) and modes (conv_mode "auto"
    measures every mode). ``on_step(done, total, name)`` reports progress; ``warn(message)`` hears
    about a cache file that had to be ignored. ``method`` (a name or ``methods.Method``; default:
    ``resolve_method``'s) and the ``statistics`` of ``model`` it needs: measure that method's
    truncated weights.
    """
    layer_filter = layer_filter or LayerFilter()
    method = resolve_method(method, statistics is not None)
    cache_file = None
    if cache_dir is not None or use_cache:
        key = cache_key(model, data, layer_filter, multiple, method.name, statistics)
        folder = cache.check_dir(cache_dir if cache_dir is not None else default_cache_dir())
        cache_file = folder / f"{key}.json"
        cached = cache.read(cache_file, _parse, "sensitivity cache", warn) if use_cache else None
        if cached is not None:
            cached.cache_file = str(cache_file)
            return cached

    start = time.perf_counter()
    model = plain_copy(model)  # kernels are swapped below: never in the caller's model
    kind = output_kind(model, data.head("test", 64)[0])
    base = evaluate(model, data, kind)
    result = Sensitivity(base.loss, base.accuracy, base.examples, method=method.name)
    macs = macs_per_rank(model)
    chosen, result.skipped = layer_filter.chosen(candidates(model, statistics, vectors=True, method=method))
    plans = []
    for c in chosen:
        for mode in layer_filter.modes(c):
            plans.extend((c, mode, r) for r in ladder(layer_filter.limit(c, mode), multiple))
    total = len(plans)
    by_name = {}
    previous = None
    for step, (c, mode, rank) in enumerate(plans):
        if previous is not None and previous is not c:
            previous.release()  # memory: one layer's decompositions at a time
        previous = c
        if c.cov is None and mode in c.entry.matrix_modes:
            c.decomposition(mode)  # every rank of the ladder from one decomposition, with vectors
        layer = c.layer  # a candidate of the copy (a leaf layer, or a part of a MultiHeadAttention)
        original = c.entry.kernel(layer)
        bias_var = c.entry.bias(layer)
        original_bias = None if bias_var is None else keras.ops.convert_to_numpy(bias_var)
        moments = None if statistics is None else statistics.layers.get(c.name)
        kernel, bias = method.truncated(c, mode, rank, moments, original_bias)  # before the swap
        c.entry.assign_kernel(layer, kernel)
        if bias is not None and bias is not original_bias and np.all(np.isfinite(bias)):
            bias_var.assign(bias)
        try:
            ev = evaluate(model, data, kind)
            result.evaluations += 1
        finally:
            c.entry.assign_kernel(layer, original)
            if original_bias is not None:
                bias_var.assign(original_bias)
        if c.name not in by_name:
            keep_macs = macs[c.name](None, None) if c.name in macs else 0
            by_name[c.name] = LayerSensitivity(c.name, c.kind, list(c.kernel_shape), [
                Option(None, None, c.params, keep_macs, base.loss, base.accuracy)])
        by_name[c.name].options.append(Option(
            rank, mode, c.factor_params(mode, rank) + c.bias_params,
            macs[c.name](mode, rank) if c.name in macs else 0, ev.loss, ev.accuracy))
        if on_step:
            on_step(step + 1, total, c.name)
    result.layers = [by_name[c.name] for c in chosen if c.name in by_name]
    result.seconds = time.perf_counter() - start
    if cache_file is not None:
        cache.write(result.to_dict(), cache_file)
        result.cache_file = str(cache_file)
    return result
