"""The Python verbs, each a thin door into the library (``flows`` holds the same work on files,
``cli`` the command line); read as ``lightcompress.<verb>`` (``lightcompress.__getattr__``), which
imports Keras quietly first."""

from __future__ import annotations

import os

from . import flows, training
from .data.open import open_for_model
from .data.sets import required
from .defaults import DEFAULT_ALLOCATION, DEFAULT_CONV_MODE, DEFAULT_MIN_PARAMS, DEFAULT_MIN_SAVING
from .deploy import export as ex
from .deploy.timing import Runtime
from .errors import OptionError
from .flows.common import decomposition_progress, load_any, load_data_for
from .flows.compare import compare_models
from .flows.compress import CompressSettings
from .flows.convert import timed
from .flows.estimate import compress_estimate
from .flows.export import ExportSettings, export_loaded
from .flows.inspect import inspect_model
from .flows.progress import Lines
from .io import models
from .io.models import check_model
from .planning import LayerFilter, make_plan, rank_rule
from .training import evaluation
from .training.finetune import FitSettings, Teacher
from .validation import verbose as check
from .validation import whole


def _lines(verb, verbose, phases=()):
    """The progress lines of ``verb`` at ``verbose`` (0: none; see ``flows.progress``)."""
    level = check(verbose)
    return Lines(verb, level, phases=phases)


def _model(model, trust=False):
    """``model`` itself, or the model in the file it names."""
    if isinstance(model, (str, os.PathLike)):
        return load_model(model, trust=trust)

    return check_model(model)


def load_model(path, *, trust=False, custom_objects=None):
    """Load a model from ``.keras`` or ``.h5`` (Keras 2 or 3), uncompiled, refusing Lambda layers
    unless ``trust=True``. A subclassed model needs its classes: ``custom_objects`` is the Python
    file or module that defines and registers them, imported first (it runs that code).

    >>> import lightcompress
    >>> lightcompress.load_model("no/such/model.h5")
    Traceback (most recent call last):
    lightcompress.errors.ModelLoadError: no/such/model.h5: no such file; check the path.
    """

    return models.load_model(path, trust=trust, custom_objects=custom_objects)


def inspect(model, *, conv_mode="channel") -> dict:
    """Params and MACs per layer and the spectrum of every factorisable kernel (the ``inspect``
    report as a dict); Conv2D spectra in ``conv_mode``.

    >>> import keras, lightcompress
    >>> model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(16)])
    >>> report = lightcompress.inspect(model)
    >>> report["totals"]["params"], report["totals"]["macs"]
    (528, 512)
    """

    net = _model(model)
    return inspect_model(net, str(model) if isinstance(model, (str, os.PathLike)) else net.name, conv_mode)


def _rule_and_filter(rules, include, exclude, min_params, conv_mode, min_saving):
    layer_filter = LayerFilter(include, exclude, DEFAULT_MIN_PARAMS if min_params is None else min_params,
                               conv_mode, DEFAULT_MIN_SAVING if min_saving is None else min_saving)
    return rank_rule(**rules), layer_filter


def plan(model, *, rank=None, energy=None, ratio=None, target_params=None, target_macs=None, target_latency=None,
         runtime=None, include=(), exclude=(), min_params=None, min_saving=None, conv_mode=DEFAULT_CONV_MODE):
    """Decide a rank and mode (or a reason to keep it) for every factorisable layer: a ``Plan``.

    Exactly one rule: ``rank=``, ``energy=``, ``ratio=``, ``target_params=``, ``target_macs=``
    or ``target_latency=`` (a fraction of the batch-1 latency in ``runtime``, "litert" or
    "keras": each layer is timed per rank first); layers chosen by
    ``include=``, ``exclude=`` (globs), ``min_params=``, ``min_saving=`` (fraction of a layer a
    rank must save) and ``conv_mode=`` ("channel", "spatial", "tucker" or "auto", the default
    ``defaults.DEFAULT_CONV_MODE``: per Conv2D the mode with the lowest error). ``rank=n`` gives rank n in every converted layer, in any mode,
    unless clipped to the largest rank that saves parameters (the plan's notes say where).
    A budget's plan says what it keeps in ``plan.budget``.

    >>> import keras, lightcompress
    >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256), keras.layers.Dense(3)])
    >>> p = lightcompress.plan(model, target_params=0.5)
    >>> p.policy, [layer.skipped for layer in p.layers]
    ('target params 0.5', [None, '771 params, below min_params=1000'])
    """

    rules = {"rank": rank, "energy": energy, "ratio": ratio, "target_params": target_params,
             "target_macs": target_macs, "target_latency": target_latency}
    rule, layer_filter = _rule_and_filter(rules, include, exclude, min_params, conv_mode, min_saving)
    net = _model(model)
    return make_plan(net, timed(rule, net, layer_filter, runtime), layer_filter)


