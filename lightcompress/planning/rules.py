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
  where singular values are large (see ``budget``: every mode's ranks and "keep" are options).
- ``TargetParams(f)``, ``TargetMacs(f)``, ``TargetLatency(f, profile)``: the same allocation,
  sized so the whole model keeps about f of its parameters, of its MACs per example, or of its
  batch-1 latency in the runtime a latency ``Profile`` timed each layer's options in (layers that
  are not converted count at their full cost). No data set is needed: without calibration the
  errors are weight errors. ``plan.budget`` says what fraction the plan is predicted to keep.

Measured allocation (sensitivity tables) lives in ``allocate``. Modes come from the
``LayerFilter``: with conv_mode "auto" the mode (channel, spatial or tucker) with the lower error
for the same parameters is picked per layer.

>>> rank_rule(target_params=0.2)
TargetParams(fraction=0.2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import OptionError, RankError
from ..factorization.candidates import candidates, not_considered
from ..factorization.methods import resolve_method
from .budget import ErrorAllocation
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
class _Budget:
    """A budget rule: keep about ``fraction`` (in (0, 1)) of a cost (``metric``), allocated by
    error (``budget.ErrorAllocation``); ``option`` is its keyword."""

    fraction: float
    option = ""
    metric = "params"

    def __post_init__(self):
        _fraction(self.option, self.fraction)

    def describe(self):
        return f"{self.option.replace('_', ' ')} {self.fraction:g}"


@dataclass(frozen=True)
class Ratio(_Budget):
    option = "ratio"


@dataclass(frozen=True)
class TargetParams(_Budget):
    option = "target_params"


@dataclass(frozen=True)
class TargetMacs(_Budget):
    option = "target_macs"
    metric = "macs"


@dataclass(frozen=True)
class TargetLatency(_Budget):
    """``profile``: the ``latency.Profile`` of the model's layers in the runtime the latency is
    budgeted in (``lightcompress.convert`` times them)."""

    profile: object = field(default=None, compare=False, repr=False)
    option = "target_latency"
    metric = "latency"

    def describe(self):
        where = f" on {self.profile.runtime}" if self.profile is not None else ""
        return f"{super().describe()}{where}"


RULES = {"rank": FixedRank, "energy": Energy, "ratio": Ratio, "target_params": TargetParams,
         "target_macs": TargetMacs, "target_latency": TargetLatency}


def rank_rule(**choices):
    """The rule for exactly one of ``rank=``, ``energy=``, ``ratio=``, ``target_params=``,
    ``target_macs=``, ``target_latency=`` (the others None; a latency target gets its profile
    where the model is converted)."""
    given = {k: v for k, v in choices.items() if v is not None}
    unknown = set(choices) - set(RULES)
    if unknown:
        raise OptionError(f"unknown rank rule {sorted(unknown)[0]!r}; use one of {', '.join(RULES)}.")
    if len(given) != 1:
        got = f" (got {', '.join(f'{k}={v}' for k, v in given.items())})" if given else ""
        raise OptionError("choose exactly one rank rule: rank=N, energy=F, ratio=F, target_params=F, target_macs=F "
                          f"or target_latency=F{got}.")
    (name, value), = given.items()
    return RULES[name](value)


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


def make_plan(model, rule, layer_filter: LayerFilter | None = None, method=None, statistics=None, floor=0.0) -> Plan:
    """Decide what to do with every factorisable layer of ``model`` under ``rule``, for factors
    made by ``method`` (a name or ``methods.Method``; default: ``resolve_method``'s). With the
    ``statistics`` the method needs (``statistics.Statistics``), errors are output errors on
    their inputs (the method's own factors')."""
    return decide(model, rule, layer_filter, method, statistics, floor)[0]


def decide(model, rule, layer_filter: LayerFilter | None = None, method=None, statistics=None,
           floor=0.0) -> tuple[Plan, dict]:
    """(``make_plan``'s plan, {layer name: the candidate it was decided from}): applying the plan
    with those (``apply_plan(..., sources=)``) reuses their decompositions. ``floor``: a budget
    takes no layer below this fraction of its energy (``defaults.NO_DATA_ENERGY_FLOOR``)."""
    layer_filter = layer_filter or LayerFilter()
    if not isinstance(rule, tuple(RULES.values())):
        raise OptionError(f"rule {rule!r} is not a rank rule; use FixedRank, Energy, Ratio, TargetParams, "
                          "TargetMacs or TargetLatency.")
    if isinstance(rule, TargetLatency) and rule.profile is None:
        raise RankError("needs each layer's latency: give TargetLatency(fraction, profile=latency.profile(model, "
                        "layer_filter, runtime)), or convert with target_latency=, which times them",
                        option="target_latency", value=rule.fraction)
    method = resolve_method(method, statistics is not None)
    found = candidates(model, statistics, vectors=True, method=method)  # the plan is usually applied: decompose once
    if isinstance(rule, _Budget):
        allocation = ErrorAllocation(model, found, layer_filter, rule.metric, profile=getattr(rule, "profile", None),
                                     whole_model=not isinstance(rule, Ratio), floor=floor)
        return allocation.plan(rule.fraction, rule.describe(), method.name, rule.option), allocation.sources()
    plan = Plan(policy=rule.describe(), method=method.name, not_considered=not_considered(model))
    _, reasons = layer_filter.chosen(found)
    for c in found:
        if c.name in reasons:
            plan.layers.append(keep(c, reasons[c.name]))
        elif isinstance(rule, FixedRank):
            plan.layers.append(_plan_rank(c, layer_filter.modes(c), rule.rank, layer_filter))
        else:
            plan.layers.append(_plan_energy(c, layer_filter.modes(c), rule.fraction, layer_filter))
        c.keep_only(plan.layers[-1].mode, plan.layers[-1].rank)  # memory: only what applying needs
    return plan, {c.name: c for c in found}
