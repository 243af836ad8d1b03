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

import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import report
from ..data.dataset import Dataset
from ..data.sets import DataSpec, required
from ..defaults import (
    ALLOCATION_CHOICES,
    DEFAULT_ALLOCATION,
    DEFAULT_CALIBRATION_SAMPLES,
    compress_epochs,
    compress_learning_rate,
)
from ..deploy import export as ex
from ..deploy import latency, targets
from ..deploy.timing import Runtime
from ..errors import LightCompressError, OptionError
from ..factorization.apply import apply_plan, calibrate_and_apply
from ..factorization.candidates import candidates
from ..factorization.methods import resolve_method
from ..factorization.statistics import calibration_images, check_count, collect
from ..io import cache
from ..io import models as model_io
from ..planning import ErrorAllocation, LayerFilter, Plan, Sensitivity, allocate, analyse, write_plan
from ..planning.costs import timed
from ..planning.goal import CompressGoal
from ..training import distribute
from ..training import finetune as ft
from ..training.distill import DEFAULT_ALPHA, DEFAULT_TEMPERATURE
from ..training.evaluation import evaluate
from ..validation import whole as check_whole
from .common import load_inputs, no_progress, stem
from .compare import compare_int8, compare_models
from .estimate import compress_estimate
from .export import export_loaded
from .measured_latency import meet_measured_latency


@dataclass
class Trial:
    target: float
    params: int
    heldout_accuracy: float
    drop_points: float
    passed: bool
    same_as: float | None = None  # the budget whose plan this one's was (not fine-tuned again)


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
    met: bool = True  # False: max_drop was missed, and the closest model found is the one returned


def check_allocation(allocation) -> str:
    """``allocation`` if it names a strategy (``defaults.ALLOCATION_CHOICES``)."""
    if allocation not in ALLOCATION_CHOICES:
        raise OptionError("is unknown", option="allocation", value=allocation,
                          allowed=f"one of {', '.join(ALLOCATION_CHOICES)}")
    return allocation


def _tune(model, train, settings, teacher, callbacks):
    return ft.finetune(model, train, settings, callbacks=callbacks, teacher=teacher)


@dataclass(frozen=True)
class CompressSettings:
    """Every choice of one ``compress`` run, resolved and checked once (``make``); the stages take
    it as it is and check nothing again.

    ``method``: a ``methods.Method``; ``runtime``: a ``Runtime``; ``fit``: the ``FitSettings`` of
    fine-tuning; ``distillation``: a ``Distillation`` (None: the hard labels alone); ``export``:
    (target, quantisation) of ``export=`` (it picks the planning runtime), or None."""

    goal: CompressGoal
    method: object
    allocation: str
    runtime: Runtime
    fit: ft.FitSettings
    distillation: ft.Distillation | None
    layer_filter: LayerFilter
    rank_multiple: int = 1
    holdout_size: int = 1000
    trials: int = 4
    allow_slower: bool = False
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES
    cache_dir: Path | None = None
    use_cache: bool = True
    export: tuple | None = None

    @classmethod
    def make(cls, goal: CompressGoal | None = None, *, target_params=None, target_macs=None, target_latency=None,
             max_drop=None, method=None, allocation=DEFAULT_ALLOCATION, runtime: Runtime | str | None = None,
             threads=None, export=None, settings: ft.FitSettings | None = None, distill=True, alpha=DEFAULT_ALPHA,
             temperature=DEFAULT_TEMPERATURE, layer_filter: LayerFilter | None = None, rank_multiple=1,
             holdout_size=1000, trials=4, allow_slower=False, calibration_samples=DEFAULT_CALIBRATION_SAMPLES,
             cache_dir=None, use_cache=True) -> CompressSettings:
        """The settings from the options a caller gives (see ``compress``), each checked here, before
        any work: ``goal`` (a ``CompressGoal``) or one of ``target_params``, ``target_macs``,
        ``target_latency``, ``max_drop``; ``runtime`` a ``Runtime`` or a name with ``threads``
        (default: the one ``export`` deploys to, see ``planning_runtime``); ``settings`` default to
        the goal's (``default_settings``)."""
        goal = CompressGoal.parse(goal, target_params=target_params, target_macs=target_macs,
                                  target_latency=target_latency, max_drop=max_drop)
        chosen_export = check_export(export)
        fit = settings or default_settings(goal)
        distribute.placement(fit.devices)  # devices the backend cannot see
        if cache_dir is not None:
            cache.check_dir(cache_dir)
        return cls(goal=goal, method=resolve_method(method, True), allocation=check_allocation(allocation),
                   runtime=planning_runtime(runtime, threads, export), fit=fit,
                   distillation=ft.Distillation(alpha, temperature) if distill else None,
                   layer_filter=layer_filter or LayerFilter(),
                   rank_multiple=check_whole("rank_multiple", rank_multiple, 1),
                   holdout_size=check_whole("holdout_size", holdout_size, 1),
                   trials=check_whole("trials", trials, 1), allow_slower=bool(allow_slower),
                   calibration_samples=check_count(calibration_samples), cache_dir=cache_dir,
                   use_cache=bool(use_cache), export=chosen_export)