def convert(model, *, plan=None, rank=None, energy=None, ratio=None, target_params=None, target_macs=None,
            target_latency=None, runtime=None, include=(), exclude=(), min_params=None, min_saving=None,
            conv_mode=DEFAULT_CONV_MODE, x=None, calibration_x=None, method=None, input_shape=None, verbose=1):
    """A new model with LightLayers in place of the planned layers (the input is not changed),
    with its sizes and output difference: a ``Conversion``. Give a ``plan`` or the keywords of
    ``lightcompress.plan``; ``x`` are inputs to compare outputs on (random inputs otherwise, sized
    where the model leaves a size open by what it declares, else by ``input_shape``, one example's
    size such as ``(128,)``; ``result.input_sizes`` says which).
    ``calibration_x`` (training inputs) makes the factors data-aware, fitted layer by layer
    where that is affordable (``defaults.convert_method``; ``method="svd"`` forces plain SVD),
    and budgets buy ranks by output error (the convert command, given a data set, also measures
    each layer's sensitivity on held-out images and keeps the plan closer to the original).
    With ``target_latency=`` the converted model is timed whole in ``runtime`` and
    planned again while it misses (``result.plan.budget`` has the planned and measured fraction).
    ``verbose=1`` (the default, as Keras's ``fit``) prints progress lines on stderr (layer timing,
    factorising, with the seconds since the start); ``verbose=0`` prints nothing.

    >>> import keras, numpy as np, lightcompress
    >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256), keras.layers.Dense(10)])
    >>> result = lightcompress.convert(model, rank=16)
    >>> result.params_before, result.params_after  # the 256x10 head: rank 7 keeps <= 80% (min_saving)
    (19210, 7248)
    >>> type(result.model.layers[0]).__name__
    'LightDense'
    """
    lines = _lines("convert", verbose, phases=["timing each layer's ranks: {done}/{total} ({name})",
                                               "factorising: {percent}% of the kernel weights ({name})"])

    net = _model(model)
    on_step = lines.on_step if lines.verbose else None
    if plan is not None:
        lines.phases.pop(0)  # no timing: the steps are the decompositions
        lines.say(f"converting {net.name} with the plan given")
        with decomposition_progress(net, on_step):
            result = flows.convert(net, plan=plan, x=x, calibration_x=calibration_x, method=method, input_shape=input_shape)
    else:
        rules = {"rank": rank, "energy": energy, "ratio": ratio, "target_params": target_params,
                 "target_macs": target_macs, "target_latency": target_latency}
        rule, layer_filter = _rule_and_filter(rules, include, exclude, min_params, conv_mode, min_saving)
        lines.say(f"converting {net.name}, {int(net.count_params()):,} params"
                  + ("; calibrating on the inputs given" if calibration_x is not None else ""))
        rule = timed(rule, net, layer_filter, runtime, on_step)
        if not (rule is not None and getattr(rule, "profile", None) is not None):
            lines.phases.pop(0)  # no timing: the steps that follow are the decompositions
        with decomposition_progress(net, on_step, layer_filter):
            result = flows.convert(net, rule, layer_filter, x=x, calibration_x=calibration_x, method=method,
                         runtime=runtime, input_shape=input_shape)
    lines.say(f"done: {result.params_before:,} -> {result.params_after:,} params, "
              f"{len(result.plan.converted)} layer(s) converted")
    return result


def _data_for(net, data):
    """``data`` (a name, a path, a ``DataSpec`` or a ``Dataset`` already opened) shaped for ``net``;
    None is one line asking for it (no verb has a default data set)."""
    return open_for_model(net, required(data))


