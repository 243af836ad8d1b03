"""Rank rules: how much each chosen layer keeps. One rule per plan:

- ``FixedRank(n)``: rank n in every converted layer, whatever the mode, clipped per layer only to
  the largest rank that still saves ``min_saving`` of its parameters (at most the break-even rank
  and the layer's full rank; see ``LayerFilter``); a layer where none does is kept. With conv_mode
  "auto" the mode with the lowest error at rank n is chosen (never a different rank). For tucker,
  rank is the core's output channels (its input side gets about n·c/f channels).
- ``Energy(f)``: per layer, the smallest rank keeping a fraction f of the energy (1 − relative
  error², the output error on calibration inputs when there are some).
- ``Ratio(f)``: a global budget: the chosen layers together keep about f of their parameters.
  Ranks are bought greedily across all layers by the squared relative error they remove (σ² as
  a fraction of the layer's ||W||² for plain SVD; of its outputs' energy when calibrated) per
  parameter they cost; so layers whose spectra fall fast get small ranks and the budget goes
  where singular values are large. Modes whose cost is not linear in the rank (Tucker-2) buy
  the upgrade with the best error removed per weight over all larger ranks.
- ``TargetParams(f)``: the same allocation, sized so the whole model keeps about f of its
  parameters (layers that are not converted count at their full size).

Measured allocation (sensitivity tables) lives in ``allocate``. Modes come from the
``LayerFilter``: with conv_mode "auto" the mode (channel, spatial or tucker) with the lower error
for the same parameters is picked per layer.

>>> rank_rule(target_params=0.2)
TargetParams(fraction=0.2)
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

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


def _best_for_budget(c, modes, budget: float, layer_filter):
    """(mode, rank) with the lowest error among ranks costing at most ``budget`` weights."""
    best = None
    for mode in modes:
        limit = layer_filter.limit(c, mode)
        if limit == 0:
            continue
        rank = 1
        while rank < limit and c.factor_params(mode, rank + 1) <= budget:
            rank += 1
        error = c.error(mode, rank)
        if best is None or error < best[0] - 1e-12:
            best = (error, mode, rank)
    return (best[1], best[2]) if best else (None, None)


def _clip_note(mode, wanted, rank, c, layer_filter):
    """Why ``rank`` is below the ``wanted`` one: the layer's full rank or the break-even rank."""
    if rank >= wanted:
        return None
    full = c.rank_limit(mode, 0.0) if layer_filter.min_saving else None
    if full is not None and rank < full:
        why = f"the largest that saves min_saving={layer_filter.min_saving:g} of its params"
    else:
        why = "the break-even rank (a larger one would not save parameters)"
    return f"rank {wanted} clipped to {rank}, {why}"


def _plan_rank(c, modes, wanted, layer_filter):
    """The given rank in every mode considered (clipped per mode to what saves parameters); with
    several modes ("auto"), the mode whose factors have the lowest error at that rank."""
    options = []
    for mode in modes:
        limit = layer_filter.limit(c, mode)
        if limit == 0:
            continue
        rank = min(wanted, limit)
        options.append((-rank, c.error(mode, rank), mode, rank))
    if not options:
        which = f"its {modes[0]} factorisation" if len(modes) == 1 else "any mode"
        return keep(c, f"no rank of {which} saves min_saving={layer_filter.min_saving:g} of its params")
    _, _, mode, rank = min(options)  # the given rank first (least clipped), then the lowest error
    notes = [_clip_note(mode, wanted, rank, c, layer_filter)]
    if len(modes) > 1:
        notes.append(f"auto: {mode} has the lowest error at rank {rank}")
    return factorise(c, mode, rank, "; ".join(n for n in notes if n) or None)


def _plan_energy(c, modes, fraction, layer_filter):
    options = []
    for mode in modes:
        errors = c.errors(mode)
        kept = np.maximum.accumulate(1.0 - errors**2)  # energy kept at rank 1, 2, ... (non-decreasing)
        rank = int(np.searchsorted(kept, fraction - 1e-12)) + 1  # the first rank keeping ``fraction``
        rank = min(rank, len(errors))
        options.append((c.factor_params(mode, rank), mode, rank, layer_filter.limit(c, mode)))
    params, mode, rank, limit = min(options)
    if rank > limit:
        return keep(c, f"keeping {fraction:g} of the energy needs rank {rank}, above the largest rank "
                       f"saving min_saving={layer_filter.min_saving:g} ({limit})")
    return factorise(c, mode, rank)


