"""Rank policies: decide, for every Dense/Conv2D layer, a rank and mode or a reason to skip it.

Policies (exactly one):

- ``rank=N``: the same rank everywhere, clipped per layer to the largest rank that still saves
  parameters (the break-even rank); a layer where no rank saves anything is skipped.
- ``energy=F``: per layer, the smallest rank keeping a fraction F of the squared singular values.
- ``target_params=F``: the same global allocation, sized so the whole model keeps about F of its
  parameters (layers that are not converted count at their full size).
- ``ratio=F``: a global budget: the converted layers together keep about F of their parameters.
  Ranks are bought greedily, one singular value at a time, across all layers, by the energy it
  keeps (σ² as a fraction of the layer's ||W||²) per parameter it costs; so layers whose spectra
  fall fast get small ranks and the budget goes where singular values are large.

``conv_mode`` is "channel", "spatial" or "auto": auto picks, per Conv2D, the mode with the lower
reconstruction error for the same parameters spent.
"""

from __future__ import annotations

import fnmatch
import heapq
from dataclasses import asdict, dataclass, field

from . import svd
from .analyze import Candidate, candidates
from .errors import LightCompressError, RankError

CONV_MODE_CHOICES = ("channel", "spatial", "auto")
POLICIES = ("rank", "energy", "ratio", "target_params")
DEFAULT_MIN_PARAMS = 1000


