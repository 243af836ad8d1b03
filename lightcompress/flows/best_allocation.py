"""convert's allocation of a params or MACs budget when it has held-out training images: plan it
both ways, by each layer's output error (``make_plan``: no model evaluated) and by each layer's
measured loss per rank (``analyse`` + ``allocate``), build both and keep the one whose model has
the lower loss on the held-out images (never test images). Neither allocation wins everywhere
(docs/RESULTS.md: without fine-tuning, error allocation lost 0.11 points where sensitivity lost 0.26
on fmnist_cnn_keras3.h5 at 2x, and 0.75 where sensitivity lost 0.39 at 3x), and one held-out
evaluation of each model tells them apart.
"""

from __future__ import annotations

from ..defaults import CONVERT_ALLOCATION_CHOICES
from ..errors import OptionError
from ..planning import TargetMacs, TargetParams, allocate, analyse, make_plan
from ..training.evaluation import evaluate

def applies(rule, allocation) -> bool:
    """Whether ``rule`` is planned from held-out images under ``allocation`` (a params or MACs
    budget, and not "error")."""
    return isinstance(rule, (TargetParams, TargetMacs)) and allocation != "error"


def best_allocation(model, rule, layer_filter, method, stats, judge, build, allocation="both", on_step=None):
    """(new model, plan) for the budget ``rule``: the ``allocation`` asked for ("sensitivity",
    or "both": the one of the two with the lower loss on ``judge``), each plan built by
    ``build(plan) -> (model, plan)``. The kept plan's notes say both held-out losses."""
    sens = analyse(model, judge, layer_filter, on_step=on_step, method=method, statistics=stats)
    by_sensitivity = build(allocate(model, sens, rule.fraction, rule.metric))
    if allocation == "sensitivity":
        return by_sensitivity
    by_error = build(make_plan(model, rule, layer_filter, method, stats))
    losses = [evaluate(built, judge).loss for built, _ in (by_error, by_sensitivity)]
    kept, other = (0, 1) if losses[0] <= losses[1] else (1, 0)
    names = ("error", "sensitivity")
    new_model, plan = (by_error, by_sensitivity)[kept]
    plan.notes.append(f"allocation: by {names[kept]} kept, held-out loss {losses[kept]:.4f} against "
                      f"{losses[other]:.4f} by {names[other]} ({judge.count('test'):,} training images held out)")
    return new_model, plan


def check(allocation) -> str:
    """``allocation`` if it is one of ``defaults.CONVERT_ALLOCATION_CHOICES``."""
    if allocation not in CONVERT_ALLOCATION_CHOICES:
        raise OptionError("is unknown", option="allocation", value=allocation,
                          allowed=f"one of {', '.join(CONVERT_ALLOCATION_CHOICES)}")
    return allocation
