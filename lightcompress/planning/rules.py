"""Rank rules: how much each chosen layer keeps. One rule per plan:

- ``FixedRank(n)``: the same rank everywhere, clipped per layer to the largest rank that still
  saves parameters (the break-even rank); a layer where no rank saves anything is kept.
- ``Energy(f)``: per layer, the smallest rank keeping a fraction f of the squared singular values.
- ``Ratio(f)``: a global budget: the chosen layers together keep about f of their parameters.
  Ranks are bought greedily, one singular value at a time, across all layers, by the energy it
  keeps (σ² as a fraction of the layer's ||W||²) per parameter it costs; so layers whose spectra
  fall fast get small ranks and the budget goes where singular values are large.
- ``TargetParams(f)``: the same allocation, sized so the whole model keeps about f of its
  parameters (layers that are not converted count at their full size).

Measured allocation (sensitivity tables) lives in ``allocate``. Modes come from the
``LayerFilter``: with conv_mode "auto" the mode with the lower reconstruction error for the same
parameters is picked per layer.

>>> rank_rule(target_params=0.2)
TargetParams(fraction=0.2)
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from .. import svd
from ..errors import OptionError, RankError
from .filters import LayerFilter
from .plan import Plan, factorise, keep


def _fraction(name, value, closed=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (0 < value <= 1 if closed else 0 < value < 1):
        interval = "(0, 1]" if closed else "(0, 1)"
        raise RankError("is not a fraction", option=name, value=value, allowed=f"a number in {interval}")


@dataclass(frozen=True)
class FixedRank:
    rank: int

    def __post_init__(self):
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise RankError("is invalid", option="rank", value=self.rank, allowed="a positive whole number, e.g. 8")

    def describe(self):
        return f"rank {self.rank}"


@dataclass(frozen=True)
class Energy:
    fraction: float

    def __post_init__(self):
        _fraction("energy", self.fraction, closed=True)

    def describe(self):
        return f"energy {self.fraction:g}"


@dataclass(frozen=True)
class Ratio:
    fraction: float

    def __post_init__(self):
        _fraction("ratio", self.fraction)

    def describe(self):
        return f"ratio {self.fraction:g}"


@dataclass(frozen=True)
class TargetParams:
    fraction: float

    def __post_init__(self):
        _fraction("target_params", self.fraction)

    def describe(self):
        return f"target params {self.fraction:g}"


RULES = {"rank": FixedRank, "energy": Energy, "ratio": Ratio, "target_params": TargetParams}


def rank_rule(**choices):
    """The rule for exactly one of ``rank=``, ``energy=``, ``ratio=``, ``target_params=`` (the
    others None)."""
    given = {k: v for k, v in choices.items() if v is not None}
    unknown = set(choices) - set(RULES)
    if unknown:
        raise OptionError(f"unknown rank rule {sorted(unknown)[0]!r}; use one of {', '.join(RULES)}.")
    if len(given) != 1:
        got = f" (got {', '.join(f'{k}={v}' for k, v in given.items())})" if given else ""
        raise OptionError(f"choose exactly one rank rule: rank=N, energy=F, ratio=F or target_params=F{got}.")
    (name, value), = given.items()
    return RULES[name](value)


def _best_for_budget(c, modes, budget: float):
    """(mode, rank) with the lowest error among ranks costing at most ``budget`` weights."""
    best = None
    for mode in modes:
        n, m = c.matrix_shape(mode)
        limit = svd.break_even_rank(n, m)
        if limit == 0:
            continue
        rank = max(1, min(int(budget // (n + m)), limit))
        error = svd.reconstruction_error(c.spectrum(mode), rank)
        if best is None or error < best[0] - 1e-12:
            best = (error, mode, rank)
    return best[1], best[2]


def _plan_rank(c, modes, wanted):
    if len(modes) > 1:  # spend the weights the first mode takes at this rank where error is lowest
        n, m = c.matrix_shape(modes[0])
        budget = min(wanted, max(1, svd.break_even_rank(n, m))) * (n + m)
        mode, rank = _best_for_budget(c, modes, budget)
        return factorise(c, mode, rank, f"auto: {mode} has the lower error for {budget} weights")
    mode = modes[0]
    n, m = c.matrix_shape(mode)
    limit = svd.break_even_rank(n, m)
    if limit == 0:
        return keep(c, f"no rank saves parameters for a {mode} matrix of shape {(n, m)}")
    rank = min(wanted, limit)
    note = f"rank {wanted} clipped to {rank}, the largest that saves parameters" if rank < wanted else None
    return factorise(c, mode, rank, note)


def _plan_energy(c, modes, fraction):
    options = []
    for mode in modes:
        n, m = c.matrix_shape(mode)
        rank = svd.rank_for_energy(c.spectrum(mode), fraction)
        options.append((svd.factorized_params(n, m, rank), mode, rank, svd.break_even_rank(n, m)))
    params, mode, rank, limit = min(options)
    if rank > limit:
        return keep(c, f"keeping {fraction:g} of the energy needs rank {rank}, above the break-even rank {limit}")
    return factorise(c, mode, rank)


def _plan_ratio(chosen, layer_filter, ratio):
    """Greedy global allocation keeping about ``ratio`` of the chosen layers' params."""
    picks = {}
    for c in chosen:
        modes = layer_filter.modes(c)
        mode = _best_for_budget(c, modes, ratio * c.kernel.size)[0] if len(modes) > 1 else modes[0]
        picks[c.name] = [c, mode, 1]
    before = sum(c.params for c in chosen)
    budget = ratio * before - sum(c.bias_params for c in chosen)
    spent = sum(sum(c.matrix_shape(mode)) for c, mode, _ in picks.values())
    heap = []

    def push(name):
        c, mode, rank = picks[name]
        n, m = c.matrix_shape(mode)
        s = c.spectrum(mode)
        if rank < min(svd.break_even_rank(n, m), len(s)):
            gain = s[rank] ** 2 / max(float((s**2).sum()), 1e-300)
            heapq.heappush(heap, (-gain / (n + m), name))

    for name in picks:
        push(name)
    while heap:
        _, name = heapq.heappop(heap)
        c, mode, rank = picks[name]
        cost = sum(c.matrix_shape(mode))
        if spent + cost > budget:
            continue  # this layer's next ranks all cost the same: it is done
        spent += cost
        picks[name][2] = rank + 1
        push(name)
    return {name: factorise(c, mode, rank) for name, (c, mode, rank) in picks.items()}


