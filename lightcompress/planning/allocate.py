"""Choose one option (a rank and mode, or "keep") per layer from a sensitivity table so that the
model meets a size budget with the smallest predicted loss increase.

The predicted cost of a choice is the sum over layers of the loss increase each option caused
alone in the sensitivity analysis. The choice is a Lagrangian relaxation (each layer picks the
option minimising ``loss increase + λ·cost``, with λ bisected until the budget is met), then a
greedy pass that spends what is left of the budget on the upgrades with the best loss saved per
unit of cost, then a fill pass: while a larger rank of a converted layer still fits, the layer
losing most moves up to the next one (measured losses a step apart are often within their noise;
a larger rank is never a worse starting point for fine-tuning). "keep" is always an option, so a
layer whose factorisations cost more accuracy than they are worth is left alone.

A latency profile guards the choice: an option measured slower than the layer as it is, by more
than the noise of both timings, is removed; the plan says how many were removed and what the
guard cost in predicted loss (the same allocation without it).
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import RankError
from ..factorization.candidates import candidates, not_considered
from .costs import budget_note, latency_note, speed_bound_note, whole_cost
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


METRICS = ("params", "macs", "latency")


def _cost(option, metric):
    return {"params": option.params, "macs": option.macs, "latency": option.latency}[metric]


def _amount(x, metric):
    return f"{x * 1000:,.1f} us" if metric == "latency" else f"{x:,.0f}"


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
            f"the {metric} budget of {_amount(budget, metric)} cannot be met: even the smallest rank of every "
            f"layer leaves {_amount(total(cheapest), metric)}; aim higher, or lower min_params to convert more layers."
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
            break
        choice[best[1]] = best[2]
    return _fill(layers, choice, budget - total(choice), metric)


def _fill(layers, choice, spare, metric):
    """Fill the budget: while the next larger rank of a converted layer fits in ``spare``, the
    layer with the largest loss moves up to it (its mode kept)."""
    while True:
        best = None
        for j, ls in enumerate(layers):
            current = ls.options[choice[j]]
            if current.rank is None:
                continue
            steps = [(o.rank, i) for i, o in enumerate(ls.options)
                     if o.mode == current.mode and o.rank is not None and o.rank > current.rank
                     and 0 < _cost(o, metric) - _cost(current, metric) <= spare]
            if steps and (best is None or current.loss > best[0]):
                best = (current.loss, j, min(steps)[1])
        if best is None:
            return choice
        _, j, i = best
        spare -= _cost(layers[j].options[i], metric) - _cost(layers[j].options[choice[j]], metric)
        choice[j] = i


def with_latency(ls: LayerSensitivity, layer_latency, allow_slower=False) -> tuple[LayerSensitivity, int]:
    """The layer's options with their measured latency (ms, interpolated between timed ranks).
    Unless ``allow_slower``, an option slower than the layer as it is beyond the noise of both
    timings (``LayerLatency.slower``) is dropped. Returns the options and how many were dropped."""
    options, dropped = [], 0
    for o in ls.options:
        if o.rank is not None and not allow_slower and layer_latency.slower(o.rank, o.mode):
            dropped += 1
            continue
        options.append(replace(o, latency=layer_latency.ms(o.rank, o.mode)))
    return LayerSensitivity(ls.name, ls.kind, ls.kernel_shape, options), dropped


def _predicted_loss(layers, choice, base_loss):
    return sum(ls.options[i].loss - base_loss for ls, i in zip(layers, choice))


def allocate(model, sens: Sensitivity, target: float, metric="params", multiple=1, latency=None,
             allow_slower=False) -> Plan:
    """A plan keeping about ``target`` (a fraction) of the model's params, MACs or batch-1
    latency (``metric``).

    With ``multiple`` > 1 only the measured ranks (multiples of it) are used; otherwise every rank
    between them is allowed, its loss interpolated. With a latency ``Profile`` (see ``latency``)
    every option carries its measured time, and under any budget an option measured slower than
    the layer as it is is never chosen unless ``allow_slower``; the plan names the layers left
    for that reason. A latency budget needs the profile."""
    if metric not in METRICS:
        raise RankError("is unknown", option="metric", value=metric, allowed=f"one of {', '.join(METRICS)}")
    if metric == "latency" and latency is None:
        raise RankError("a latency budget needs measured per-layer latencies (a latency profile).")
    measured = {ls.name: ls.options for ls in sens.layers}
    if multiple == 1:  # interpolate between the measured ranks so the budget can be met closely
        sens = replace(sens, layers=[with_every_rank(ls) for ls in sens.layers])
    slower, removed, unguarded, untimed, margins = set(), 0, sens, [], []
    if latency is not None:
        timed, free = [], []
        for ls in sens.layers:
            layer_latency = latency.layer(ls.name)
            if layer_latency is None:  # not timed (no fixed input size, or inside a nested model)
                untimed.append(ls.name)
                if metric == "latency":  # its time is unknown: it cannot be budgeted, keep it as it is
                    ls = LayerSensitivity(ls.name, ls.kind, ls.kernel_shape, [replace(ls.options[0], latency=0.0)])
                timed.append(ls)  # under a params or MACs budget: free to choose, unguarded
                free.append(ls)
                continue
            guarded, dropped = with_latency(ls, layer_latency, allow_slower)
            margins.append(f"{ls.name} ±{layer_latency.margin_ms(None, None) * 1000:.2g} us")
            free.append(with_latency(ls, layer_latency, True)[0])
            removed += dropped
            if dropped and len(guarded.options) == 1:
                slower.add(ls.name)
            timed.append(guarded)
        sens, unguarded = replace(sens, layers=timed), replace(sens, layers=free)
    whole = whole_cost(model, metric, latency)
    in_table = sum(_cost(ls.options[0], metric) for ls in sens.layers)
    fixed = whole - in_table if metric != "latency" else max(0.0, whole - in_table)
    budget = target * whole if metric != "latency" else target * max(whole, in_table)
    choice = choose(sens, budget, fixed, metric)
    used = fixed + sum(_cost(ls.options[i], metric) for ls, i in zip(sens.layers, choice))
    notes = [budget_note(metric, used, budget)]
    if metric == "latency":
        notes.append(speed_bound_note(latency.runtime, whole, fixed, sens.layers, choice))
    if untimed:
        notes.append(f"latency: {len(untimed)} layer(s) could not be timed alone (no fixed input size, or inside a "
                     f"nested model: {', '.join(untimed[:3])}{', ...' if len(untimed) > 3 else ''}); "
                     + ("kept as they are under a latency budget" if metric == "latency" else "not guarded"))
    if removed:
        guard_loss = _predicted_loss(sens.layers, choice, sens.base_loss)
        try:
            free_loss = _predicted_loss(unguarded.layers, choose(unguarded, budget, fixed, metric), sens.base_loss)
            cost = f"predicted loss {guard_loss - free_loss:+.4f} against the same budget without it"
        except RankError:
            cost = "the budget cannot be met without it"
        notes.append(f"latency guard ({latency.runtime}): {removed} option(s) measured slower than the layer "
                     f"they replace, beyond the noise of both timings, were removed; {cost} "
                     f"(allowing slower options keeps them); measured noise per layer: {', '.join(margins)}")

    plan = Plan(policy=f"sensitivity, target {metric} {target:g}"
                + (f", latency guard on {latency.runtime}" if latency is not None and not allow_slower else ""),
                method=sens.method, not_considered=not_considered(model), notes=notes)
    plan.budget = {"metric": metric, "target": target, "planned": round(used / (budget / target), 6)}
    if metric == "latency":
        plan.budget["runtime"] = latency.runtime
    by_name = {c.name: c for c in candidates(model)}
    picked = {ls.name: (ls, i) for ls, i in zip(sens.layers, choice)}
    for name, c in by_name.items():
        if name in sens.skipped:
            plan.layers.append(keep(c, sens.skipped[name]))
            continue
        ls, i = picked[name]
        option = ls.options[i]
        if option.rank is None:
            reason = ("kept: every factorisation was measured slower than the layer as it is"
                      if name in slower else "kept: every rank that fits costs more loss than it saves")
            plan.layers.append(keep(c, reason))
            continue
        increase = option.loss - sens.base_loss
        note = (f"sensitivity: loss +{increase:.4f} alone on the held-out slice"
                + ("" if any(o.rank == option.rank and o.mode == option.mode for o in measured[name])
                   else " (interpolated)"))
        if option.latency is not None and latency is not None:
            note += f"; {latency_note(option.latency / 1000, ls.options[0].latency / 1000)}"
        plan.layers.append(factorise(c, option.mode, option.rank, note))
    return plan
