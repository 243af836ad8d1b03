"""convert's allocation of a params or MACs budget when it has held-out training images: plan it
both ways, by each layer's output error (``make_plan``: no model evaluated) and by each layer's
measured loss per rank (``analyse`` + ``allocate``), build both and keep the one whose outputs on
the held-out images (never test images) are closer to the original's: the lower mean KL
divergence (``evaluation.divergence``), the same aim as the factors' own fit (the original's
outputs, not the labels, whose noise a loss carries). Neither allocation wins everywhere
(docs/RESULTS.md: without fine-tuning, error allocation lost 0.17 points where sensitivity lost 0.26
on fmnist_cnn_keras3.h5 at 2x, and 0.72 where sensitivity lost 0.39 at 3x).
"""

from __future__ import annotations

import math

from .. import defaults
from ..defaults import CONVERT_ALLOCATION_CHOICES
from ..errors import OptionError, RankError
from ..planning import LayerFilter, TargetMacs, TargetParams, allocate, analyse, decide
from ..planning.sensitivity import LADDER
from ..training.evaluation import divergence, evaluate, output_kind
from .common import factorisable, macs_per_example


def budgeted(rule) -> bool:
    """Whether ``rule`` is a budget the allocations choose between (params or MACs)."""
    return isinstance(rule, (TargetParams, TargetMacs))


def resolve(allocation, rule, model, layer_filter, holdout) -> tuple[str, str | None]:
    """(the allocation to plan ``rule`` with, a note when "auto" gave up measuring): "auto" is
    "both" where measuring each layer's sensitivity on ``holdout`` images (one evaluation per
    layer, mode and ladder rank) costs at most ``defaults.AFFORDABLE_MACS``, else "error"."""
    if allocation != "auto" or not budgeted(rule):
        return allocation, None
    if holdout < 1:
        return "error", "allocation: by error only: too few training images to hold any out"
    layer_filter = layer_filter or LayerFilter()
    evaluations = sum(len(layer_filter.modes(c)) for c in factorisable(model, layer_filter)) * len(LADDER)
    cost = evaluations * holdout * macs_per_example(model, unknown=math.inf)
    if cost <= defaults.AFFORDABLE_MACS:
        return "both", None
    about = "an unknown number of" if math.isinf(cost) else f"about {cost:.1e}"
    return "error", (f"allocation: by error only: measuring each layer's sensitivity ({evaluations:,} evaluations of "
                     f"{holdout:,} held-out images) would cost {about} multiply-accumulates, over "
                     f"{defaults.AFFORDABLE_MACS:.0e}; asking for both allocations measures it anyway")


def applies(rule, allocation) -> bool:
    """Whether ``rule`` is planned from held-out images under ``allocation`` (a params or MACs
    budget, and not "error")."""
    return budgeted(rule) and allocation != "error"


def best_allocation(model, rule, layer_filter, method, stats, judge, build, allocation="both", on_step=None):
    """(new model, plan) for the budget ``rule``: the ``allocation`` asked for ("sensitivity",
    or "both": the one of the two whose outputs on ``judge`` are closer to ``model``'s), each
    plan built by ``build(plan, sources=None) -> (model, plan)``. The kept plan's notes say both held-out
    divergences and losses."""
    sens = analyse(model, judge, layer_filter, on_step=on_step, method=method, statistics=stats)
    if allocation == "sensitivity":
        return build(allocate(model, sens, rule.fraction, rule.metric))
    by_error = build(*decide(model, rule, layer_filter, method, stats))
    try:
        by_sensitivity = build(allocate(model, sens, rule.fraction, rule.metric))
    except RankError as err:  # its ladder's smallest ranks cannot meet a budget the error plan meets
        by_error[1].notes.append(f"allocation: by error only: the sensitivity allocation cannot meet it ({err})")
        return by_error
    kind = output_kind(model, judge.head("test", 64)[0])
    apart = [divergence(model, built, judge, kind) for built, _ in (by_error, by_sensitivity)]
    losses = [evaluate(built, judge, kind).loss for built, _ in (by_error, by_sensitivity)]
    kept, other = (0, 1) if apart[0] <= apart[1] else (1, 0)
    names = ("error", "sensitivity")
    new_model, plan = (by_error, by_sensitivity)[kept]
    plan.notes.append(f"allocation: by {names[kept]} kept, closer to the original on {judge.count('test'):,} "
                      f"held-out training images: KL {apart[kept]:.4f} against {apart[other]:.4f} by {names[other]} "
                      f"(loss {losses[kept]:.4f} against {losses[other]:.4f})")
    return new_model, plan


def check(allocation) -> str:
    """``allocation`` if it is one of ``defaults.CONVERT_ALLOCATION_CHOICES``."""
    if allocation not in CONVERT_ALLOCATION_CHOICES:
        raise OptionError("is unknown", option="allocation", value=allocation,
                          allowed=f"one of {', '.join(CONVERT_ALLOCATION_CHOICES)}")
    return allocation
