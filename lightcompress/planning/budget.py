"""Budgets spent by error, with no model evaluated: what each option of a layer costs (params, MACs
per example or batch-1 latency) and the allocation that buys, across layers, the options removing
the most squared relative error per unit of that cost.

An option's error is its candidate's own (``Candidate.errors``): the output error on the
calibration inputs when the method is data-aware, else the weight error. The rank rules
``Ratio``, ``TargetParams``, ``TargetMacs`` and ``TargetLatency`` (``rules``) and ``compress``'s
"error" allocation plan with it; its "sensitivity" allocation (``allocate``) plans from measured
model losses instead.

Every layer starts at its cheapest option. Upgrades are bought best first by squared error removed
per unit of extra cost, over every option with less error (any rank, any mode: Tucker-2, whose
cost is not linear in the rank, included); when the best one does not fit, the one with the least
error that does. "keep" (no error) is an option too, so a budget with room for a layer as it is
leaves it whole. With a latency ``Profile`` every option carries its measured time, and one
measured slower than the layer as it is is dropped unless ``allow_slower``
(``allocate.with_latency``).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import replace

import numpy as np

from ..errors import RankError
from ..factorization.candidates import macs_per_rank, not_considered
from .allocate import METRICS, with_latency
from .costs import budget_note, latency_note, speed_bound_note, whole_cost
from .plan import Plan, factorise, keep
from .sensitivity import LayerSensitivity, Option


def table(c, layer_filter, macs=None, multiple=1) -> LayerSensitivity:
    """Candidate ``c``'s options: "keep", then every rank (the multiples of ``multiple``) up to the
    largest saving ``min_saving`` in each mode ``layer_filter`` considers, each with its params,
    its MACs per example (``macs(mode, rank)``; 0 without) and its squared relative error as loss."""
    def macs_of(mode, rank):
        return 0 if macs is None else macs(mode, rank)

    options = [Option(None, None, c.params, macs_of(None, None), 0.0, math.nan)]
    for mode in layer_filter.modes(c):
        limit = layer_filter.limit(c, mode)
        if limit == 0:
            continue
        errors = c.errors(mode)
        options.extend(Option(rank, mode, c.factor_params(mode, rank) + c.bias_params, macs_of(mode, rank),
                              float(errors[rank - 1]) ** 2, math.nan)
                       for rank in range(multiple, limit + 1, multiple))
    return LayerSensitivity(c.name, c.kind, list(c.kernel_shape), options)


def spend(tables, budget: float, metric="params") -> list[int]:
    """Index of the chosen option per table (``LayerSensitivity``, loss = squared error) so that
    their costs in ``metric`` add up to at most ``budget`` where their cheapest options do."""
    costs = [np.array([getattr(o, metric) for o in ls.options], dtype=np.float64) for ls in tables]
    losses = [np.array([o.loss for o in ls.options], dtype=np.float64) for ls in tables]
    choice = [int(np.lexsort((loss, cost))[0]) for cost, loss in zip(costs, losses)]  # cheapest, least error
    spent = sum(cost[i] for cost, i in zip(costs, choice))
    heap = []

    def push(j):
        cost, loss, i = costs[j], losses[j], choice[j]
        better = loss < loss[i]
        if better.any():
            gain = np.where(better, (loss[i] - loss) / np.maximum(cost - cost[i], 1e-12), -np.inf)
            k = int(np.argmax(gain))
            heapq.heappush(heap, (-float(gain[k]), j, k))

    for j in range(len(tables)):
        push(j)
    while heap:
        _, j, k = heapq.heappop(heap)
        cost, loss, i = costs[j], losses[j], choice[j]
        if spent + cost[k] - cost[i] > budget:  # the best upgrade does not fit: the least error that does
            fits = np.flatnonzero((loss < loss[i]) & (spent + cost - cost[i] <= budget))
            if not len(fits):
                continue
            k = int(fits[np.lexsort((cost[fits], loss[fits]))[0]])
        spent += cost[k] - cost[i]
        choice[j] = k
        push(j)
    return choice


def _amount(metric, value) -> str:
    if metric == "latency":
        return f"{value * 1000:,.1f} us"
    return f"{value:,.0f} {'MACs' if metric == 'macs' else 'params'}"


class ErrorAllocation:
    """The options of the candidates in ``found`` that ``layer_filter`` chooses, with their errors
    and their cost in ``metric`` ("params", "macs" or "latency"), planned for any fraction of the
    budget by ``plan`` (the errors are computed once, here).

    ``whole_model``: fractions are of the whole model's cost, the layers left as they are counting
    at theirs; False: of the chosen layers' params (``Ratio``). ``profile`` (a ``latency.Profile``
    of the same layers) is needed for a latency budget; with it every option carries its time and,
    unless ``allow_slower``, none measured slower than the layer as it is is chosen. ``multiple``:
    only ranks that are multiples of it."""

    def __init__(self, model, found, layer_filter, metric="params", *, profile=None, allow_slower=True, multiple=1,
                 whole_model=True, floor=0.0):
        if metric not in METRICS:
            raise RankError("is unknown", option="metric", value=metric, allowed=f"one of {', '.join(METRICS)}")
        if metric == "latency" and profile is None:
            raise RankError("a latency budget needs each layer's measured latencies: give a latency profile "
                            "(deploy.latency.profile).")
        self.model, self.found, self.metric, self.profile = model, found, metric, profile
        self.whole_model, self.floor = whole_model, floor
        self.guarded = profile is not None and not allow_slower
        self.below_floor = 0  # options that would keep less than ``floor`` of a layer's energy
        chosen, self.reasons = layer_filter.chosen(found)
        self.only_keep = {}  # {name: why no factorisation of a chosen layer is an option}
        self.tables, self.removed = [], 0  # removed: options the latency guard dropped
        macs = macs_per_rank(model)
        for c in chosen:
            timed = None if profile is None else profile.layer(c.name)
            if metric == "macs" and c.name not in macs:
                self.reasons[c.name] = ("its MACs are not counted per rank (an input size is not fixed, or it is "
                                        "part of a composite layer), so a MACs budget keeps it as it is")
                continue
            if metric == "latency" and timed is None:
                self.reasons[c.name] = "not timed (an input size is not fixed), so a latency budget keeps it as it is"
                continue
            ls = table(c, layer_filter, macs.get(c.name), multiple)
            if floor:
                kept = [o for o in ls.options if o.rank is None or 1.0 - o.loss >= floor]
                self.below_floor += len(ls.options) - len(kept)
                if len(kept) == 1 and len(ls.options) > 1:
                    self.only_keep[c.name] = f"every rank that saves params keeps less than {floor:.0%} of its energy"
                ls = replace(ls, options=kept)
            if len(ls.options) == 1:
                self.only_keep[c.name] = (f"no rank that is a multiple of {multiple} saves "
                                          f"min_saving={layer_filter.min_saving:g} of its params")
            if timed is not None:
                ls, dropped = with_latency(ls, timed, allow_slower)
                self.removed += dropped
                if dropped and len(ls.options) == 1:
                    self.only_keep[c.name] = "every factorisation was measured slower than the layer as it is"
            self.tables.append(ls)
        in_tables = sum(getattr(ls.options[0], metric) for ls in self.tables)
        whole = whole_cost(model, metric, profile) if whole_model else in_tables
        self.fixed = max(0.0, whole - in_tables)  # what the layers left as they are cost
        self.whole = max(whole, in_tables)  # layers timed alone may add up to more than the whole model

    def sources(self) -> dict:
        """{layer name: candidate} its plans were decided from: applying a plan with them
        (``apply_plan(..., sources=)``) reuses their decompositions."""
        return {c.name: c for c in self.found}

    def plan(self, fraction, policy, method="svd", option="target_params") -> Plan:
        """The plan keeping about ``fraction`` of the cost (``option``: the name errors give it);
        ``plan.budget`` says what it is predicted to keep."""
        budget = fraction * self.whole
        least = self.fixed + sum(min(getattr(o, self.metric) for o in ls.options) for ls in self.tables)
        if least > budget:
            reach = math.ceil(least / self.whole * 1000) / 1000
            of = "the model's" if self.whole_model else "the chosen layers'"
            floor = (f" that keeps at least {self.floor:.0%} of its energy (no_data_floor={self.floor:g}, as it is "
                     f"planned without labelled data; a data set plans by measured error and sensitivity instead)"
                     if self.below_floor else "")
            raise RankError(
                f"cannot be met: the layers left as they are already hold {_amount(self.metric, self.fixed)} of "
                f"{of} {_amount(self.metric, self.whole)}, and with every other layer at its cheapest option{floor} "
                f"the smallest reachable fraction is {reach:.3f}", option=option, value=fraction,
                allowed=(f"a fraction of at least {reach:.3f}, or " if reach < 1 else "")
                + "a lower min_params so more layers are converted"
                + (", or a lower no_data_floor" if self.below_floor else ""))
        choice = spend(self.tables, budget - self.fixed, self.metric)
        picked = {ls.name: (ls, ls.options[i]) for ls, i in zip(self.tables, choice)}
        plan = Plan(policy=policy, method=method, not_considered=not_considered(self.model))
        if self.metric == "latency" and self.whole_model:
            plan.notes.append(speed_bound_note(self.profile.runtime, self.whole, self.fixed, self.tables, choice))
        if self.below_floor:
            plan.notes.append(f"floor: planned without labelled data, no layer keeps less than {self.floor:.0%} of its "
                              f"energy ({self.below_floor} rank option(s) below it left out)")
        if self.removed:
            plan.notes.append(f"latency guard ({self.profile.runtime}): {self.removed} option(s) measured slower than "
                              "the layer they replace, beyond the noise of both timings, were removed")
        for c in self.found:
            if c.name in self.reasons:
                plan.layers.append(keep(c, self.reasons[c.name]))
            else:
                ls, o = picked[c.name]
                if o.rank is None:
                    plan.layers.append(keep(c, self.only_keep.get(c.name, "the budget has room for it as it is")))
                else:
                    note = (None if o.latency is None else
                            latency_note(o.latency / 1000, ls.options[0].latency / 1000))
                    plan.layers.append(factorise(c, o.mode, o.rank, note))
            c.keep_only(plan.layers[-1].mode, plan.layers[-1].rank)  # memory: only what applying needs
        if self.whole_model:
            spent = self.fixed + sum(getattr(o, self.metric) for _, o in picked.values())
            plan.budget = {"metric": self.metric, "target": fraction, "planned": round(spent / self.whole, 6)}
            plan.notes.insert(0, budget_note(self.metric, spent, budget))
            if self.metric == "latency":
                plan.budget["runtime"] = self.profile.runtime
        return plan