def make_plan(model, rule, layer_filter: LayerFilter | None = None) -> Plan:
    """Decide what to do with every factorisable layer of ``model`` under ``rule``."""
    from ..analyze import candidates

    layer_filter = layer_filter or LayerFilter()
    if not isinstance(rule, tuple(RULES.values())):
        raise OptionError(f"rule {rule!r} is not a rank rule; use FixedRank, Energy, Ratio or TargetParams.")
    from ..analyze import not_considered

    plan = Plan(policy=rule.describe(), not_considered=not_considered(model))
    found = candidates(model)
    chosen, reasons = layer_filter.chosen(found)
    ratio = rule.fraction if isinstance(rule, Ratio) else None
    if isinstance(rule, TargetParams) and chosen:
        before = sum(c.params for c in chosen)
        whole = int(model.count_params())
        fixed = whole - before  # layers that stay as they are
        ratio = (rule.fraction * whole - fixed) / before
        if ratio <= 0:
            raise RankError(
                f"cannot be met: the layers left as they are already hold {fixed:,} of {whole:,} "
                f"params", option="target_params", value=rule.fraction,
                allowed="a larger fraction, or a lower min_params so more layers are converted")
    ratio_plans = _plan_ratio(chosen, layer_filter, min(ratio, 1.0)) if ratio is not None else {}
    for c in found:
        if c.name in reasons:
            plan.layers.append(keep(c, reasons[c.name]))
        elif isinstance(rule, FixedRank):
            plan.layers.append(_plan_rank(c, layer_filter.modes(c), rule.rank))
        elif isinstance(rule, Energy):
            plan.layers.append(_plan_energy(c, layer_filter.modes(c), rule.fraction))
        else:
            plan.layers.append(ratio_plans[c.name])
    return plan
