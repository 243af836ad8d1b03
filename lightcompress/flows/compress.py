"""`compress`: meet a size budget (or an accuracy limit) with the least accuracy lost.

1. Allocation of one rank per layer for the budget, by one of two strategies (``allocation``):
   "sensitivity" (the default) measures each layer's loss per rank on a held-out slice of the
   training data (cached; see ``sensitivity``) and allocates from that table (see ``allocate``);
   "error" allocates from each layer's own truncation error, its output error on the calibration
   images for a data-aware method (see ``budget``), and evaluates no model.
2. Conversion, then fine-tuning on the rest of the training data, by default distilled from the
   original model.

With ``max_drop`` the budget is searched instead: a bisection over the fraction of parameters
kept, each trial converted and fine-tuned, judged by its accuracy drop on the held-out slice;
the smallest model within the limit wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..deploy import latency, targets
from ..deploy.timing import Runtime
from ..training import finetune as ft
from ..data.dataset import Dataset
from ..training.distill import DEFAULT_ALPHA, DEFAULT_TEMPERATURE
from ..errors import LightCompressError, OptionError
from ..training.evaluation import evaluate
from ..factorization.methods import resolve_method
from ..factorization.statistics import calibration_images, check_count, collect
from ..defaults import (ALLOCATION_CHOICES, DEFAULT_ALLOCATION, DEFAULT_CALIBRATION_SAMPLES, compress_epochs,
                        compress_learning_rate)
from ..factorization.apply import apply_plan, calibrate_and_apply
from ..factorization.candidates import candidates
from ..planning import ErrorAllocation, LayerFilter, Plan, Sensitivity, allocate, analyse
from ..validation import whole as check_whole

from ..training import distribute
from ..io import models as model_io
from .. import report
from ..data.sets import DataSpec, required
from ..planning import write_plan
from .common import load_inputs, no_progress, stem
from .measured_latency import meet_measured_latency
from .export import export_file
from .compare import compare_int8, compare_models


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
    sensitivity: Sensitivity | None  # None with the "error" allocation (no analysis)
    fit: ft.FitResult
    metric: str
    target: float
    trials: list = field(default_factory=list)
    profile: object = None  # the latency.Profile the plan was guarded (or budgeted) with
    statistics: object = None  # statistics.Statistics the method needed, with its wall time
    allocation: str = DEFAULT_ALLOCATION  # the strategy: one of defaults.ALLOCATION_CHOICES


def check_allocation(allocation) -> str:
    """``allocation`` if it names a strategy (``defaults.ALLOCATION_CHOICES``)."""
    if allocation not in ALLOCATION_CHOICES:
        raise OptionError("is unknown", option="allocation", value=allocation,
                          allowed=f"one of {', '.join(ALLOCATION_CHOICES)}")
    return allocation


def _tune(model, train, settings, teacher, callbacks):
    return ft.finetune(model, train, settings, callbacks=callbacks, teacher=teacher)


GOALS = ("target_params", "target_macs", "target_latency", "max_drop")  # the order messages name them in


@dataclass(frozen=True)
class CompressGoal:
    """What ``compress`` aims at: exactly one of ``target_params``, ``target_macs``,
    ``target_latency`` (fractions of the model's; latency is batch-1 time measured in the
    runtime) or ``max_drop`` (accuracy points, searched). Checked once, when made; the stages
    take one and trust it.

    >>> CompressGoal(target_params=0.2).metric, CompressGoal(max_drop=0.5).metric
    ('params', None)
    """

    target_params: float | None = None
    target_macs: float | None = None
    target_latency: float | None = None
    max_drop: float | None = None

    def __post_init__(self):
        chosen = [f"{k}={v}" for k, v in self._given()]
        if len(chosen) != 1:
            got = f" (got {', '.join(chosen)})" if chosen else ""
            raise OptionError("choose exactly one goal: target_params=F, target_macs=F, target_latency=F or "
                              f"max_drop=POINTS{got}.")
        for name in GOALS[:3]:
            value = getattr(self, name)
            if value is not None and not (_finite(value) and 0 < value < 1):
                raise OptionError("is not a fraction", option=name, value=value, allowed="a number in (0, 1), e.g. 0.2")
        if self.max_drop is not None and not (_finite(self.max_drop) and 0 <= self.max_drop <= 100):
            raise OptionError("is invalid", option="max_drop", value=self.max_drop,
                              allowed="accuracy points in [0, 100], e.g. 0.5")

    def _given(self):
        return [(k, getattr(self, k)) for k in GOALS if getattr(self, k) is not None]

    @classmethod
    def parse(cls, goal=None, **values) -> CompressGoal:
        """``goal`` as it is, or a goal made of the keyword ``values`` (never both)."""
        given = {k: v for k, v in values.items() if v is not None}
        if goal is None:
            return cls(**given)
        if given:
            raise OptionError(f"give goal= or {', '.join(given)}, not both.")
        if not isinstance(goal, cls):
            raise OptionError("is not a CompressGoal", option="goal", value=goal,
                              allowed="CompressGoal(target_params=0.2), or target_params=0.2 itself")
        return goal

    @property
    def metric(self) -> str | None:
        """"params", "macs" or "latency" for a budget; None for ``max_drop`` (a search)."""
        name = self._given()[0][0]
        return None if name == "max_drop" else name[len("target_"):]

    @property
    def target(self) -> float:
        """The budget's fraction, or the accuracy points of ``max_drop``."""
        return self._given()[0][1]


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def compress(model, prepared: Dataset, goal: CompressGoal | None = None, *, target_params=None, target_macs=None,
             target_latency=None, max_drop=None, layer_filter: LayerFilter | None = None, rank_multiple=1,
             holdout_size=1000, cache_dir=None, use_cache=True, settings: ft.FitSettings | None = None, distill=True,
             alpha=DEFAULT_ALPHA, temperature=DEFAULT_TEMPERATURE, trials=4, runtime: Runtime | str | None = None,
             threads=None, allow_slower=False, callbacks=(), on_step=None, on_trial=None, warn=None, method=None,
             calibration_samples=DEFAULT_CALIBRATION_SAMPLES, on_plan=None,
             allocation=DEFAULT_ALLOCATION) -> CompressResult:
    """Meet one goal with the least accuracy lost: ``goal`` (a ``CompressGoal``), or one of
    ``target_params``, ``target_macs`` or ``target_latency`` (fractions of the model's; latency is
    batch-1 time measured in ``runtime``) or ``max_drop`` (accuracy points, searched over
    ``trials`` budgets).

    ``runtime``: a ``Runtime``, or a runtime name with ``threads`` (see ``Runtime.parse``). Unless
    ``allow_slower``, every layer's options are timed in it (see ``latency.profile``; cached) and
    an option measured slower than the layer as it is is never chosen.

    ``method`` (a name or ``methods.Method``): "data-aware" (the default) calibrates on
    ``calibration_samples`` training images (never the held-out slice's judgement nor test
    images) and factorises for output error; "svd" forces plain truncated SVD; see
    ``methods.known_methods()`` for the variants. The sensitivity analysis measures the
    factorisation that is applied. ``on_plan(plan)`` hears each plan before it is fine-tuned.

    ``allocation``: "sensitivity" (the default) allocates from each layer's measured loss per
    rank (one model evaluation per layer and rank, cached); "error" from each layer's truncation
    error (its output error on the calibration images with a data-aware method, its weight error
    with "svd"), evaluating no model: much faster. Both honour every goal and the latency guard."""
    goal = CompressGoal.parse(goal, target_params=target_params, target_macs=target_macs,
                              target_latency=target_latency, max_drop=max_drop)
    runtime = Runtime.parse(runtime, threads)
    check_allocation(allocation)
    method = resolve_method(method, True)
    check_count(calibration_samples)
    check_whole("rank_multiple", rank_multiple, 1)
    check_whole("trials", trials, 1)
    settings = settings or default_settings(goal)
    teacher = ft.Teacher(model, alpha, temperature) if distill else None
    layer_filter = layer_filter or LayerFilter()
    judge, train = prepared.holdout(holdout_size, settings.seed)
    stats = None
    if method.needs_data:
        calib_x = calibration_images(train, calibration_samples, settings.seed)
        stats = collect(model, calib_x, source=f"{len(calib_x)} training images of {prepared.name}",
                        needs=method.needs)
    sens = found = None
    if allocation == "sensitivity":
        sens = analyse(model, judge, layer_filter, rank_multiple, cache_dir, use_cache, on_step, warn,
                       method=method, statistics=stats)
        chosen = sens.layers
    else:
        found = candidates(model, stats, vectors=True, method=method)
        chosen = layer_filter.chosen(found)[0]
    if not chosen:
        raise LightCompressError("no layer can be factorised (the report lists each layer's reason); nothing to compress.")
    profile = None
    if goal.metric == "latency" or not allow_slower:
        profile = latency.profile(model, layer_filter, runtime, rank_multiple, cache_dir=(
            None if cache_dir is None else Path(cache_dir) / "latency"), use_cache=use_cache, on_step=on_step,
            warn=warn)
    by_error = {}  # {metric: ErrorAllocation}: each layer's errors computed once per metric

    def allocated(target, metric):
        if sens is not None:
            return allocate(model, sens, target, metric, rank_multiple, profile, allow_slower)  # method: sens's
        if metric not in by_error:
            by_error[metric] = ErrorAllocation(model, found, layer_filter, metric, profile=profile,
                                               allow_slower=allow_slower, multiple=rank_multiple)
        guard = f", latency guard on {profile.runtime}" if by_error[metric].guarded else ""
        return by_error[metric].plan(target, f"error allocation, target {metric} {target:g}{guard}", method.name,
                                     f"target_{metric}")

    def build(target, metric):
        plan = allocated(target, metric)
        if on_plan:
            on_plan(plan)
        if stats is None:
            return apply_plan(model, plan), plan
        new_model, _ = calibrate_and_apply(model, plan, calib_x,
                                           statistics=None if method.sequential else stats)
        return new_model, plan

    if goal.metric is not None:
        metric, target = goal.metric, goal.target
        new_model, plan = build(target, metric)
        if metric == "latency":
            new_model, plan = meet_measured_latency(model, new_model, plan, target, build, runtime)
        fit = _tune(new_model, train, settings, teacher, callbacks)
        return CompressResult(new_model, plan, sens, fit, metric, target, profile=profile, statistics=stats,
                              allocation=allocation)

    base = evaluate(model, judge).accuracy
    lo, hi, best, history = 0.0, 1.0, None, []
    for _ in range(trials):
        mid = (lo + hi) / 2 if best is not None or lo > 0 else 0.25
        try:
            candidate, plan = build(mid, "params")
        except LightCompressError:
            lo = mid
            continue
        fit = _tune(candidate, train, settings, teacher, callbacks)
        accuracy = evaluate(candidate, judge).accuracy
        drop = (base - accuracy) * 100
        trial = Trial(mid, int(candidate.count_params()), accuracy, drop, drop <= goal.max_drop)
        history.append(trial)
        if on_trial:
            on_trial(trial)
        if trial.passed:
            hi, best = mid, (candidate, plan, fit)
        else:
            lo = mid
    if best is None:
        if not history:
            raise LightCompressError("no budget could be tried; lower min_params or aim higher.")
        closest = min(history, key=lambda t: t.drop_points)
        raise LightCompressError(
            f"no budget tried kept the accuracy drop within {goal.max_drop:g} points on the held-out slice "
            f"(smallest drop {closest.drop_points:.2f} points, keeping {closest.target:g} of the params); "
            f"allow a larger max_drop, more epochs, or more trials."
        )
    candidate, plan, fit = best
    return CompressResult(candidate, plan, sens, fit, "params", hi, history, profile=profile, statistics=stats,
                          allocation=allocation)