@dataclass(frozen=True)
class RankPolicy:
    """How to choose ranks. Exactly one of ``rank``, ``energy``, ``ratio``, ``target_params``."""

    rank: int | None = None
    energy: float | None = None
    ratio: float | None = None
    target_params: float | None = None
    include: tuple = ()
    exclude: tuple = ()
    min_params: int = DEFAULT_MIN_PARAMS
    conv_mode: str = "channel"

    def __post_init__(self):
        chosen = [k for k in POLICIES if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise LightCompressError(
                "choose exactly one rank policy: --rank N, --energy F, --ratio F or --target-params F"
                + (f" (got {', '.join('--' + k.replace('_', '-') for k in chosen)})." if chosen else ".")
            )
        if self.rank is not None and (
            isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1
        ):
            raise RankError(f"rank={self.rank!r} is invalid; use a positive whole number, e.g. --rank 8.")
        if self.energy is not None and not 0 < self.energy <= 1:
            raise RankError(f"energy={self.energy!r} is not a fraction; use a number in (0, 1], e.g. 0.95.")
        if self.ratio is not None and not 0 < self.ratio < 1:
            raise RankError(
                f"ratio={self.ratio!r} is not a fraction; use a number in (0, 1), e.g. 0.5 to keep "
                f"half the parameters."
            )
        if self.target_params is not None and not 0 < self.target_params < 1:
            raise RankError(
                f"target_params={self.target_params!r} is not a fraction; use a number in (0, 1), "
                f"e.g. 0.2 for a model 5x smaller."
            )
        if self.conv_mode not in CONV_MODE_CHOICES:
            raise LightCompressError(
                f"conv_mode={self.conv_mode!r} is unknown; use one of {', '.join(CONV_MODE_CHOICES)}."
            )
        if isinstance(self.min_params, bool) or not isinstance(self.min_params, int) or self.min_params < 0:
            raise LightCompressError(f"min_params={self.min_params!r} is invalid; use a whole number >= 0.")

    def describe(self) -> str:
        if self.rank is not None:
            return f"rank {self.rank}"
        if self.energy is not None:
            return f"energy {self.energy:g}"
        if self.target_params is not None:
            return f"target params {self.target_params:g}"
        return f"ratio {self.ratio:g}"


@dataclass
class LayerPlan:
    """What happens to one layer. ``rank`` is None when the layer is skipped (see ``skipped``)."""

    name: str
    kind: str
    kernel_shape: tuple
    params_before: int
    params_after: int
    rank: int | None = None
    mode: str | None = None
    energy: float | None = None
    error: float | None = None
    skipped: str | None = None
    note: str | None = None

    @property
    def converted(self) -> bool:
        return self.rank is not None


@dataclass
class Plan:
    policy: str
    layers: list[LayerPlan] = field(default_factory=list)

    @property
    def converted(self) -> list[LayerPlan]:
        return [p for p in self.layers if p.converted]

    def params_saved(self) -> int:
        return sum(p.params_before - p.params_after for p in self.layers)

    def to_dict(self) -> dict:
        return {"policy": self.policy, "layers": [asdict(p) for p in self.layers]}


def _skip(c: Candidate, reason: str) -> LayerPlan:
    return LayerPlan(c.name, c.kind, c.kernel_shape, c.params, c.params, skipped=reason)


def _convert(c: Candidate, mode: str, rank: int, note=None) -> LayerPlan:
    n, m = c.matrix_shape(mode)
    s = c.spectrum(mode)
    return LayerPlan(
        name=c.name,
        kind=c.kind,
        kernel_shape=c.kernel_shape,
        params_before=c.params,
        params_after=svd.factorized_params(n, m, rank) + c.bias_params,
        rank=rank,
        mode=mode,
        energy=float(svd.retained_energy(s)[rank - 1]),
        error=svd.reconstruction_error(s, rank),
        note=note,
    )


def _filter_reason(c: Candidate, policy: RankPolicy) -> str | None:
    if c.unsupported:
        return f"unsupported: {c.unsupported}"
    if policy.include and not any(fnmatch.fnmatchcase(c.name, p) for p in policy.include):
        return "not matched by --include"
    matched = [p for p in policy.exclude if fnmatch.fnmatchcase(c.name, p)]
    if matched:
        return f"excluded by --exclude {matched[0]!r}"
    if c.params < policy.min_params:
        return f"{c.params} params, below --min-params {policy.min_params}"
    if all(svd.break_even_rank(*c.matrix_shape(m)) == 0 for m in c.modes):
        return f"no rank saves parameters for a kernel of shape {c.kernel_shape}"
    return None


def _modes(c: Candidate, policy: RankPolicy) -> tuple:
    if c.kind == "Dense":
        return ("dense",)
    return svd.CONV_MODES if policy.conv_mode == "auto" else (policy.conv_mode,)


def _best_for_budget(c: Candidate, modes, budget: float):
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


def _plan_rank(c, policy):
    modes = _modes(c, policy)
    if len(modes) > 1:  # auto: spend the weights channel mode takes at this rank where error is lowest
        n, m = c.matrix_shape("channel")
        budget = min(policy.rank, max(1, svd.break_even_rank(n, m))) * (n + m)
        mode, rank = _best_for_budget(c, modes, budget)
        return _convert(c, mode, rank, f"auto: {mode} has the lower error for {budget} weights")
    mode = modes[0]
    n, m = c.matrix_shape(mode)
    limit = svd.break_even_rank(n, m)
    if limit == 0:
        return _skip(c, f"no rank saves parameters for a {mode} matrix of shape {(n, m)}")
    rank = min(policy.rank, limit)
    note = None
    if rank < policy.rank:
        note = f"rank {policy.rank} clipped to {rank}, the largest that saves parameters"
    return _convert(c, mode, rank, note)


def _plan_energy(c, policy):
    options = []
    for mode in _modes(c, policy):
        n, m = c.matrix_shape(mode)
        rank = svd.rank_for_energy(c.spectrum(mode), policy.energy)
        options.append((svd.factorized_params(n, m, rank), mode, rank, svd.break_even_rank(n, m)))
    params, mode, rank, limit = min(options)
    if rank > limit:
        return _skip(
            c,
            f"keeping {policy.energy:.0%} energy needs rank {rank}, above the break-even rank {limit}",
        )
    return _convert(c, mode, rank)


def _plan_ratio(chosen, policy, ratio):
    """Greedy global allocation keeping about ``ratio`` of the chosen layers' params."""
    picks = {}
    for c in chosen:
        modes = _modes(c, policy)
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
    return {name: _convert(c, mode, rank) for name, (c, mode, rank) in picks.items()}


def make_plan(model, policy: RankPolicy) -> Plan:
    """Decide what to do with every Dense and Conv2D layer of ``model``."""
    plan = Plan(policy=policy.describe())
    found = candidates(model)
    reasons = {c.name: _filter_reason(c, policy) for c in found}
    chosen = [c for c in found if reasons[c.name] is None]
    ratio = policy.ratio
    if policy.target_params is not None and chosen:
        before = sum(c.params for c in chosen)
        fixed = int(model.count_params()) - before  # layers that stay as they are
        ratio = (policy.target_params * model.count_params() - fixed) / before
        if ratio <= 0:
            raise RankError(
                f"target_params={policy.target_params:g} cannot be met: the layers left as they are "
                f"already hold {fixed:,} of {model.count_params():,} params; lower --min-params or "
                f"aim higher."
            )
    if ratio is not None:
        ratio_plans = _plan_ratio(chosen, policy, min(ratio, 1.0))
    for c in found:
        if reasons[c.name]:
            plan.layers.append(_skip(c, reasons[c.name]))
        elif policy.rank is not None:
            plan.layers.append(_plan_rank(c, policy))
        elif policy.energy is not None:
            plan.layers.append(_plan_energy(c, policy))
        else:
            plan.layers.append(ratio_plans[c.name])
    return plan
