"""Measured numbers for whole models: size in memory and on disk, and latency in a runtime.

Keras models are timed in the runtime asked for (see ``latency``: LiteRT interpreter, or the
compiled Keras forward pass); exported artefacts (.tflite, .onnx, SavedModel) in their own.
Latency is always a measurement on this machine, never derived from a FLOP count.

Several models are measured together (``measure_all``): at each batch size they are timed in
turns (``timing.interleaved``), so drift of the machine during the timing falls on all of them
alike and their ratios compare them under the same conditions. ``measure`` and
``measure_artifact`` are the same path for one model.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..factorization import candidates
from . import latency
from .runtimes import Artifact, path_bytes
from .timing import Latency, Runtime, interleaved, whole_model_seconds


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
    return path_bytes(path) if path and Path(path).exists() else None


def counts(model) -> dict:
    """Params, trainable params, MACs per example and the layer types not counted, of a Keras model."""
    stats = candidates.layer_stats(model)
    return {"params": int(model.count_params()),
            "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            "macs": int(sum(s.macs or 0 for s in stats)),
            "not_counted": candidates.not_counted(stats)}


def _is_artifact(net) -> bool:
    return isinstance(net, Artifact)


def _sizes(net, path, runtime: Runtime) -> ModelMeasure:
    """Everything but the latency: counts and bytes of a Keras model, file bytes of an artefact."""
    if _is_artifact(net):
        return ModelMeasure(path=str(net.path), params=None, trainable_params=None, macs=None, weight_bytes=None,
                            file_bytes=_file_bytes(net.path), runtime=net.runtime)
    return ModelMeasure(path=str(path) if path else net.name, weight_bytes=candidates.weight_bytes(net),
                        file_bytes=_file_bytes(path), runtime=runtime.describe(), **counts(net))


@contextmanager
def _timers(net, runtime: Runtime):
    """``timer(batch)`` of a Keras model in ``runtime``, or of an artefact in its own runtime."""
    if _is_artifact(net):
        yield net.timer
        return
    with latency.timers(net, runtime) as timer:
        yield timer


def timed_together(nets, runtime: Runtime | None = None, batches=(1, 32), repeats=30, warmup=5) -> list[list[Latency]]:
    """[[Latency per batch] per net]: at each batch size every net's timer made, then all timed in
    turns (``timing.interleaved``). Keras models in ``runtime`` (None: ``Runtime()``), artefacts in
    their own."""
    runtime = runtime or Runtime()
    with ExitStack() as stack:
        timers = [stack.enter_context(_timers(net, runtime)) for net in nets]
        per_batch = [interleaved([timer(batch) for timer in timers], repeats, warmup, batch,
                                 min_seconds=whole_model_seconds()) for batch in batches]
    return [list(row) for row in zip(*per_batch)]


def measure_all(nets, paths=None, batches=(1, 32), repeats=30, warmup=5,
                runtime: Runtime | None = None) -> list[ModelMeasure]:
    """A ``ModelMeasure`` per net (Keras models and loaded artefacts; ``paths``: their files, for
    the file bytes), their latencies timed together (``timed_together``)."""
    runtime = runtime or Runtime()
    nets = list(nets)
    measures = [_sizes(net, path, runtime) for net, path in zip(nets, paths or [None] * len(nets))]
    for m, latencies in zip(measures, timed_together(nets, runtime, batches, repeats, warmup)):
        m.latency = latencies
    return measures


def measure(model, path=None, batches=(1, 32), repeats=30, warmup=5, runtime: Runtime | None = None) -> ModelMeasure:
    """Params, MACs, bytes of a Keras model and its latency in ``runtime`` (None: ``Runtime()``)
    at each batch size."""
    return measure_all([model], [path], batches, repeats, warmup, runtime)[0]


def measure_artifact(artifact, batches=(1, 32), repeats=30, warmup=5) -> ModelMeasure:
    """File bytes and latency of an exported artefact in its own runtime."""
    return measure_all([artifact], None, batches, repeats, warmup)[0]


__all__ = ["Latency", "ModelMeasure", "Runtime", "counts", "measure", "measure_all", "measure_artifact",
           "timed_together"]