def export_runtime(export) -> str | None:
    """The runtime an ``export`` choice deploys to when its precision is not the float default's:
    the target's runtime name for its quantisation (``litert-int8``); else None.

    >>> export_runtime("litert-int8"), export_runtime("litert"), export_runtime("litert-float16")
    ('litert-int8', None, None)
    """
    target, quantize = targets.export_choices().get(export, (None, "none"))
    return None if quantize == "none" else target.runtime_name(quantize)


def planning_runtime(runtime=None, threads=None, export=None) -> Runtime:
    """The runtime ``compress`` plans (and reports) in: ``runtime`` when given (see
    ``Runtime.parse``); else the one ``export`` deploys to when its precision differs from the
    default's (``litert-int8``: a full-int8 model); else the default.

    >>> planning_runtime(None, 2, "litert-int8").name, planning_runtime("keras", 2, "litert-int8").name
    ('litert-int8', 'keras')
    """
    return Runtime.parse(export_runtime(export) if runtime is None else runtime, threads)


def default_settings(goal: CompressGoal) -> ft.FitSettings:
    """compress's fine-tuning settings when none are given: the epoch budget and learning rate
    for the goal's params budget (``defaults.compress_epochs``, ``compress_learning_rate``)."""
    return ft.FitSettings(epochs=compress_epochs(goal.target_params),
                          learning_rate=compress_learning_rate(goal.target_params))


