"""An estimate of a ``compress`` run before it starts, from costs measured on this machine: one
forward pass over a batch of the data set's images is timed, and each phase is counted in image
passes (a training step as ``TRAIN_PASSES`` forward passes, a distilled one adds the teacher's).

What it cannot count it names instead of guessing: a sensitivity analysis or latency profile read
from the cache takes seconds, and the per-layer latency profile comes on top where it is not cached.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..planning.sensitivity import LADDER
from .common import factorisable

TRAIN_PASSES = 3.0  # a training step costs about a forward and a backward pass (twice the forward)
PROBE_IMAGES = 256  # one evaluation batch (64 gave 3x the per-image time: the call overhead)
FINAL_COMPARE_SECONDS = 30.0  # compare's latency rounds: 2 models x 2 batch sizes, ~6 s each, and warm-up


@dataclass
class Estimate:
    """What a run is expected to cost, phase by phase, in seconds."""

    per_image_ms: float
    phases: list = field(default_factory=list)  # [(name, seconds, how it was counted)]

    @property
    def seconds(self) -> float:
        return sum(s for _, s, _ in self.phases)

    def line(self) -> str:
        parts = "; ".join(f"{name} {_duration(s)} ({how})" for name, s, how in self.phases)
        return (f"estimate: about {_duration(self.seconds)} in all: {parts}; from {self.per_image_ms:.2f} ms per image "
                f"measured here (what the cache or the work folder already holds takes seconds instead)")

    def to_dict(self) -> dict:
        return {"seconds": round(self.seconds, 1), "per_image_ms": round(self.per_image_ms, 4),
                "phases": [{"name": n, "seconds": round(s, 1), "counted": how} for n, s, how in self.phases]}


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under 1 s"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def per_image_seconds(model, x) -> float:
    """Seconds of one forward pass per image of ``model`` on ``x``, timed after a warm-up pass."""
    model.predict(x, batch_size=len(x), verbose=0)
    start = time.perf_counter()
    model.predict(x, batch_size=len(x), verbose=0)
    return (time.perf_counter() - start) / len(x)


def compress_estimate(model, prepared, settings) -> Estimate:
    """The estimate of ``flows.compress(model, prepared, settings)``."""
    layers = factorisable(model, settings.layer_filter)
    chosen_layers = len(layers)
    x = prepared.head("test", PROBE_IMAGES)[0]
    f = per_image_seconds(model, x)
    est = Estimate(per_image_ms=f * 1000)
    holdout = prepared.holdout_size(settings.holdout_size)
    train = max(prepared.count("train") - holdout, 0)
    method = settings.method
    if method.needs_data:
        count = min(settings.calibration_samples, train)
        passes = count * (chosen_layers if method.sequential else 1)
        est.phases.append(("calibration", passes * f, f"{count:,} images"
                           + (f", once per layer ({chosen_layers})" if method.sequential else "")))
    if settings.allocation == "sensitivity":
        evaluations = sum(len(settings.layer_filter.modes(c)) for c in layers) * len(LADDER)
        est.phases.append(("sensitivity analysis", evaluations * holdout * f,
                           f"{evaluations:,} evaluations of {holdout:,} held-out images"))
    teacher = 1.0 if settings.distillation is not None else 0.0
    epoch = train * f * (TRAIN_PASSES + teacher)
    trials = settings.trials if settings.goal.max_drop is not None else 1
    est.phases.append(("fine-tuning", epoch * settings.fit.epochs * trials,
                       f"up to {settings.fit.epochs} epoch(s) of {train:,} images, about {_duration(epoch)} each"
                       + (f", for up to {trials} budgets" if trials > 1 else "")))
    tests = prepared.count("test")
    est.phases.append(("evaluation and compare", 2 * tests * f + FINAL_COMPARE_SECONDS,
                       f"both models on {tests:,} test images, then timed"))
    return est



def tradeoffs_estimate(model, prepared, lowrank_settings, lowrank: int, baselines: int) -> Estimate:
    """The estimate of a ``tradeoffs`` run: ``lowrank`` low-rank candidates made as ``compress``
    with ``lowrank_settings`` (the sensitivity analysis once, shared through the cache), and
    ``baselines`` pruned or clustered candidates, each fine-tuned as long in a child process
    (candidates already finished in the work folder are counted too: the line says so)."""
    one = compress_estimate(model, prepared, lowrank_settings)
    costs = {name: seconds for name, seconds, _ in one.phases}
    shared = costs.get("sensitivity analysis", 0.0) + costs.get("calibration", 0.0)
    each = one.seconds - shared
    baseline = costs["fine-tuning"] + costs["evaluation and compare"]
    est = Estimate(per_image_ms=one.per_image_ms)
    if lowrank:
        est.phases.append(("low-rank candidates", shared + lowrank * each,
                           f"{lowrank}, about {_duration(each)} each after the shared analysis of {_duration(shared)}"))
    if baselines:
        est.phases.append(("pruned and clustered candidates", baselines * baseline,
                           f"{baselines}, about {_duration(baseline)} each: fine-tuned as long in a child process"))
    est.phases.append(("int8 exports", (lowrank + 1) * FINAL_COMPARE_SECONDS, f"{lowrank + 1}, each timed"))
    return est