def finetune(model, data=None, *, teacher=None, epochs=None, batch_size=None, learning_rate=None,
             validation_split=None, patience=None, seed=0, devices="all", verbose=1):
    """Fine-tune ``model`` in place on ``data`` (a data set name or path, a ``DataSpec`` or data
    already opened), keeping the best epoch; distilled from ``teacher`` (a model) if given. Unset
    settings take ``FitSettings``' defaults. ``verbose=1`` (the default, as Keras's ``fit``) prints
    a line per epoch on stderr (loss, accuracy, their validation twins, seconds since the start);
    ``verbose=0`` prints nothing. Returns a ``FitResult``.

    >>> import keras, lightcompress
    >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
    ...                          keras.layers.Dense(10, activation="softmax")])
    >>> fit = lightcompress.finetune(model, "digits", epochs=2)
    >>> fit.epochs_run
    2
    """
    lines = _lines("finetune", verbose)

    given = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
             "validation_split": validation_split, "patience": patience}
    settings = FitSettings(**{k: v for k, v in given.items() if v is not None}, seed=seed,
                                    devices=devices)
    net = _model(model)
    tutor = Teacher(_model(teacher)) if teacher is not None else None
    opened = _data_for(net, data)
    fit = training.finetune.finetune(net, opened, settings, callbacks=lines.callbacks(), teacher=tutor)
    best = "" if fit.best_epoch is None else f", best epoch {fit.best_epoch}"
    lines.say(f"done: {fit.epochs_run} epoch(s){best}" + (" (interrupted)" if fit.interrupted else ""))
    return fit


def compress(model, data=None, *, target_params=None, target_macs=None, target_latency=None,
             max_drop=None, include=(), exclude=(), min_params=None, conv_mode=DEFAULT_CONV_MODE, settings=None,
             distill=True, method=None, runtime=None, threads=2, allow_slower=False, use_cache=True,
             cache_dir=None, allocation=DEFAULT_ALLOCATION, verbose=1):
    """Meet one goal with the least accuracy lost: ``target_params=`` or ``target_macs=`` (a
    fraction of the model's), ``target_latency=`` (a fraction of its measured latency in
    ``runtime``) or ``max_drop=`` (accuracy points). Measures each layer's sensitivity on held-out
    training images (``allocation="error"``: takes each layer's truncation error instead, no model
    evaluated), allocates ranks, converts and fine-tunes (``settings``, a ``FitSettings``)
    with distillation from ``model`` (which is not changed). ``verbose=1`` (the default, as Keras's
    ``fit``) prints progress lines on stderr (each stage, the sensitivity analysis's and latency
    timing's steps, the plan, each epoch, with the seconds since the start); ``verbose=0`` prints
    nothing. Returns a ``CompressResult``.

    >>> import keras, lightcompress
    >>> keras.utils.set_random_seed(0)
    >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(128, activation="relu"),
    ...                          keras.layers.Dense(10, activation="softmax")])
    >>> fit = lightcompress.finetune(model, "digits", epochs=3)
    >>> result = lightcompress.compress(model, "digits", target_params=0.5, use_cache=False, runtime="keras",
    ...                                 settings=lightcompress.FitSettings(epochs=1))
    >>> result.model.count_params() <= 0.5 * model.count_params()
    True
    """
    phases = (["sensitivity analysis: {done}/{total} evaluations (layer {name})"] if allocation == "sensitivity"
              else []) + ["timing each layer's ranks: {done}/{total} ({name})"]
    lines = _lines("compress", verbose, phases=phases)

    net = _model(model)
    layer_filter = LayerFilter(include, exclude, DEFAULT_MIN_PARAMS if min_params is None else min_params, conv_mode)
    chosen = CompressSettings.make(
        target_params=target_params, target_macs=target_macs, target_latency=target_latency, max_drop=max_drop,
        layer_filter=layer_filter, settings=settings, distill=distill, method=method, runtime=runtime,
        threads=threads, allow_slower=allow_slower, use_cache=use_cache, cache_dir=cache_dir, allocation=allocation)
    opened = _data_for(net, data)
    lines.say(f"compressing {net.name}, {int(net.count_params()):,} params, on {opened.name}: "
              + ("sensitivity analysis" if allocation == "sensitivity" else "error allocation")
              + ", then the rank plan, then fine-tuning")
    loud = lines.verbose
    if loud:
        lines.say(compress_estimate(net, opened, chosen).line())
    result = flows.compress(net, opened, chosen, callbacks=lines.callbacks(),
                 on_step=lines.on_step if loud else None, warn=lines.warn if loud else None,
                 on_plan=lines.on_plan if loud else None, on_trial=lines.on_trial if loud else None)
    lines.say(f"done: {int(net.count_params()):,} -> {int(result.model.count_params()):,} params")
    return result