class _Curve:
    """One layer's options in one mode: params (bias excluded) and squared error per rank."""

    def __init__(self, c, mode, limit):
        ranks = np.arange(1, limit + 1)
        self.params = np.array([c.factor_params(mode, int(r)) for r in ranks], dtype=np.float64)
        self.loss = c.errors(mode)[:limit].astype(np.float64) ** 2  # squared relative error
        self.rank = 1

    def next_step(self):
        """(gain per weight, rank) of the best upgrade from the current rank, or None."""
        i = self.rank - 1
        if i + 1 >= len(self.params):
            return None
        cost = self.params[i + 1:] - self.params[i]
        gain = (self.loss[i] - self.loss[i + 1:]) / np.maximum(cost, 1e-12)
        j = int(np.argmax(gain))
        return float(gain[j]), i + 2 + j


def _plan_ratio(chosen, layer_filter, ratio):
    """Greedy global allocation keeping about ``ratio`` of the chosen layers' params: upgrades are
    bought across layers by the squared relative error they remove per weight they cost."""
    picks = {}
    for c in chosen:
        modes = layer_filter.modes(c)
        mode = _best_for_budget(c, modes, ratio * c.size, layer_filter)[0] if len(modes) > 1 else modes[0]
        if mode is None or layer_filter.limit(c, mode) == 0:
            continue
        picks[c.name] = (c, mode, _Curve(c, mode, layer_filter.limit(c, mode)))
    before = sum(c.params for c in chosen)
    kept = sum(c.params for c in chosen if c.name not in picks)
    budget = ratio * before - sum(c.bias_params for c in chosen if c.name in picks) - kept
    spent = sum(curve.params[0] for _, _, curve in picks.values())
    heap = []

    def push(name):
        step = picks[name][2].next_step()
        if step is not None:
            heapq.heappush(heap, (-step[0], step[1], name))

    for name in picks:
        push(name)
    while heap:
        _, rank, name = heapq.heappop(heap)
        curve = picks[name][2]
        cost = curve.params[rank - 1] - curve.params[curve.rank - 1]
        if spent + cost > budget:
            # the best upgrade does not fit: try the largest smaller one that does
            affordable = [r for r in range(curve.rank + 1, rank)
                          if spent + curve.params[r - 1] - curve.params[curve.rank - 1] <= budget]
            if not affordable:
                continue
            rank = affordable[-1]
            cost = curve.params[rank - 1] - curve.params[curve.rank - 1]
        spent += cost
        curve.rank = rank
        push(name)
    plans = {name: factorise(c, mode, curve.rank) for name, (c, mode, curve) in picks.items()}
    for c in chosen:
        if c.name not in plans:
            plans[c.name] = keep(c, f"no rank saves min_saving={layer_filter.min_saving:g} of its params")
    return plans


def make_plan(model, rule, layer_filter: LayerFilter | None = None, method=None, statistics=None) -> Plan:
    """Decide what to do with every factorisable layer of ``model`` under ``rule``, for factors
    made by ``method`` (a name or ``methods.Method``; default: ``resolve_method``'s). With the
    ``statistics`` the method needs (``statistics.Statistics``), errors are output errors on
    their inputs (the method's own factors')."""
    from ..factorization.candidates import candidates
    from ..factorization.methods import resolve_method

    layer_filter = layer_filter or LayerFilter()
    if not isinstance(rule, tuple(RULES.values())):
        raise OptionError(f"rule {rule!r} is not a rank rule; use FixedRank, Energy, Ratio or TargetParams.")
    from ..factorization.candidates import not_considered

    method = resolve_method(method, statistics is not None)
    plan = Plan(policy=rule.describe(), method=method.name, not_considered=not_considered(model))
    found = candidates(model, statistics, vectors=True, method=method)  # the plan is usually applied: decompose once
    plan.sources = {c.name: c for c in found}
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
            plan.layers.append(_plan_rank(c, layer_filter.modes(c), rule.rank, layer_filter))
        elif isinstance(rule, Energy):
            plan.layers.append(_plan_energy(c, layer_filter.modes(c), rule.fraction, layer_filter))
        else:
            plan.layers.append(ratio_plans[c.name])
        c.keep_only(plan.layers[-1].mode, plan.layers[-1].rank)  # memory: only what applying needs
    return plan
