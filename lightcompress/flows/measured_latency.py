"""A latency budget met as measured: the converted model timed whole in the runtime, and the
allocation re-aimed while it misses or leaves the budget unspent (``convert`` and ``compress``
with ``target_latency=`` both end here)."""

from __future__ import annotations

from ..deploy import measure
from ..deploy.timing import Runtime
from ..errors import LightCompressError

LATENCY_ROUNDS = 3  # allocations re-aimed at the measured whole-model latency
# A plan measured under this share of the budget is re-aimed upwards: per-layer times add up to
# more than the whole model (ResNet50 at --target-latency 0.5 measured 0.405 as first planned),
# and the unspent time is accuracy given away (issue 24: use at least 97% of the budget).
FILL = 0.97
MOST_AIM = 0.999  # a fraction must stay below 1


def _fraction(model, new_model, runtime: Runtime) -> float:
    """``new_model``'s batch-1 latency as a fraction of ``model``'s, the two timed in turns (so the
    machine's drift falls on both, as in ``compare``)."""
    (base,), (new,) = measure.timed_together([model, new_model], runtime, (1,), 100, 10)
    return new.median_ms / base.median_ms


def meet_measured_latency(model, new_model, plan, target, build, runtime: Runtime):
    """Layer times add up only roughly to the whole model's; measure the whole converted model
    and re-aim the allocation by the measured ratio (``build(aim, "latency")`` -> (new model,
    plan)) while it misses the target, or meets it with less than ``FILL`` of it used, for at
    most ``LATENCY_ROUNDS`` rounds. Returns the fullest model measured within the target (the
    closest above it when none is). Each measurement goes into its plan's policy and
    ``plan.budget`` ("measured", and "aimed": the fraction a re-aimed plan was sized for)."""
    aim, tried = target, []  # tried: (measured fraction, model, plan)
    for round_ in range(LATENCY_ROUNDS + 1):  # the last model built is measured too
        measured = _fraction(model, new_model, runtime)
        plan.policy += f"; measured {measured:.3f} of the original's latency"
        if plan.budget is not None:  # a re-aimed plan was sized for ``aim``: the goal stays ``target``
            plan.budget.update(target=target, measured=round(measured, 6), **({} if aim == target else {"aimed": aim}))
        tried.append((measured, new_model, plan))
        if FILL * target <= measured <= target or round_ == LATENCY_ROUNDS:
            break
        next_aim = min(aim * target / measured, MOST_AIM)
        if next_aim == aim:
            break
        aim = next_aim
        try:
            new_model, plan = build(aim, "latency")
        except LightCompressError:
            break  # nothing cheaper fits: keep the closest model, its measurement is in the policy
    within = [t for t in tried if t[0] <= target]
    _, new_model, plan = max(within, key=lambda t: t[0]) if within else min(tried, key=lambda t: t[0])
    return new_model, plan