def compress(model, prepared: Dataset, settings: CompressSettings, *, callbacks=(), on_step=None, on_trial=None,
             on_plan=None, warn=None) -> CompressResult:
    """Meet ``settings.goal`` with the least accuracy lost: a params, MACs or latency budget
    (fractions of the model's; latency is batch-1 time measured in ``settings.runtime``), or
    ``max_drop`` (accuracy points, searched over ``settings.trials`` budgets).

    Unless ``allow_slower``, every layer's options are timed in the runtime (see
    ``latency.profile``; cached) and an option measured slower than the layer as it is is never
    chosen. A method that needs data (the default, "data-aware") calibrates on
    ``calibration_samples`` training images (never the held-out slice's judgement nor test
    images); the sensitivity analysis measures the factorisation that is applied.
    ``on_plan(plan)`` hears each plan before it is fine-tuned.

    ``allocation``: "sensitivity" (the default) allocates from each layer's measured loss per
    rank (one model evaluation per layer and rank, cached); "error" from each layer's truncation
    error (its output error on the calibration images with a data-aware method, its weight error
    with "svd"), evaluating no model: much faster. Both honour every goal and the latency guard."""
    goal, method, layer_filter, multiple = settings.goal, settings.method, settings.layer_filter, settings.rank_multiple
    allow_slower, cache_dir = settings.allow_slower, settings.cache_dir
    distilled = settings.distillation
    teacher = ft.Teacher(model, distilled.alpha, distilled.temperature) if distilled else None
    judge, train = prepared.holdout(settings.holdout_size, settings.fit.seed)
    stats = None
    if method.needs_data:
        calib_x = calibration_images(train, settings.calibration_samples, settings.fit.seed)
        stats = collect(model, calib_x, source=f"{len(calib_x)} training images of {prepared.name}",
                        needs=method.needs)
    sens = found = None
    if settings.allocation == "sensitivity":
        sens = analyse(model, judge, layer_filter, multiple, cache_dir, settings.use_cache, on_step, warn,
                       method=method, statistics=stats)
        chosen = sens.layers
    else:
        found = candidates(model, stats, vectors=True, method=method)
        chosen = layer_filter.chosen(found)[0]
    if not chosen:
        raise LightCompressError("no layer can be factorised (the report lists each layer's reason); nothing to compress.")
    profile = None
    if timed(goal.metric) or not allow_slower:
        profile = latency.profile(model, layer_filter, settings.runtime, multiple, cache_dir=(
            None if cache_dir is None else Path(cache_dir) / "latency"), use_cache=settings.use_cache, on_step=on_step,
            warn=warn)
    by_error = {}  # {metric: ErrorAllocation}: each layer's errors computed once per metric

    def allocated(target, metric):
        if sens is not None:
            return allocate(model, sens, target, metric, multiple, profile, allow_slower)  # method: sens's
        if metric not in by_error:
            by_error[metric] = ErrorAllocation(model, found, layer_filter, metric, profile=profile,
                                               allow_slower=allow_slower, multiple=multiple)
        guard = f", latency guard on {profile.runtime}" if by_error[metric].guarded else ""
        return by_error[metric].plan(target, f"error allocation, target {metric} {target:g}{guard}", method.name,
                                     f"target_{metric}")

    def build(target, metric):
        plan = allocated(target, metric)
        if on_plan:
            on_plan(plan)
        sources = None if found is None else by_error[metric].sources()  # the error plan's decompositions
        if stats is None:
            return apply_plan(model, plan, method=method, sources=sources), plan
        new_model, _ = calibrate_and_apply(model, plan, calib_x, method=method, sources=sources,
                                           statistics=None if method.sequential else stats)
        return new_model, plan

    if goal.metric is not None:
        metric, target = goal.metric, goal.target
        new_model, plan = build(target, metric)
        if timed(metric):
            new_model, plan = meet_measured_latency(model, new_model, plan, target, build, settings.runtime)
        fit = _tune(new_model, train, settings.fit, teacher, callbacks)
        return CompressResult(new_model, plan, sens, fit, metric, target, profile=profile, statistics=stats,
                              allocation=settings.allocation)

    def tuned(candidate):
        return _tune(candidate, train, settings.fit, teacher, callbacks)

    candidate, plan, fit, target, history, missed = _search(build, tuned, judge, evaluate(model, judge).accuracy,
                                                            goal.max_drop, settings.trials, on_trial)
    if missed:
        plan.notes.append(missed)
    return CompressResult(candidate, plan, sens, fit, "params", target, history, profile=profile, statistics=stats,
                          allocation=settings.allocation, met=not missed)


def _plan_key(plan) -> tuple:
    return tuple((p.name, p.mode, p.rank) for p in plan.layers)


