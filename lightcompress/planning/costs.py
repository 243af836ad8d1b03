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
