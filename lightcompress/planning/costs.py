"""What a whole model costs in each budget metric: its params, its MACs per example, or its
batch-1 latency in the runtime a latency profile timed it in (the reference a budget's fraction
is of)."""

from __future__ import annotations

from ..factorization.candidates import layer_stats


def timed(metric) -> bool:
    """Whether a budget in ``metric`` is timed in a runtime (latency) rather than counted from the
    model (params, MACs): planned from per-layer times, then measured whole."""
    return metric == "latency"


def whole_cost(model, metric, profile=None) -> float:
    """``model``'s params, MACs per example (layers whose MACs are not counted count 0), or
    measured batch-1 latency (ms, ``profile.model_ms``), for ``metric`` "params", "macs" or
    "latency"."""
    if metric == "params":
        return int(model.count_params())
    if metric == "macs":
        return int(sum(s.macs or 0 for s in layer_stats(model)))
    return profile.model_ms


def budget_note(metric, used: float, budget: float) -> str:
    """What a plan spends of its budget (both in ``metric``'s units; latency in ms).

    >>> budget_note("params", 6944, 7034)
    'budget: params 98.7% of the budget used (6,944 of 7,034)'
    """
    def amount(x):
        return f"{x * 1000:,.1f} us" if metric == "latency" else f"{x:,.0f}"

    return (f"budget: {metric} {used / budget:.1%} of the budget used ({amount(used)} of {amount(budget)}"
            f"{', predicted from the per-layer times' if metric == 'latency' else ''})")


def latency_note(option_s: float, as_is_s: float) -> str:
    """A chosen option's measured time beside the layer's, in microseconds: each is the layer's own
    time, the runtime's per-call overhead taken off, so a tiny layer can be under 0.1 us."""

    def us(seconds):
        value = seconds * 1e6
        return "<0.1 us" if value < 0.05 else f"{value:.1f} us"

    return f"{us(option_s)} vs {us(as_is_s)} as it is"


def speed_bound_note(runtime, whole_ms, fixed_ms, tables, choice, top=3) -> str:
    """What bounds a latency plan's speed-up, in the plan's words: the share of the whole model's
    time (``whole_ms``) in what no factorisation touches (``fixed_ms``: depthwise convolutions,
    pooling, normalisation, activations, the runtime's per-call overhead), the share in factorisable
    layers the plan keeps as they are (``tables``' layers whose ``choice`` is their first option,
    the largest named), and the fraction the fastest plan could reach (every layer at its fastest
    option)."""
    whole_ms = max(whole_ms, 1e-12)
    kept = sorted(((ls.options[0].latency or 0.0, ls.name) for ls, i in zip(tables, choice)
                   if ls.options[i].rank is None), reverse=True)
    fastest = fixed_ms + sum(min(o.latency or 0.0 for o in ls.options) for ls in tables)
    named = ", ".join(f"{name} {ms * 1000:,.0f} us" for ms, name in kept[:top]) + (", ..." if len(kept) > top else "")
    text = (f"speed-up bound ({runtime}): {fixed_ms / whole_ms:.0%} of the model's {whole_ms * 1000:,.0f} us is in "
            "what no factorisation speeds up (depthwise convolutions, pooling, normalisation, activations, the "
            "runtime's overhead)")
    if kept:
        text += f", {sum(ms for ms, _ in kept) / whole_ms:.0%} in factorisable layers kept as they are ({named})"
    return text + f"; the fastest plan would take about {fastest / whole_ms:.2f} of the original's time"