def compress_file(source, output=None, goal: CompressGoal | None = None, *, data: DataSpec | None = None,
                  layer_filter=None, settings=None, force=False, trust=False, repeats=30, callbacks=(),
                  stage=no_progress, export=None, runtime: Runtime | str | None = None, threads=None,
                  target_params=None, target_macs=None, target_latency=None, max_drop=None, **options) -> dict:
    """``compress`` on a model file: saves the model (default ``<stem>.compressed.keras``) and its
    plan (``<output stem>.plan.json``), and reports it against the original. The goal and the
    runtime are made once here (see ``compress``) and passed down as they are."""
    source = Path(source)
    data = required(data)  # none given: said before any other check
    goal = CompressGoal.parse(goal, target_params=target_params, target_macs=target_macs,
                              target_latency=target_latency, max_drop=max_drop)
    runtime = planning_runtime(runtime, threads, export)
    check_allocation(options.get("allocation", DEFAULT_ALLOCATION))  # refused before any work
    check_whole("repeats", repeats, 1)  # the final report's timing: refused before any work, not after it
    check_whole("holdout_size", options.get("holdout_size", 1), 1)  # not after loading the data
    if options.get("distill", True):  # distillation settings refused before any work, not after the analysis
        ft.Teacher(None, options.get("alpha", DEFAULT_ALPHA), options.get("temperature", DEFAULT_TEMPERATURE))
    export_target = _check_export(export, source, output, force)
    settings = settings or default_settings(goal)
    distribute.placement(settings.devices)  # devices the backend cannot see refused before any work
    if options.get("cache_dir") is not None:
        from ..io import cache

        cache.check_dir(options["cache_dir"])
    target = model_io.check_output(output or source.with_name(f"{stem(source)}.compressed.keras"),
                                   force=force, inputs=[source])
    plan_path = model_io.check_output(target.with_name(f"{target.stem}.plan.json"), force=force,
                                      inputs=[source], suffixes=(".json",))
    original, prepared = load_inputs(source, data, trust, stage, stream=True)
    result = compress(original, prepared, goal, layer_filter=layer_filter, settings=settings, callbacks=callbacks,
                      runtime=runtime, **options)
    index, count = distribute.process()
    exported, saved = None, result.model
    if index == 0:  # several hosts: every process holds the same weights, process 0 alone writes them
        model_io.save_model(result.model, target, force=force, inputs=[source])
        write_plan(result.plan, plan_path, force=force, inputs=[source])
        if export_target is not None:
            fmt, quantize, path = export_target
            exported = export_file(target, fmt, path, quantize=quantize, data=data, threads=runtime.threads,
                                   force=force, stage=stage)
        saved = model_io.load_model(target)
    if exported is not None and exported["quantize"] == "int8":  # int8 is the target: the four-column compare
        compared = compare_int8(original, saved, [source, target], prepared, repeats=repeats,
                                threads=runtime.threads, compressed_int8=exported["path"], stage=stage)
    else:
        with stage("measuring both models"):
            compared = compare_models([original, saved], [source, target], prepared, repeats=repeats,
                                      runtime=runtime)
    out = report.compress_dict(result, compared, plan_path, target)
    if exported is not None:
        out["export"] = exported
    if count > 1:
        out["written_by"] = f"process 0 of {count}"
    return out


def _check_export(export, source, output, force):
    """(format, quantize, path) for ``compress``'s export option (``<format>`` or
    ``<format>-<quantisation>``: ``targets.export_choices``), checked before any work."""
    if export is None:
        return None
    from ..deploy import export as ex

    choices = targets.export_choices()
    if export not in choices:
        raise OptionError("is unknown", option="export", value=export, allowed=f"one of {', '.join(choices)}")
    target, quantize = choices[export]
    fmt = ex.check_settings(target.name, quantize)
    keras_target = Path(output) if output else source.with_name(f"{stem(source)}.compressed.keras")
    path = ex.check_output(ex.default_output(keras_target, fmt, quantize), fmt, force=force, inputs=[source])
    return fmt, quantize, path