def _search(build, tuned, judge, base, max_drop, trials, on_trial):
    """``max_drop``'s search: a bisection over the fraction of the params kept, each budget's model
    fine-tuned (``tuned``) and judged on the held-out slice against ``base``, its accuracy. A
    budget whose plan is one already tried (the ladder or the latency guard left no other) reuses
    that trial. Returns (model, plan, fit, fraction, trials, missed): the smallest model within the
    limit, else the one with the smallest drop and a sentence saying the limit was missed."""
    lo, hi, best, closest, history, seen = 0.0, 1.0, None, None, [], {}
    for _ in range(trials):
        mid = (lo + hi) / 2 if best is not None or lo > 0 else 0.25
        try:
            candidate, plan = build(mid, "params")
        except LightCompressError:
            lo = mid
            continue
        key = _plan_key(plan)
        if key in seen:  # the same plan again: its result, not another fine-tuning
            earlier, candidate, plan, fit = seen[key]
            trial = Trial(mid, earlier.params, earlier.heldout_accuracy, earlier.drop_points, earlier.passed,
                          same_as=earlier.target)
        else:
            fit = tuned(candidate)
            accuracy = evaluate(candidate, judge).accuracy
            drop = (base - accuracy) * 100
            trial = Trial(mid, int(candidate.count_params()), accuracy, drop, drop <= max_drop)
            seen[key] = (trial, candidate, plan, fit)
        history.append(trial)
        if on_trial:
            on_trial(trial)
        if trial.passed:
            hi, best = mid, (candidate, plan, fit, mid)
        else:
            lo = mid
            if closest is None or trial.drop_points < closest[0].drop_points:
                closest = (trial, candidate, plan, fit)
    if best is not None:
        return (*best, history, None)
    if closest is None:
        raise LightCompressError("no budget could be tried; lower min_params or aim higher.")
    trial, candidate, plan, fit = closest
    missed = (f"max_drop {max_drop:g} missed: no budget tried kept the held-out accuracy drop within it; kept the "
              f"closest, {trial.drop_points:.2f} points at {trial.target:g} of the params ({trial.params:,} params); "
              f"allow a larger max_drop, more epochs, or more trials")
    return candidate, plan, fit, trial.target, history, missed


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


def compress_file(source, output, settings: CompressSettings, *, data: DataSpec | None = None, force=False,
                  trust=False, repeats=30, callbacks=(), stage=no_progress, on_estimate=None, **hooks) -> dict:
    """``compress`` on a model file: saves the model (default ``<stem>.compressed.keras``), its plan
    (``<output stem>.plan.json``) and, with ``settings.export``, the deployable file, and reports it
    against the original. ``on_estimate(line)`` hears what the run is expected to take before it
    starts (``estimate.compress_estimate``; also in the result's ``estimate``, beside the
    ``elapsed`` seconds). ``hooks``: ``compress``'s ``on_step``, ``on_trial``, ``on_plan``, ``warn``."""
    source = Path(source)
    data = required(data)  # none given: said before any other check
    check_whole("repeats", repeats, 1)  # the final report's timing: refused before any work, not after it
    target = model_io.check_output(output or source.with_name(f"{stem(source)}.compressed.keras"),
                                   force=force, inputs=[source])
    plan_path = model_io.check_output(target.with_name(f"{target.stem}.plan.json"), force=force,
                                      inputs=[source], suffixes=(".json",))
    export_path = None if settings.export is None else export_output(settings.export, target, force, source)
    original, prepared = load_inputs(source, data, trust, stage, stream=True)
    start = time.perf_counter()
    with stage("estimating the run's time"):
        expected = compress_estimate(original, prepared, settings)
    if on_estimate is not None:
        on_estimate(expected.line())
    result = compress(original, prepared, settings, callbacks=callbacks, **hooks)
    index, count = distribute.process()
    exported, saved = None, result.model
    runtime = settings.runtime
    if index == 0:  # several hosts: every process holds the same weights, process 0 alone writes them
        model_io.save_model(result.model, target, force=force, inputs=[source])
        write_plan(result.plan, plan_path, force=force, inputs=[source])
        if export_path is not None:
            fmt, quantize = settings.export
            written = export_loaded(result.model, prepared, fmt, export_path, quantize=quantize,
                                    threads=runtime.threads, force=force, inputs=[source], stage=stage)
            exported = report.export_dict(target, written, prepared)
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
    out["estimate"] = expected.to_dict()
    out["elapsed_seconds"] = round(time.perf_counter() - start, 1)
    return out


def check_export(export):
    """(format, quantize) for ``compress``'s export choice (``<format>`` or
    ``<format>-<quantisation>``: ``targets.export_choices``), or None; checked before any work."""
    if export is None:
        return None
    choices = targets.export_choices()
    if export not in choices:
        raise OptionError("is unknown", option="export", value=export, allowed=f"one of {', '.join(choices)}")
    target, quantize = choices[export]
    return ex.check_settings(target.name, quantize), quantize


def export_output(export, keras_target, force, source) -> Path:
    """Where ``compress_file`` writes ``settings.export``: beside the compressed model, checked before any work."""
    fmt, quantize = export
    return ex.check_output(ex.default_output(keras_target, fmt, quantize), fmt, force=force, inputs=[source])
