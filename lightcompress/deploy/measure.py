"""Measured numbers for whole models: size in memory and on disk, and latency in a runtime.

Keras models are timed in the runtime asked for (see ``latency``: LiteRT interpreter, or the
compiled Keras forward pass); exported artefacts (.tflite, .onnx, SavedModel) in their own.
Latency is always a measurement on this machine, never derived from a FLOP count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..factorization import candidates as analyze
from . import latency
from .timing import Latency, Runtime


@dataclass
class ModelMeasure:
    """Size and cost of one model (None where an artefact does not say)."""

    path: str
    params: int | None
    trainable_params: int | None
    macs: int | None
    weight_bytes: int | None
    file_bytes: int | None
    runtime: str = ""
    not_counted: list = field(default_factory=list)  # layer types whose MACs count as zero
    latency: list = field(default_factory=list)  # [Latency, ...]


def _file_bytes(path):
    from .runtimes import path_bytes

    return path_bytes(path) if path and Path(path).exists() else None


def measure(model, path=None, batches=(1, 32), repeats=30, warmup=5, runtime: Runtime | None = None) -> ModelMeasure:
    """Params, MACs, bytes of a Keras model and its latency in ``runtime`` (None: ``Runtime()``)
    at each batch size."""
    runtime = runtime or Runtime()
    stats = analyze.layer_stats(model)
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return ModelMeasure(
        path=str(path) if path else model.name,
        params=int(model.count_params()),
        trainable_params=trainable,
        macs=int(sum(s.macs or 0 for s in stats)),
        weight_bytes=analyze.weight_bytes(model),
        file_bytes=_file_bytes(path),
        runtime=runtime.describe(),
        not_counted=analyze.not_counted(stats),
        latency=latency.model_latency(model, runtime, batches, repeats, warmup),
    )


def measure_artifact(artifact, batches=(1, 32), repeats=30, warmup=5) -> ModelMeasure:
    """File bytes and latency of an exported artefact in its own runtime."""
    return ModelMeasure(
        path=str(artifact.path), params=None, trainable_params=None, macs=None, weight_bytes=None,
        file_bytes=_file_bytes(artifact.path), runtime=artifact.runtime,
        latency=[artifact.latency(b, repeats, warmup) for b in batches],
    )


__all__ = ["Latency", "ModelMeasure", "Runtime", "measure", "measure_artifact"]
