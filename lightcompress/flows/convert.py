"""The ``convert`` flow: plan, factorise and measure a model (``convert``), and the same on files
(``convert_file``: load, save, report)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import keras

from .. import report
from ..data.samples import read_samples, split
from ..data.sets import DataSpec
from ..data.synthetic import check_input_shape, input_sizes, input_specs, model_inputs_like
from ..defaults import (CONVERT_HOLDOUT, DEFAULT_CALIBRATION_SAMPLES, DEFAULT_CONVERT_ALLOCATION,
                        convert_calibration_samples, convert_method)
from ..deploy import latency
from ..deploy.lower import light_layers
from ..deploy.timing import Runtime
from ..errors import LightCompressWarning, OptionError, UnsupportedModelError
from ..factorization.apply import apply_plan, calibrate_and_apply
from ..factorization.candidates import weight_bytes
from ..factorization import synthesis
from ..factorization.methods import resolve_method
from ..factorization.statistics import calibration_images, check_count, collect
from ..io import models as model_io
from ..io.files import check_regular_file
from ..planning import LayerFilter, Plan, TargetLatency, decide, read_plan
from ..training.evaluation import OutputDifference, evaluate, output_difference
from .best_allocation import applies, best_allocation, budgeted
from .best_allocation import check as check_allocation
from .best_allocation import resolve as resolve_allocation
from .common import (data_inputs, decomposition_progress, factorisable, load_inputs, macs_per_example, no_progress,
                     test_images)
from .measured_latency import meet_measured_latency


@dataclass(frozen=True)
class ConvertSettings:
    """convert's choices, resolved and checked once (``make``); nothing below checks them again.

    ``rule`` (a rank rule, ``planning.rank_rule``) or ``plan_file``; ``method`` a ``Method`` or None
    (the default for what the model is calibrated on, resolved once the model is loaded);
    ``runtime`` the ``Runtime`` a ``TargetLatency`` is timed in (None for any other rule);
    ``labelled``: made for a run with a data set (``convert_file`` refuses other data).
    """

    rule: object | None
    plan_file: Path | None
    layer_filter: LayerFilter
    method: object | None
    calibration_samples: int | None
    runtime: Runtime | None
    allocation: str
    input_shape: tuple | None
    samples: Path | None
    synthesise: bool
    labelled: bool

    @classmethod
    def make(cls, rule=None, *, plan_file=None, layer_filter=None, method=None, calibration_samples=None,
             runtime: Runtime | str | None = None, allocation=DEFAULT_CONVERT_ALLOCATION, input_shape=None,
             samples=None, synthesise=True, data: DataSpec | None = None) -> ConvertSettings:
        """The settings of a ``convert_file`` run with ``data`` (a ``DataSpec``, or None for none),
        every choice checked here, before any work (see ``convert_file`` for what each does)."""
        if samples is not None and data is not None:
            raise OptionError("samples=... are unlabelled inputs for when there is no data set, and data=... was "
                              "given too; give one of them.")
        if method is not None:
            method = resolve_method(method, True)  # refused before any work
        check_allocation(allocation)
        if allocation != "auto" and (data is None or not budgeted(rule)):
            raise OptionError("chooses how a target_params or target_macs budget is planned with a data set "
                              "(data=NAME); give both, or drop it", option="allocation", value=allocation)
        if calibration_samples is not None:
            check_count(calibration_samples)
            if data is None or (method is not None and not method.needs_data):
                raise OptionError("counts the training images a data-aware method calibrates on; give a data set "
                                  "(data=NAME) and no method='svd', or drop it", option="calibration_samples",
                                  value=calibration_samples)
        if (rule is None) == (plan_file is None):
            raise OptionError("give either a rank rule or plan_file, not both or neither.")
        input_shape = check_input_shape(input_shape)
        if input_shape is not None and data is not None:
            raise OptionError(f"input_shape={','.join(map(str, input_shape))} sizes the random inputs used without a "
                              "data set, and the data set's test images are used; drop one of them.")
        layer_filter = layer_filter or LayerFilter()
        if data is not None:  # labelled data: budgets follow measured error and sensitivity, no floor
            layer_filter = replace(layer_filter, no_data_floor=0.0)
        return cls(rule=rule, plan_file=None if plan_file is None else Path(plan_file), layer_filter=layer_filter,
                   method=method, calibration_samples=calibration_samples, runtime=check_runtime(rule, runtime),
                   allocation=allocation, input_shape=input_shape, samples=None if samples is None else Path(samples),
                   synthesise=bool(synthesise), labelled=data is not None)


def convert_file(source, output=None, settings: ConvertSettings | None = None, *, data: DataSpec | None = None,
                 force=False, trust=False, stage=no_progress, on_step=None) -> dict:
    """Convert the model in ``source`` as ``settings`` say (a rank ``rule`` and ``layer_filter``,
    or a saved ``plan_file``; ``ConvertSettings.make``), save it to ``output`` (default
    ``<stem>.light.keras``), and report. ``method`` makes the factors; with ``data`` the default
    is data-aware, layer by layer where that is affordable (``default_method``), calibrated on
    ``calibration_samples`` training images (default: ``calibration_default`` layer by layer,
    else ``DEFAULT_CALIBRATION_SAMPLES``), and outputs are compared and accuracy measured on its
    test images. With ``data``, a params or MACs budget is
    allocated as ``allocation`` says (``best_allocation``; "both" and "sensitivity" hold out
    ``CONVERT_HOLDOUT`` training images). ``on_step(done, total, text)`` follows the
    decompositions (kernel weights done of all). A ``TargetLatency`` rule is timed in ``runtime``
    (see ``timed``). Without ``data`` the outputs are compared on random inputs, their unknown
    sizes filled from ``input_shape`` or what the model declares (``input_sizes``); where nothing
    sizes them the comparison is left out, never the conversion. ``samples`` (a folder of images,
    a ``.npy`` or a ``.npz``: ``data.samples``), without ``data``: unlabelled inputs; the factors
    are calibrated on four fifths of them and the outputs compared on the other fifth. With neither
    (and ``synthesise``), a model with BatchNorm layers and one fixed-size float input is calibrated
    on inputs synthesised from its BatchNorm statistics (``factorization.synthesis``), split the same
    way; any other model is planned on its weights alone and compared on random inputs. Without a
    labelled data set a budget keeps every layer above ``layer_filter.no_data_floor`` of its energy."""
    if settings is None:
        raise OptionError("give the settings of the run: ConvertSettings.make(rule, ...).")
    if settings.labelled != (data is not None):
        raise OptionError("the settings were made for a run " + ("with" if settings.labelled else "without")
                          + " a data set; make them with the data=... you convert with.")
    rule, plan_file, layer_filter, method = settings.rule, settings.plan_file, settings.layer_filter, settings.method
    samples, allocation, runtime = settings.samples, settings.allocation, settings.runtime
    calibration_samples, input_shape = settings.calibration_samples, settings.input_shape
    source = Path(source)
    inputs = [source] + ([plan_file] if plan_file else []) + data_inputs(data) + ([samples] if samples else [])
    if plan_file:  # refused before the model loads, not after: a FIFO would hang the read
        check_regular_file(plan_file, "a plan JSON file")
    target = model_io.check_output(output or model_io.default_output(source), force=force, inputs=inputs)
    original, prepared = load_inputs(source, data, trust, stage, stream=True)
    synthesised = None
    if (settings.synthesise and prepared is None and samples is None and (method is None or method.needs_data)
            and synthesis.why_not(original) is None):
        count, steps = synthesis.plan_size(macs_per_example(original))
        with stage(f"synthesising {count} calibration inputs from the model's BatchNorm statistics"):
            synthesised = synthesis.synthesise(original, count, steps, on_step=on_step)
    if method is None and prepared is None:
        method = resolve_method(None, samples is not None or synthesised is not None)
    if runtime is not None:
        with stage(f"timing each layer's ranks in {runtime.name}"):
            rule = timed(rule, original, layer_filter, runtime, on_step)
    judge, train, skipped = None, prepared, None
    if prepared is not None:
        allocation, skipped = resolve_allocation(allocation, rule, original, layer_filter,
                                                 prepared.holdout_size(CONVERT_HOLDOUT))
        if applies(rule, allocation):
            judge, train = prepared.holdout(CONVERT_HOLDOUT, data.seed)
    with stage("factorising"), decomposition_progress(original, on_step, None if plan_file else layer_filter):
        plan = read_plan(original, plan_file) if plan_file else None
        x = None if prepared is None else test_images(prepared)
        where = "random inputs" if prepared is None else f"test images of {prepared.name}"
        calib_x = None
        if samples is not None:
            calib_x, x = split(read_samples(samples, original))
            where = f"samples of {samples} (every fifth, held out from the calibration)"
        if synthesised is not None:
            calib_x, x = split(synthesised.x)
            where = "inputs synthesised from the model's BatchNorm statistics (every fifth, held out from the calibration)"
        if prepared is not None:
            wanted = calibration_samples or calibration_default(original)
            if method is None:  # layer by layer if the images there are suffice
                method = resolve_method(default_method(original, min(wanted, train.count("train")), layer_filter), True)
            if method.needs_data:
                count = calibration_samples or (wanted if method.sequential else DEFAULT_CALIBRATION_SAMPLES)
                calib_x = calibration_images(train, count, data.seed)
        result = convert(original, rule, layer_filter, x, where, plan=plan, calibration_x=calib_x, method=method,
                         judge=judge, allocation=allocation, on_step=on_step, input_shape=input_shape)
        if skipped:
            result.plan.notes.append(skipped)
    with stage(f"saving {target}"):
        model_io.save_model(result.model, target, force=force, inputs=inputs)
    out = report.conversion_dict(result, source, target, source.stat().st_size, target.stat().st_size)
    out["totals"]["optimizer_bytes_before"] = model_io.optimizer_bytes(source)
    if samples is not None and out.get("calibration"):
        out["calibration"]["source"] = f"samples of {samples}"
    if synthesised is not None:
        out["synthesis"] = {"inputs": len(synthesised.x), "batchnorm_layers": synthesised.layers,
                            "steps": synthesised.steps, "seconds": round(synthesised.seconds, 3),
                            "mismatch_before": round(synthesised.start_loss, 4), "mismatch_after": round(synthesised.loss, 4)}
        if out.get("calibration"):
            out["calibration"]["source"] = "inputs synthesised from the model's BatchNorm statistics"
    if prepared is not None:
        with stage("evaluating"):
            out["accuracy"] = report.before_after(evaluate(original, prepared), evaluate(result.model, prepared))
    return out


def calibration_default(model) -> int:
    """convert's calibration images for ``model`` (``defaults.convert_calibration_samples`` of
    its input size; as many as compress when an input has no fixed size or none is declared)."""
    try:
        sizes = [tuple(t.shape[1:]) for t in input_specs(model)]
    except UnsupportedModelError:
        return DEFAULT_CALIBRATION_SAMPLES
    if any(d is None for shape in sizes for d in shape):
        return DEFAULT_CALIBRATION_SAMPLES
    return convert_calibration_samples(sum(4 * math.prod(shape) for shape in sizes))


def default_method(model, count: int, layer_filter=None) -> str:
    """The method for ``model`` calibrated on ``count`` inputs: layer by layer where its passes
    (one per layer ``layer_filter`` may factorise) are affordable and the images enough for its
    widest Dense layer (``defaults.convert_method``); a model whose sizes are not fixed, one pass."""
    layers = factorisable(model, layer_filter)
    widest = max((c.kernel_shape[0] for c in layers if len(c.kernel_shape) == 2), default=0)
    return convert_method(count, macs_per_example(model, unknown=math.inf), len(layers), widest)


def check_runtime(rule, runtime=None) -> Runtime | None:
    """The ``Runtime`` a ``TargetLatency`` rule is timed in (``runtime``: a ``Runtime``, a name
    or None for the default), checked before any work; None for any other rule, which refuses a
    runtime given (nothing is timed)."""
    if isinstance(rule, TargetLatency):
        return Runtime.parse(runtime)
    if runtime is not None:
        given = (f"runtime={runtime.name} and threads={runtime.threads} say" if isinstance(runtime, Runtime)
                 else f"runtime={runtime} says")
        raise OptionError(f"{given} where target_latency is timed, and no latency target was given; give "
                          "target_latency=F too, or drop them.")
    return None


def timed(rule, model, layer_filter=None, runtime: Runtime | str | None = None, on_step=None):
    """``rule`` ready to plan ``model``: a ``TargetLatency`` without a profile gets the latency of
    each layer ``layer_filter`` chooses, as it is and per rank, in ``runtime`` (``latency.profile``,
    cached); one with a profile, as it is; any other rule as it is (and no runtime)."""
    if not isinstance(rule, TargetLatency):
        check_runtime(rule, runtime)
        return rule
    if rule.profile is not None:
        return rule

    profile = latency.profile(model, layer_filter, check_runtime(rule, runtime), on_step=on_step,
                              warn=lambda message: warnings.warn(message, LightCompressWarning, stacklevel=2))
    return replace(rule, profile=profile)


RANDOM_INPUT_MACS = 4e10  # multiply-accumulates one comparison on random inputs may cost (~1-2 s here)


def random_batch(model, most=32, least=2) -> int:
    """How many random inputs to compare ``model`` on: ``most``, fewer for a model whose forward
    pass is costly (VGG16, 15.5 GMACs per example: 2), never fewer than ``least``."""
    return int(max(least, min(most, RANDOM_INPUT_MACS // max(macs_per_example(model), 1))))


@dataclass
class Conversion:
    """A converted model and the numbers that describe the conversion."""

    model: keras.Model
    plan: Plan
    params_before: int
    params_after: int
    weight_bytes_before: int
    weight_bytes_after: int
    difference: OutputDifference | None  # None: no inputs to compare on (``not_compared`` says why)
    method: str = "svd"  # the name of the factorisation method (``methods``)
    calibration_seconds: float | None = None  # wall time of the calibration passes
    calibration_samples: int | None = None
    input_sizes: str | None = None  # where the random inputs' unknown sizes came from ("inputs sized from ...")
    not_compared: str | None = None  # why the outputs were not compared (no size for an input)


def refuse_converted(model):
    """A model whose only factorisable layers are LightLayers already: converting it again would
    save nothing and write a copy under a new name, so it is refused in one line."""
    light = light_layers(model)
    if light:
        names = ", ".join(f"'{layer.name}'" for layer in light[:4]) + (", ..." if len(light) > 4 else "")
        raise UnsupportedModelError(
            f"the model is already converted: its factorisable layers are LightLayers ({names}) and nothing "
            f"else is left to factorise; convert the original model at the rank you want instead.")


def convert(model, rule=None, layer_filter: LayerFilter | None = None, x=None, source="random inputs",
            plan=None, *, calibration_x=None, method=None, runtime: Runtime | str | None = None, judge=None,
            allocation=DEFAULT_CONVERT_ALLOCATION, on_step=None, input_shape=None) -> Conversion:
    """Plan ranks with ``rule`` and ``layer_filter`` (or take ``plan``), rebuild ``model`` with
    LightLayers, and measure the result.

    A ``TargetLatency`` rule is planned on each layer's latency in ``runtime`` (see ``timed``);
    the converted model is then timed whole and, while it misses the target, planned again
    (``meet_measured_latency``): ``plan.budget`` holds the planned and the measured fraction.

    ``x``: inputs to compare the two models' outputs on (random inputs when None, their unknown
    sizes filled from ``input_shape``, one example's size, e.g. ``(128,)``, or from what the model
    declares, a keras-hub backbone's ``max_sequence_length`` say: ``result.input_sizes`` tells
    which; where nothing sizes them, ``difference`` is None and ``not_compared`` says why; the
    factors need no inputs).
    ``method``: how the factors are made, a registered name (``methods.known_methods()``) or a
    ``methods.Method``; the default is ``default_method``'s when ``calibration_x`` (training
    inputs) is given, else "svd". With a method that needs statistics, the plan's errors are
    output errors on ``calibration_x``, so the rank rules allocate by what each layer computes.
    A ``plan`` given is applied with ``method`` (the caller's plan is not changed).

    ``judge``: held-out training images (a ``Dataset``); with them a params or MACs budget is
    allocated as ``allocation`` says ("both": by error and by sensitivity, the one closer to the
    original on them kept; see ``best_allocation``; ``on_step`` follows the sensitivity
    analysis). Without them, by error. ``calibration_seconds`` counts every calibration pass.
    """
    if (rule is None) == (plan is None):
        raise OptionError("give either a rank rule or a plan to convert, not both or neither.")
    sizes = None
    if x is None:  # refused before any work when input_shape does not fit
        sizes = input_sizes(model, input_shape)
    elif input_shape is not None:
        raise OptionError(f"input_shape={','.join(map(str, check_input_shape(input_shape)))} sizes random "
                          "inputs, and x was given to compare outputs on; drop one of them.")
    rule = timed(rule, model, layer_filter, runtime)
    if method is None and calibration_x is not None:
        count = len(calibration_x[0] if isinstance(calibration_x, (list, tuple)) else calibration_x)
        method = default_method(model, count, layer_filter)
    method = resolve_method(method, calibration_x is not None)
    stats = collect(model, calibration_x, needs=method.needs) if method.needs_data else None
    layer_filter = layer_filter or LayerFilter()
    floor = layer_filter.no_data_floor if judge is None else 0.0  # no labelled data to judge by: none wrecked
    seconds = None

    def build(plan, sources=None):
        nonlocal seconds
        if stats is None:
            return apply_plan(model, plan, method=method, sources=sources), plan
        new_model, used = calibrate_and_apply(model, plan, calibration_x, method=method, sources=sources,
                                              statistics=None if method.sequential else stats)
        seconds = (seconds or stats.seconds) + (used.seconds if method.sequential else 0.0)
        return new_model, plan

    if plan is not None:
        new_model, plan = build(replace(plan, method=method.name))
    elif judge is not None and applies(rule, check_allocation(allocation)):
        new_model, plan = best_allocation(model, rule, layer_filter, method, stats, judge, build, allocation,
                                          on_step)
    else:
        new_model, plan = build(*decide(model, rule, layer_filter, method, stats, floor))
    if not plan.converted:
        refuse_converted(model)
    if isinstance(rule, TargetLatency):
        new_model, plan = meet_measured_latency(
            model, new_model, plan, rule.fraction,
            lambda aim, _: build(*decide(model, replace(rule, fraction=aim), layer_filter, method, stats, floor)),
            Runtime(rule.profile.runtime, rule.profile.threads))
    if x is None and sizes.unknown is None:
        x = model_inputs_like(model, random_batch(model), sizes=sizes, named=True)
    return Conversion(
        model=new_model,
        plan=plan,
        params_before=int(model.count_params()),
        params_after=int(model.count_params()) - plan.params_saved(),
        weight_bytes_before=weight_bytes(model),
        weight_bytes_after=weight_bytes(new_model),
        difference=None if x is None else output_difference(model, new_model, x, source),
        method=method.name,
        calibration_seconds=seconds,
        calibration_samples=None if stats is None else stats.samples,
        input_sizes=None if sizes is None else sizes.note,
        not_compared=None if x is not None else sizes.unknown,
    )

