"""A latency budget met as measured: the converted model timed whole in the runtime, and the
allocation re-aimed while it misses (``convert`` and ``compress`` with ``target_latency=`` both
end here)."""

from __future__ import annotations

from ..deploy import latency
from ..deploy.timing import Runtime
from ..errors import LightCompressError

LATENCY_ROUNDS = 3  # allocations re-aimed at the measured whole-model latency


def meet_measured_latency(model, new_model, plan, target, build, runtime: Runtime):
    """Layer times add up only roughly to the whole model's; measure the whole converted model,
    and while it misses the target, re-aim the allocation by the measured shortfall
    (``build(aim, "latency")`` -> (new model, plan)). The measurement goes into the plan's
    policy and, for a plan sized for a budget, into ``plan.budget`` ("measured", and "aimed": the
    fraction a re-aimed plan was sized for)."""
    base = latency.model_latency(model, runtime, (1,), 100, 10)[0].median_ms
    aim = target
    for round_ in range(LATENCY_ROUNDS + 1):  # the last model built is measured too
        measured = latency.model_latency(new_model, runtime, (1,), 100, 10)[0].median_ms / base
        plan.policy += f"; measured {measured:.3f} of the original's latency"
        if plan.budget is not None:  # a re-aimed plan was sized for ``aim``: the goal stays ``target``
            plan.budget.update(target=target, measured=round(measured, 6), **({} if aim == target else {"aimed": aim}))
        if measured <= target or round_ == LATENCY_ROUNDS:
            break
        aim *= target / measured
        try:
            new_model, plan = build(aim, "latency")
        except LightCompressError:
            break  # nothing cheaper fits: keep the closest model, its measurement is in the policy
    return new_model, plan
