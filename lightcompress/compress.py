"""`compress`: meet a size budget (or an accuracy limit) with the least accuracy lost.

1. Sensitivity analysis on a held-out slice of the training data (cached; see ``sensitivity``).
2. Allocation of one rank per layer for the budget (see ``allocate``).
3. Conversion, then fine-tuning on the rest of the training data, by default distilled from the
   original model.

With ``max_drop`` the budget is searched instead: a bisection over the fraction of parameters
kept, each trial converted and fine-tuned, judged by its accuracy drop on the held-out slice;
the smallest model within the limit wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import finetune as ft
from .allocate import allocate
from .data import Prepared
from .distill import DEFAULT_ALPHA, DEFAULT_TEMPERATURE
from .errors import LightCompressError
from .factorize import apply_plan
from .plan import Plan, RankPolicy
from .sensitivity import Sensitivity, analyse


@dataclass
class Trial:
    target: float
    params: int
    heldout_accuracy: float
    drop_points: float
    passed: bool


@dataclass
class CompressResult:
    model: object
    plan: Plan
    sensitivity: Sensitivity
    fit: ft.FitResult
    metric: str
    target: float
    trials: list = field(default_factory=list)


def split_holdout(prepared: Prepared, size, seed):
    """(held-out slice for judging, the rest of the training data for fine-tuning)."""
    size = min(size, len(prepared.x_train) // 5)
    if size < 1:
        raise LightCompressError(f"{prepared.name} has too few training images to hold any out.")
    order = np.random.default_rng(seed + 1).permutation(len(prepared.x_train))
    held, rest = order[:size], order[size:]
    sl = Prepared(f"{prepared.name} (held-out train slice)", prepared.x_train[held], prepared.y_train[held],
                  prepared.x_train[held], prepared.y_train[held], prepared.num_classes)
    train = Prepared(prepared.name, prepared.x_train[rest], prepared.y_train[rest], prepared.x_test,
                     prepared.y_test, prepared.num_classes, prepared.changes)
    return sl, train


def _tune(model, original, train, settings, distill, alpha, temperature, callbacks):
    teacher = ft.Teacher(original, alpha, temperature) if distill else None
    return ft.finetune(model, train, settings, callbacks=callbacks, teacher=teacher)


def compress(model, prepared: Prepared, *, target_params=None, target_macs=None, max_drop=None,
             policy: RankPolicy | None = None, rank_multiple=1, holdout_size=1000, cache_dir=None,
             use_cache=True, settings: ft.FitSettings | None = None, distill=True,
             alpha=DEFAULT_ALPHA, temperature=DEFAULT_TEMPERATURE, trials=4, callbacks=(), on_step=None, on_trial=None) -> CompressResult:
    chosen = [k for k, v in (("--target-params", target_params), ("--target-macs", target_macs),
                             ("--max-drop", max_drop)) if v is not None]
    if len(chosen) != 1:
        raise LightCompressError(
            "choose exactly one goal: --target-params F, --target-macs F or --max-drop POINTS"
            + (f" (got {', '.join(chosen)})." if chosen else ".")
        )
    for name, value in (("target_params", target_params), ("target_macs", target_macs)):
        if value is not None and not 0 < value < 1:
            raise LightCompressError(f"{name}={value!r} is not a fraction; use a number in (0, 1), e.g. 0.2.")
    if max_drop is not None and max_drop < 0:
        raise LightCompressError(f"max_drop={max_drop!r} is invalid; use accuracy points >= 0, e.g. 0.5.")
    if isinstance(rank_multiple, bool) or not isinstance(rank_multiple, int) or rank_multiple < 1:
        raise LightCompressError(f"rank_multiple={rank_multiple!r} is invalid; use a whole number >= 1.")
    settings = settings or ft.FitSettings()
    ft.check_settings(settings)
    policy = policy or RankPolicy(rank=1)  # only its filters and conv mode are used here
    judge, train = split_holdout(prepared, holdout_size, settings.seed)
    sens = analyse(model, judge, policy, rank_multiple, cache_dir, use_cache, on_step)
    if not sens.layers:
        raise LightCompressError("no layer can be factorised (see the reasons with --json); nothing to compress.")

    def build(target, metric):
        plan = allocate(model, sens, target, metric, rank_multiple)
        return apply_plan(model, plan), plan

    if max_drop is None:
        metric, target = ("params", target_params) if target_params is not None else ("macs", target_macs)
        new_model, plan = build(target, metric)
        fit = _tune(new_model, model, train, settings, distill, alpha, temperature, callbacks)
        return CompressResult(new_model, plan, sens, fit, metric, target)

    base = ft.evaluate(model, judge).accuracy
    lo, hi, best, history = 0.0, 1.0, None, []
    for _ in range(trials):
        mid = (lo + hi) / 2 if best is not None or lo > 0 else 0.25
        try:
            candidate, plan = build(mid, "params")
        except LightCompressError:
            lo = mid
            continue
        fit = _tune(candidate, model, train, settings, distill, alpha, temperature, callbacks)
        accuracy = ft.evaluate(candidate, judge).accuracy
        drop = (base - accuracy) * 100
        trial = Trial(mid, int(candidate.count_params()), accuracy, drop, drop <= max_drop)
        history.append(trial)
        if on_trial:
            on_trial(trial)
        if trial.passed:
            hi, best = mid, (candidate, plan, fit)
        else:
            lo = mid
    if best is None:
        if not history:
            raise LightCompressError("no budget could be tried; lower --min-params or aim higher.")
        closest = min(history, key=lambda t: t.drop_points)
        raise LightCompressError(
            f"no budget tried kept the accuracy drop within {max_drop:g} points on the held-out slice "
            f"(smallest drop {closest.drop_points:.2f} points, keeping {closest.target:g} of the params); "
            f"allow a larger drop, more --epochs, or more --trials."
        )
    candidate, plan, fit = best
    return CompressResult(candidate, plan, sens, fit, "params", hi, history)
