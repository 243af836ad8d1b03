"""Choose one option (a rank and mode, or "keep") per layer from a sensitivity table so that the
model meets a size budget with the smallest predicted loss increase.

The predicted cost of a choice is the sum over layers of the loss increase each option caused
alone in the sensitivity analysis. The choice is a Lagrangian relaxation (each layer picks the
option minimising ``loss increase + λ·cost``, with λ bisected until the budget is met), then a
greedy pass that spends what is left of the budget on the upgrades with the best loss saved per
unit of cost. "keep" is always an option, so a layer whose factorisations cost more accuracy than
they are worth is left alone.
"""

from __future__ import annotations

from dataclasses import replace

from ..analyze import candidates, layer_stats
from ..errors import RankError
from .plan import Plan, factorise, keep
from .sensitivity import LayerSensitivity, Option, Sensitivity


def with_every_rank(ls: LayerSensitivity) -> LayerSensitivity:
    """The layer's options with every whole rank between measured ones, loss and accuracy
    interpolated linearly (params and MACs are linear in the rank, so those are exact)."""
    options = [ls.options[0]]
    modes = {}
    for o in ls.options[1:]:
        modes.setdefault(o.mode, []).append(o)
    for measured in modes.values():
        measured.sort(key=lambda o: o.rank)
        options.append(measured[0])
        for a, b in zip(measured, measured[1:]):
            for r in range(a.rank + 1, b.rank + 1):
                t = (r - a.rank) / (b.rank - a.rank)
                options.append(Option(r, a.mode, round(a.params + t * (b.params - a.params)),
                                      round(a.macs + t * (b.macs - a.macs)),
                                      a.loss + t * (b.loss - a.loss), a.accuracy + t * (b.accuracy - a.accuracy)))
    return LayerSensitivity(ls.name, ls.kind, ls.kernel_shape, options)


def _cost(option, metric):
    return option.params if metric == "params" else option.macs


def _pick(layers, lam, metric, base_loss):
    return [min(range(len(ls.options)),
                key=lambda i: (ls.options[i].loss - base_loss) + lam * _cost(ls.options[i], metric))
            for ls in layers]


def choose(sens: Sensitivity, budget: float, fixed: float, metric="params") -> list[int]:
    """Index of the chosen option per layer of ``sens`` so that ``fixed`` (the cost of everything
    not in the table) plus the chosen options' costs stays within ``budget``."""
    layers = sens.layers

    def total(choice):
        return fixed + sum(_cost(ls.options[i], metric) for ls, i in zip(layers, choice))

    cheapest = [min(range(len(ls.options)), key=lambda i: _cost(ls.options[i], metric)) for ls in layers]
    if total(cheapest) > budget:
        raise RankError(
            f"the {metric} budget of {budget:,.0f} cannot be met: even the smallest rank of every layer "
            f"leaves {total(cheapest):,.0f}; aim higher, or lower min_params to convert more layers."
        )
    lo, hi = 0.0, 1.0
    while total(_pick(layers, hi, metric, sens.base_loss)) > budget:
        hi *= 4
        if hi > 1e12:
            break
    for _ in range(60):
        mid = (lo + hi) / 2
        if total(_pick(layers, mid, metric, sens.base_loss)) > budget:
            lo = mid
        else:
            hi = mid
    choice = _pick(layers, hi, metric, sens.base_loss)
    if total(choice) > budget:
        choice = cheapest
    # Spend what is left: the upgrade with the most loss saved per unit of extra cost, while it fits.
    while True:
        spare = budget - total(choice)
        best = None
        for j, ls in enumerate(layers):
            current = ls.options[choice[j]]
            for i, option in enumerate(ls.options):
                extra = _cost(option, metric) - _cost(current, metric)
                saved = current.loss - option.loss
                if 0 < extra <= spare and saved > 0 and (best is None or saved / extra > best[0]):
                    best = (saved / extra, j, i)
        if best is None:
            return choice
        choice[best[1]] = best[2]


def allocate(model, sens: Sensitivity, target: float, metric="params", multiple=1) -> Plan:
    """A plan keeping about ``target`` (a fraction) of the model's params or MACs.

    With ``multiple`` > 1 only the measured ranks (multiples of it) are used; otherwise every rank
    between them is allowed, its loss interpolated."""
    measured = {ls.name: ls.options for ls in sens.layers}
    if metric == "params":
        whole = int(model.count_params())
    else:
        whole = int(sum(s.macs or 0 for s in layer_stats(model)))
    in_table = sum(_cost(ls.options[0], metric) for ls in sens.layers)
    if multiple == 1:  # interpolate between the measured ranks so the budget can be met closely
        sens = replace(sens, layers=[with_every_rank(ls) for ls in sens.layers])
    choice = choose(sens, target * whole, whole - in_table, metric)
    from ..analyze import not_considered

    plan = Plan(policy=f"sensitivity, target {metric} {target:g}", not_considered=not_considered(model))
    by_name = {c.name: c for c in candidates(model)}
    picked = {ls.name: (ls, i) for ls, i in zip(sens.layers, choice)}
    for name, c in by_name.items():
        if name in sens.skipped:
            plan.layers.append(keep(c, sens.skipped[name]))
            continue
        ls, i = picked[name]
        option = ls.options[i]
        if option.rank is None:
            plan.layers.append(keep(c, "kept: every rank that fits costs more loss than it saves"))
            continue
        increase = option.loss - sens.base_loss
        plan.layers.append(factorise(c, option.mode, option.rank,
                                    f"sensitivity: loss +{increase:.4f} alone on the held-out slice"
                                    + ("" if any(o.rank == option.rank and o.mode == option.mode
                                                 for o in measured[name]) else " (interpolated)")))
    return plan