def evaluate(model, data=None, *, trust=False, verbose=1):
    """Accuracy and loss of ``model`` (a model, a model file, or an exported ``.tflite``/``.onnx``/
    SavedModel artefact, run in its own runtime) on the test split of ``data``: an ``Evaluation``.
    ``trust=True`` allows what runs code when loaded: Lambda layers, SavedModel folders.
    ``verbose=1`` (the default) prints a line on stderr when it starts and when it is done;
    ``verbose=0`` prints nothing.

    >>> import keras, lightcompress
    >>> model = keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten(),
    ...                          keras.layers.Dense(10, activation="softmax")])
    >>> 0.0 <= lightcompress.evaluate(model, "digits").accuracy <= 0.5  # untrained: near chance
    True
    """
    data = required(data)  # before the model is loaded
    lines = _lines("evaluate", verbose)

    net = load_any(model, trust=trust) if isinstance(model, (str, os.PathLike)) else model
    opened = load_data_for(net, str(data) if isinstance(data, os.PathLike) else data, stream=True)
    lines.say(f"evaluating {model if isinstance(model, (str, os.PathLike)) else getattr(net, 'name', 'the model')} "
              f"on the test split of {opened.name}")
    result = evaluation.evaluate(net, opened)
    lines.say(f"done: accuracy {result.accuracy:.4f}")
    return result


def export(model, path, *, format="litert", quantize="none", data=None, int8_io=False, force=False,
           calibration=None, threads=2):
    """Write ``model`` (a model or a model file) as ``format`` (a registered export target:
    ``lightcompress.deploy.targets.choices()``) to ``path`` with its LightLayers lowered to standard
    layers, and verify the artefact in its own runtime: on the test images of ``data`` when given
    (with its accuracy beside the model's), else on random inputs. ``quantize``: "none" or one of
    the target's ``quantizations`` (int8 calibrates on ``calibration`` training images of
    ``data``, the draw ``compare`` makes). ``threads``: of the runtime's latency figure. The
    ``export`` command's flow (``flows.export``). Returns an ``ExportResult``.
    """

    settings = ExportSettings.make(format, quantize=quantize, int8_io=int8_io, calibration=calibration,
                                   threads=threads, data=data)
    inputs = [model] if isinstance(model, (str, os.PathLike)) else []
    target = ex.check_output(path, settings.fmt, force=force, inputs=inputs)
    net = _model(model)
    opened = None if data is None else _data_for(net, data)
    return export_loaded(net, opened, settings.fmt, target, quantize=settings.quantize, int8_io=settings.int8_io,
                         calibration=settings.calibration, threads=settings.threads, force=force, inputs=inputs)


def compare(models, *, data=None, batches=(1, 32), repeats=30, runtime=None, threads=2, trust=False) -> dict:
    """Several models side by side, the first as the reference: parameters, MACs, bytes, measured
    latency at each batch size (Keras models in ``runtime``, exported artefacts in their own), and
    with ``data`` accuracy and agreement with the first. ``models``: models, model files or
    artefact paths; ``trust=True`` allows what runs code when loaded (Lambda layers, SavedModel
    folders). Returns the ``compare`` report as a dict."""

    models = list(models)
    if len(models) < 2:
        raise OptionError("compare needs at least two models: the reference first, then the others.")

    whole("repeats", repeats, 1)  # before any model is loaded or timed
    nets = [load_any(m, trust, threads) if isinstance(m, (str, os.PathLike)) else m for m in models]
    names = [str(m) if isinstance(m, (str, os.PathLike)) else m.name for m in models]
    opened = None
    if data is not None:
        opened = load_data_for(nets[0], str(data) if isinstance(data, os.PathLike) else data, stream=True)

    return compare_models(nets, names, opened, batches, repeats, runtime=Runtime.parse(runtime, threads))
