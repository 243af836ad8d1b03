"""What a whole model costs in each budget metric: its params, its MACs per example, or its
batch-1 latency in the runtime a latency profile timed it in (the reference a budget's fraction
is of)."""

from __future__ import annotations

from ..factorization.candidates import layer_stats


def whole_cost(model, metric, profile=None) -> float:
    """``model``'s params, MACs per example (layers whose MACs are not counted count 0), or
    measured batch-1 latency (ms, ``profile.model_ms``), for ``metric`` "params", "macs" or
    "latency"."""
    if metric == "params":
        return int(model.count_params())
    if metric == "macs":
        return int(sum(s.macs or 0 for s in layer_stats(model)))
    return profile.model_ms


def latency_note(option_s: float, as_is_s: float) -> str:
    """A chosen option's measured time beside the layer's, in microseconds: each is the layer's own
    time, the runtime's per-call overhead taken off, so a tiny layer can be under 0.1 us."""

    def us(seconds):
        value = seconds * 1e6
        return "<0.1 us" if value < 0.05 else f"{value:.1f} us"

    return f"{us(option_s)} vs {us(as_is_s)} as it is"
