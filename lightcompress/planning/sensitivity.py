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

from .. import keras_private, registry, svd
from ..errors import LightCompressError
from ..analyze import candidates, iter_layers
from ..data import Prepared
from ..evaluation import evaluate, output_kind
from ..model_io import atomic_write, plain_copy
from .filters import LayerFilter

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
    """{layer name: function(mode, rank) -> MACs per example} for the factorisable layers
    (rank None: the layer as it is)."""
    calls = keras_private.graph_nodes(model)
    out = {}
    for name, layer in iter_layers(model):
        nodes, entry = calls.get(id(layer), []), registry.entry_for(layer)
        if not nodes or entry is None:
            continue
        in_shape = tuple(nodes[0].input_tensors[0].shape)
        out_shape = tuple(nodes[0].output_tensors[0].shape)
        out[name] = lambda mode, r, e=entry, l=layer, i=in_shape, o=out_shape: e.macs(l, i, o, mode, r)
    return out


def cache_key(model, data: Prepared, layer_filter: LayerFilter, multiple: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, model.to_json(), LADDER, multiple, layer_filter.conv_mode,
                         layer_filter.include, layer_filter.exclude, layer_filter.min_params]).encode())
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    h.update(np.ascontiguousarray(data.x_test).tobytes())
    h.update(np.ascontiguousarray(data.y_test).tobytes())
    return h.hexdigest()[:32]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lightcompress" / "sensitivity"


def read_cache(cache_file: Path, warn=None) -> Sensitivity | None:
    """The cached table in ``cache_file``, or None. A corrupt or foreign file is a miss: ``warn``
    is told (one line naming the file) and the table is recomputed and replaced."""
    if not cache_file.exists():
        return None
    try:
        result = Sensitivity.from_dict(json.loads(cache_file.read_text()))
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        if warn:
            warn(f"ignoring the unreadable sensitivity cache file {cache_file} ({type(err).__name__}); "
                 f"recomputing it")
        return None
    result.evaluations, result.from_cache, result.cache_file = 0, True, str(cache_file)
    return result


def write_cache(result: Sensitivity, cache_file: Path):
    """Write atomically under a unique temporary name: concurrent runs never collide."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(cache_file, lambda tmp: tmp.write_text(json.dumps(result.to_dict())))
    result.cache_file = str(cache_file)


def check_cache_dir(cache_dir) -> Path:
    """The cache folder to use; refuses a path that is a file, before any work."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if folder.exists() and not folder.is_dir():
        raise LightCompressError(f"cache folder {folder} is a file; give a folder for cache_dir.")
    return folder


def analyse(model, data: Prepared, layer_filter: LayerFilter | None = None, multiple=1, cache_dir=None,
            use_cache=True, on_step=None, warn=None) -> Sensitivity:
    """The sensitivity table of ``model`` on ``data`` (a held-out slice of training images).

    ``layer_filter`` chooses the layers (include, exclude, min_params) and modes (conv_mode "auto"
    measures every mode). ``on_step(done, total, name)`` reports progress; ``warn(message)`` hears
    about a cache file that had to be ignored.
    """
    layer_filter = layer_filter or LayerFilter()
    cache_file = None
    if cache_dir is not None or use_cache:
        cache_file = check_cache_dir(cache_dir) / f"{cache_key(model, data, layer_filter, multiple)}.json"
        cached = read_cache(cache_file, warn) if use_cache else None
        if cached is not None:
            return cached

    start = time.perf_counter()
    model = plain_copy(model)  # kernels are swapped below: never in the caller's model
    kind = output_kind(model, data.x_test)
    base = evaluate(model, data, kind)
    result = Sensitivity(base.loss, base.accuracy, base.examples)
    macs = _macs_per_rank(model)
    chosen, result.skipped = layer_filter.chosen(candidates(model))
    plans = []
    for c in chosen:
        for mode in layer_filter.modes(c):
            n, m = c.matrix_shape(mode)
            plans.extend((c, mode, r) for r in ladder(svd.break_even_rank(n, m), multiple))
    total = len(plans)
    by_name = {}
    for step, (c, mode, rank) in enumerate(plans):
        layer = c.layer  # a candidate of the copy (a leaf layer, or a part of a MultiHeadAttention)
        original = c.entry.kernel(layer)
        c.entry.assign_kernel(layer, c.entry.truncated_kernel(c.kernel, rank, mode))
        try:
            ev = evaluate(model, data, kind)
            result.evaluations += 1
        finally:
            c.entry.assign_kernel(layer, original)
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
        write_cache(result, cache_file)
    return result
