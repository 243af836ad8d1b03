"""Measured numbers for whole models: size in memory and on disk, and latency.

Latency is wall-clock time of ``model.predict_on_batch`` (the compiled inference step) on random
inputs: warm-up calls first, then the median of ``repeats`` timed calls. It is a measurement on
this machine and backend, never derived from a FLOP count.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import analyze
from .errors import LightCompressError
from .factorize import model_inputs_like


@dataclass
class Latency:
    batch: int
    median_ms: float
    min_ms: float
    repeats: int
    warmup: int


def latency(model, batch=1, repeats=30, warmup=5, seed=0) -> Latency:
    """Median milliseconds of one inference call on a batch of ``batch`` random inputs."""
    if repeats < 1 or warmup < 0 or batch < 1:
        raise LightCompressError(
            f"latency needs repeats >= 1, warmup >= 0 and batch >= 1; got repeats={repeats}, "
            f"warmup={warmup}, batch={batch}."
        )
    x = model_inputs_like(model, batch=batch, seed=seed)
    for _ in range(warmup):
        model.predict_on_batch(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(x)
        times.append((time.perf_counter() - start) * 1000)
    return Latency(batch, statistics.median(times), min(times), repeats, warmup)


@dataclass
class ModelMeasure:
    """Size and cost of one model."""

    path: str
    params: int
    trainable_params: int
    macs: int
    weight_bytes: int
    file_bytes: int | None
    not_counted: list = field(default_factory=list)  # layer types whose MACs count as zero
    latency: list = field(default_factory=list)  # [Latency, ...]


def measure(model, path=None, batches=(1, 32), repeats=30, warmup=5) -> ModelMeasure:
    stats = analyze.layer_stats(model)
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return ModelMeasure(
        path=str(path) if path else model.name,
        params=int(model.count_params()),
        trainable_params=trainable,
        macs=int(sum(s.macs or 0 for s in stats)),
        weight_bytes=analyze.weight_bytes(model),
        file_bytes=Path(path).stat().st_size if path else None,
        not_counted=analyze.not_counted(stats),
        latency=[latency(model, b, repeats, warmup) for b in batches],
    )
