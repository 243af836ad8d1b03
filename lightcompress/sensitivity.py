"""Sensitivity analysis: how much each layer alone costs the model at each rank of a ladder.

For every candidate layer and rank r, the layer's kernel in a copy of the model is replaced by
its rank-r truncation (the product of the two SVD factors, which computes exactly what the
LightLayer would) and the model is evaluated on a held-out slice of the *training* data, never
the test set. The result is cached on disk, keyed by the model's weights and architecture, the
data slice, and the ladder, so a second run with another target reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from . import svd
from .analyze import (
    candidates,
    conv_geometry,
    dense_positions,
    factorized_conv_macs,
    graph_nodes,
    iter_layers,
)
from .data import Prepared
from .finetune import evaluate, output_kind
from .model_io import plain_copy
from .plan import RankPolicy, _filter_reason, _modes

LADDER = (1 / 32, 1 / 16, 1 / 8, 3 / 16, 1 / 4, 5 / 16, 3 / 8, 7 / 16, 1 / 2, 5 / 8, 3 / 4, 7 / 8, 1.0)  # of break-even
CACHE_VERSION = 1


@dataclass
class Option:
    """One way to treat one layer: a mode and rank (None: kept as it is), what it costs and loses."""

    rank: int | None
    mode: str | None
    params: int
    macs: int
    loss: float  # on the held-out slice, with only this layer changed
    accuracy: float


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

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        layers = [LayerSensitivity(**{**ls, "options": [Option(**o) for o in ls["options"]]})
                  for ls in d.pop("layers")]
        return cls(layers=layers, **d)


def ladder(limit: int, multiple: int = 1) -> list[int]:
    """Ranks to try for a layer whose break-even rank is ``limit``, rounded to ``multiple``."""
    ranks = set()
    for fraction in LADDER:
        r = max(1, int(round(fraction * limit)))
        if multiple > 1:
            r = max(multiple, int(round(r / multiple)) * multiple)
        if r <= limit:
            ranks.add(r)
    return sorted(ranks)


def _macs_per_rank(model):
    """{layer name: function(mode, rank) -> MACs per example} for the Dense/Conv2D layers
    (rank None: the layer as it is)."""
    calls = graph_nodes(model)
    out = {}
    for name, layer in iter_layers(model):
        nodes = calls.get(id(layer), [])
        if not nodes:
            continue
        in_shape = tuple(nodes[0].input_tensors[0].shape)
        out_shape = tuple(nodes[0].output_tensors[0].shape)
        if type(layer) is keras.layers.Dense:
            p, n, m = dense_positions(out_shape), in_shape[-1], out_shape[-1]
            out[name] = lambda mode, r, p=p, n=n, m=m: p * (n * m if r is None else r * (n + m))
        elif type(layer) is keras.layers.Conv2D:
            c, f, out_hw, in_w = conv_geometry(layer, in_shape, out_shape)
            out[name] = lambda mode, r, k=layer.kernel_size, c=c, f=f, hw=out_hw, w=in_w: (
                factorized_conv_macs(mode, r, k, c, f, hw, w))
    return out


def cache_key(model, data: Prepared, policy: RankPolicy, multiple: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, model.to_json(), LADDER, multiple, policy.conv_mode,
                         policy.include, policy.exclude, policy.min_params]).encode())
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    h.update(np.ascontiguousarray(data.x_test).tobytes())
    h.update(np.ascontiguousarray(data.y_test).tobytes())
    return h.hexdigest()[:32]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lightcompress" / "sensitivity"


def analyse(model, data: Prepared, policy: RankPolicy, multiple=1, cache_dir=None, use_cache=True,
            on_step=None) -> Sensitivity:
    """The sensitivity table of ``model`` on ``data`` (a held-out slice: see ``holdout``).

    ``policy`` supplies the layer filters (include, exclude, min_params) and conv mode ("auto"
    measures both modes). ``on_step(done, total, name)`` reports progress.
    """
    cache_file = None
    if cache_dir is not None or use_cache:
        cache_file = Path(cache_dir or default_cache_dir()) / f"{cache_key(model, data, policy, multiple)}.json"
        if use_cache and cache_file.exists():
            result = Sensitivity.from_dict(json.loads(cache_file.read_text()))
            result.evaluations, result.from_cache, result.cache_file = 0, True, str(cache_file)
            return result

    start = time.perf_counter()
    model = plain_copy(model)  # kernels are swapped below: never in the caller's model
    kind = output_kind(model, data.x_test)
    base = evaluate(model, data, kind)
    result = Sensitivity(base.loss, base.accuracy, base.examples)
    macs = _macs_per_rank(model)
    chosen = []
    for c in candidates(model):
        reason = _filter_reason(c, policy)
        if reason:
            result.skipped[c.name] = reason
        else:
            chosen.append(c)
    plans = []
    for c in chosen:
        for mode in _modes(c, policy):
            n, m = c.matrix_shape(mode)
            plans.extend((c, mode, r) for r in ladder(svd.break_even_rank(n, m), multiple))
    total = len(plans)
    layer_of = dict(iter_layers(model))
    by_name = {}
    for step, (c, mode, rank) in enumerate(plans):
        layer = layer_of[c.name]
        original = keras.ops.convert_to_numpy(layer.kernel)
        layer.kernel.assign(svd.truncated_kernel(c.kernel, rank, mode))
        try:
            ev = evaluate(model, data, kind)
            result.evaluations += 1
        finally:
            layer.kernel.assign(original)
        n, m = c.matrix_shape(mode)
        if c.name not in by_name:
            keep_macs = macs[c.name](None, None) if c.name in macs else 0
            by_name[c.name] = LayerSensitivity(c.name, c.kind, list(c.kernel_shape), [
                Option(None, None, c.params, keep_macs, base.loss, base.accuracy)])
        by_name[c.name].options.append(Option(
            rank, mode, svd.factorized_params(n, m, rank) + c.bias_params,
            macs[c.name](mode, rank) if c.name in macs else 0, ev.loss, ev.accuracy))
        if on_step:
            on_step(step + 1, total, c.name)
    result.layers = [by_name[c.name] for c in chosen if c.name in by_name]
    result.seconds = time.perf_counter() - start
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(result.to_dict()))
        os.replace(tmp, cache_file)
        result.cache_file = str(cache_file)
    return result
