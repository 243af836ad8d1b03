"""The flows several commands share, once: files in, report dicts out.

Each flow checks every output path and option before any work, loads the inputs, runs the
stages (load → analyse → plan → factorise → fine-tune → report → save), writes its outputs
atomically, never over an input, and returns the report dict (see ``report``). Front ends pass
``stage(text)`` (a context manager, e.g. a spinner) and training ``callbacks`` for progress.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..factorization import candidates as analyze
from ..training import distribute
from ..deploy import measure
from ..io import models as model_io
from ..report import reports as report
from ..training import finetune as ft
from ..validation import whole
from .compress import compress
from ..data.sets import DataSpec, load_for_model
from ..training.devices import device_name
from ..data.streams import Streamed, open_for_model
from ..training.evaluation import agreement, evaluate
from ..factorization.apply import convert
from ..planning import read_plan, write_plan


def _quiet(text):
    return contextlib.nullcontext()


def _data_inputs(data) -> list:
    """The data set's own file or folder, protected like every input from being an output."""
    return [Path(data.source)] if data is not None and data.source and Path(data.source).exists() else []


def _load(source, data, trust, stage, stream=False):
    """(the model in ``source``, ``data`` prepared for it or None); ``stream``: folders, TFRecord
    files and module:function sources are read in batches (``streams.Streamed``), not whole."""
    with stage(f"loading {source}"):
        net = model_io.load_model(source, trust=trust)
    if data is None:
        return net, None
    with stage(f"loading data set {data.name}"):
        return net, (open_for_model(net, data) if stream else load_for_model(net, data))


def decomposition_progress(net, on_step, layer_filter=None):
    """A context in which every kernel decomposition of ``net`` advances ``on_step(done, total,
    text)``, counted in kernel weights (a decomposition costs about its kernel's size, so a big
    model's largest kernels dominate the bar as they dominate the time). Nothing when ``on_step``
    is None."""
    if on_step is None:
        return contextlib.nullcontext()
    from ..planning import LayerFilter

    layer_filter = layer_filter or LayerFilter()
    chosen, _ = layer_filter.chosen([c for c in analyze.candidates(net) if c.unsupported is None])
    total = sum(c.size * len(layer_filter.modes(c)) for c in chosen) or 1
    done = [0]

    def advance(c, mode):
        done[0] = min(total, done[0] + c.size)
        on_step(done[0], total, f"decomposed {c.name} ({mode})")

    on_step(0, total, "decomposing kernels")
    return analyze.watching(advance)


def stem(path) -> str:
    """``dir/model.light.keras`` -> ``model``."""
    return Path(path).name.split(".")[0]


def convert_file(source, output=None, *, rule=None, layer_filter=None, plan_file=None,
                 data: DataSpec | None = None, force=False, trust=False, stage=_quiet, method=None,
                 calibration=None, sequential=False, bias_correction=False, on_step=None) -> dict:
    """Convert the model in ``source`` (a rank ``rule`` and ``layer_filter``, or a saved
    ``plan_file``), save it to ``output`` (default ``<stem>.light.keras``), and report; with
    ``data``, the factors are data-aware (``method``; calibrated on ``calibration`` training
    images), and outputs are compared and accuracy measured on its test images. ``on_step(done,
    total, text)`` follows the decompositions (kernel weights done of all)."""
    from ..factorization.statistics import calibration_images, check_count, check_method
    from ..defaults import DEFAULT_CALIBRATION_SAMPLES

    method = check_method(method, data is not None)
    calibration = check_count(DEFAULT_CALIBRATION_SAMPLES if calibration is None else calibration)
    if (rule is None) == (plan_file is None):
        from ..errors import OptionError

        raise OptionError("give either a rank rule or plan_file, not both or neither.")
    source = Path(source)
    inputs = [source] + ([plan_file] if plan_file else []) + _data_inputs(data)
    target = model_io.check_output(output or model_io.default_output(source), force=force, inputs=inputs)
    original, prepared = _load(source, data, trust, stage, stream=True)
    with stage("factorising"), decomposition_progress(original, on_step, None if plan_file else layer_filter):
        plan = read_plan(original, plan_file) if plan_file else None
        x = None if prepared is None else _test_images(prepared)
        where = "random inputs" if prepared is None else f"test images of {prepared.name}"
        calib_x = calibration_images(prepared, calibration, data.seed) if method == "data-aware" else None
        result = convert(original, rule, layer_filter, x, where, plan=plan, calibration_x=calib_x, method=method,
                         sequential=sequential, bias_correction=bias_correction)
    with stage(f"saving {target}"):
        model_io.save_model(result.model, target, force=force, inputs=inputs)
    out = report.conversion_dict(result, source, target, source.stat().st_size, target.stat().st_size)
    if prepared is not None:
        with stage("evaluating"):
            out["accuracy"] = report.before_after(evaluate(original, prepared), evaluate(result.model, prepared))
    return out


CHECK_SAMPLES = 2000  # test images of a stream the conversion's output check runs on


def _test_images(prepared):
    """The test images of in-memory data; of a stream, a bounded sample of them."""
    if isinstance(prepared, Streamed):
        return prepared.sample("test", CHECK_SAMPLES)[0]
    return prepared.x_test


def finetune_file(source, output=None, *, data: DataSpec | None = None, settings=None, teacher=None,
                  alpha=None, temperature=None, force=False, trust=False, callbacks=(), stage=_quiet) -> dict:
    """Fine-tune the model in ``source`` (distilled from the model file ``teacher`` if given),
    save it to ``output`` (default ``<stem>.tuned.keras``) with its history beside it
    (``<output stem>.history.json``), and report."""
    source = Path(source)
    settings = settings or ft.FitSettings()
    ft.check_settings(settings)
    distribute.placement(settings.devices)  # devices the backend cannot see refused before any work
    tutor_settings = {k: v for k, v in (("alpha", alpha), ("temperature", temperature)) if v is not None}
    if teacher is None and tutor_settings:
        from ..errors import OptionError

        raise OptionError(f"{' and '.join(tutor_settings)} only apply with a teacher model; give teacher too.")
    ft.Teacher(None, **tutor_settings)  # checks alpha and temperature before any work
    inputs = [source] + ([teacher] if teacher else []) + _data_inputs(data)
    target = model_io.check_output(output or source.with_name(f"{stem(source)}.tuned.keras"),
                                   force=force, inputs=inputs)
    history_path = model_io.check_output(target.with_name(f"{target.stem}.history.json"), force=force,
                                         inputs=inputs, suffixes=(".json",))
    net, prepared = _load(source, data or DataSpec(seed=settings.seed), trust, stage, stream=True)
    tutor = None
    if teacher is not None:
        with stage(f"loading teacher {teacher}"):
            tutor = ft.Teacher(model_io.load_model(teacher, trust=trust), **tutor_settings)
    fit, before, after = tune(net, prepared, settings, tutor, callbacks)
    model_io.save_model(net, target, force=force, inputs=inputs)
    out = report.finetune_dict(source, target, prepared, fit, before, after)
    model_io.write_json(out, history_path, force=force, inputs=inputs)
    return out


def tune(net, prepared, settings, teacher=None, callbacks=()):
    """Evaluate, fine-tune in place, evaluate: (FitResult, before, after)."""
    before = evaluate(net, prepared)
    fit = ft.finetune(net, prepared, settings, callbacks=callbacks, teacher=teacher)
    return fit, before, evaluate(net, prepared)


def compare_models(nets, paths, prepared=None, batches=(1, 32), repeats=30, warmup=5, on_model=None,
                   runtime=None, threads=2) -> dict:
    """Several models side by side: measured size, cost and latency (Keras models in ``runtime``,
    exported artefacts in their own); with data, accuracy and agreement with the first. ``nets``
    holds Keras models or loaded artefacts (``runtimes.load_artifact``). Returns the `compare`
    report dict."""
    from ..deploy.runtimes import Artifact, artifact_agreement

    measures = []
    for net, path in zip(nets, paths):
        if on_model:
            on_model(path)
        if isinstance(net, Artifact):
            measures.append(measure.measure_artifact(net, batches, repeats, warmup))
        else:
            measures.append(measure.measure(net, path, batches, repeats, warmup, runtime, threads))
    evaluations = agreements = None
    if prepared is not None:
        evaluations = [evaluate(net, prepared) for net in nets]
        if isinstance(prepared, Streamed):
            from ..data.streams import agreement

            agreements = [agreement(nets[0], net, prepared) for net in nets]
        else:
            agreements = [artifact_agreement(nets[0], net, prepared.x_test) for net in nets]
    keras_nets = [n for n in nets if not isinstance(n, Artifact)]
    layers = analyze.matching_layers(keras_nets) if len(keras_nets) == len(nets) else []
    return report.compare_dict(measures, device_name(), evaluations, agreements, layers,
                               prepared.name if prepared else None)


def load_any(path, trust=False, threads=2):
    """A Keras model file, or an exported artefact (.tflite, .onnx, SavedModel folder) loaded in
    its runtime."""
    from ..deploy import runtimes

    if runtimes.is_artifact_path(path):
        return runtimes.load_artifact(path, threads=threads)
    return model_io.load_model(path, trust=trust)


def compare_files(paths, *, data: DataSpec | None = None, batches=(1, 32), repeats=30, warmup=5,
                  trust=False, runtime=None, threads=2, stage=_quiet):
    """``compare_models`` on files (Keras models and exported artefacts): (report dict, loaded)."""
    from ..deploy import latency
    from ..errors import OptionError

    if len(paths) < 2:
        raise OptionError("compare needs at least two models: the reference first, then the others.")
    runtime = latency.check_runtime(runtime)
    with stage("loading models"):
        nets = [load_any(path, trust, threads) for path in paths]
    prepared = None
    if data is not None:
        with stage(f"loading data set {data.name}"):
            prepared = load_data_for(nets[0], data, stream=True)
    with stage("timing and evaluating"):
        out = compare_models(nets, paths, prepared, batches, repeats, warmup, runtime=runtime, threads=threads)
    return out, nets


def load_data_for(net, data: DataSpec, stream=False):
    """``data`` shaped for a Keras model or an artefact (through a stand-in Keras model with the
    artefact's input shape and output size); ``stream``: see ``_load``."""
    import keras
    import numpy as np

    from ..deploy.runtimes import Artifact

    load = open_for_model if stream else load_for_model
    if not isinstance(net, Artifact):
        return load(net, data)
    shape = net._input_shapes()[0]
    units = np.asarray(net.predict(np.zeros((1, *shape), np.float32))).shape[-1]
    stand_in = keras.Sequential([keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(units)])
    return load(stand_in, data)


def compress_file(source, output=None, *, data: DataSpec | None = None, layer_filter=None,
                  settings=None, force=False, trust=False, repeats=30, callbacks=(), stage=_quiet,
                  export=None, **goal_and_options) -> dict:
    """``compress`` on a model file: saves the model (default ``<stem>.compressed.keras``) and its
    plan (``<output stem>.plan.json``), and reports it against the original."""
    from .compress import check_goal

    source = Path(source)
    from ..deploy import latency

    check_goal(*(goal_and_options.get(k) for k in ("target_params", "target_macs", "max_drop", "target_latency")))
    runtime = goal_and_options["runtime"] = latency.check_runtime(goal_and_options.get("runtime"))
    threads = goal_and_options.setdefault("threads", latency.DEFAULT_THREADS)
    export_target = _check_export(export, source, output, force)
    settings = settings or ft.FitSettings()
    ft.check_settings(settings)
    distribute.placement(settings.devices)  # devices the backend cannot see refused before any work
    if goal_and_options.get("cache_dir") is not None:
        from ..io import cache

        cache.check_dir(goal_and_options["cache_dir"])
    target = model_io.check_output(output or source.with_name(f"{stem(source)}.compressed.keras"),
                                   force=force, inputs=[source])
    plan_path = model_io.check_output(target.with_name(f"{target.stem}.plan.json"), force=force,
                                      inputs=[source], suffixes=(".json",))
    data = data or DataSpec(seed=settings.seed)
    original, prepared = _load(source, data, trust, stage, stream=True)
    result = compress(original, prepared, layer_filter=layer_filter, settings=settings, callbacks=callbacks,
                      **goal_and_options)
    model_io.save_model(result.model, target, force=force, inputs=[source])
    write_plan(result.plan, plan_path, force=force, inputs=[source])
    with stage("measuring both models"):
        compared = compare_models([original, model_io.load_model(target)], [source, target], prepared,
                                  repeats=repeats, runtime=runtime, threads=threads)
    out = report.compress_dict(result, compared, plan_path, target)
    if export_target is not None:
        fmt, quantize, path = export_target
        out["export"] = export_file(target, fmt, path, quantize=quantize, data=data, threads=threads,
                                    force=force, stage=stage)
    return out


EXPORT_CHOICES = {"litert": ("litert", "none"), "litert-float16": ("litert", "float16"),
                  "litert-dynamic": ("litert", "dynamic"), "litert-int8": ("litert", "int8"),
                  "keras": ("keras", "none"), "saved_model": ("saved_model", "none"), "onnx": ("onnx", "none")}


def _check_export(export, source, output, force):
    """(format, quantize, path) for ``compress``'s export option, checked before any work."""
    if export is None:
        return None
    from ..deploy import export as ex
    from ..errors import OptionError

    if export not in EXPORT_CHOICES:
        raise OptionError("is unknown", option="export", value=export, allowed=f"one of {', '.join(EXPORT_CHOICES)}")
    fmt, quantize = EXPORT_CHOICES[export]
    fmt = ex.check_settings(fmt, quantize)
    keras_target = Path(output) if output else source.with_name(f"{stem(source)}.compressed.keras")
    path = ex.check_output(ex.default_output(keras_target, fmt, quantize), fmt, force=force, inputs=[source])
    return fmt, quantize, path





def inspect_model(net, path, conv_mode="channel", on_step=None) -> dict:
    """The `inspect` report of a loaded model: params and MACs per layer, spectra of the
    factorisable ones (Conv2D matrices in ``conv_mode``). ``on_step(done, total, text)`` follows
    the spectra (kernel weights done of all)."""
    stats = analyze.layer_stats(net)
    spectra = {}
    found = [c for c in analyze.candidates(net) if c.unsupported is None]
    total, done = sum(c.size for c in found) or 1, 0
    for c in found:
        if on_step:
            on_step(done, total, f"spectrum of {c.name}")
        mode = conv_mode if conv_mode in c.modes else c.modes[0]
        spectra[c.name] = analyze.spectrum_summary(c, mode)
        c.release()
        done += c.size
    if on_step:
        on_step(total, total, "spectra done")
    return report.inspect_dict(path, stats, spectra, conv_mode)


def layer_errors(net, prepared, conv_mode="channel", plan=None, calibration=None, seed=0) -> dict:
    """Per factorisable layer, at the chosen rank (the ``plan``'s, else the rank keeping 95% of
    the kernel's energy in ``conv_mode``): the weight-space and output-space relative errors of
    plain SVD and of data-aware factors, on ``calibration`` training images of ``prepared``."""
    from .. import linalg as svd
    from ..factorization.statistics import calibration_images, collect
    from ..defaults import DEFAULT_CALIBRATION_SAMPLES

    x = calibration_images(prepared, DEFAULT_CALIBRATION_SAMPLES if calibration is None else calibration, seed)
    cal = collect(net, x)
    planned = {p.name: p for p in plan.converted} if plan is not None else None
    rows = []
    for c in analyze.candidates(net, cal):
        if c.unsupported is not None or c.cov is None:
            continue
        if planned is not None:
            if c.name not in planned:
                continue
            mode, rank = planned[c.name].mode, planned[c.name].rank
        else:
            mode = conv_mode if conv_mode in c.entry.matrix_modes else c.modes[0]
            rank = svd.rank_for_energy(svd.singular_values(c.matrix(mode)), 0.95)
        plain = c.approximate(mode, rank, cov=None)
        rows.append({"name": c.name, "mode": mode, "rank": rank,
                     "svd_weight_error": svd.output_error(c.kernel.reshape(-1, 1), plain.reshape(-1, 1)),
                     "svd_output_error": c.output_error(mode, rank, cov=None),
                     "data_aware_weight_error": c.weight_error(mode, rank),
                     "data_aware_output_error": c.output_error(mode, rank)})
    return {"samples": cal.samples, "seconds": round(cal.seconds, 3), "dataset": prepared.name,
            "rank_from": "the plan" if plan is not None else "95% of the kernel's energy", "layers": rows}


def sensitivity_of(net, data: DataSpec, holdout=1000, conv_mode="channel", use_cache=True) -> dict:
    """The sensitivity table of ``net`` on ``holdout`` training images of ``data``, as a dict."""
    from .compress import split_holdout
    from ..planning import LayerFilter, analyse

    prepared = open_for_model(net, data)
    judge, _ = split_holdout(prepared, holdout, data.seed)
    return analyse(net, judge, LayerFilter(conv_mode=conv_mode), use_cache=use_cache).to_dict()


def chosen_spectra(nets, layer_rows) -> dict:
    """{layer: singular values of the first model's kernel, in the mode the others chose}."""
    spectra = {}
    for c in analyze.candidates(nets[0]):
        if c.unsupported is None:
            row = next(r for r in layer_rows if r["name"] == c.name)
            modes = [e["mode"] for e in row["models"][1:] if e and e["mode"]]
            spectra[c.name] = c.spectrum(modes[0] if modes else c.modes[0])
    return spectra



def export_file(source, fmt, output=None, *, quantize="none", int8_io=False, data: DataSpec | None = None,
                calibration=None, threads=2, force=False, trust=False, stage=_quiet) -> dict:
    """Lower the model in ``source``, write it as ``fmt`` (keras, saved_model, litert, onnx) to
    ``output`` (default beside the input), and verify the artefact in its own runtime: on the test
    images of ``data`` (and its accuracy), else on random inputs. int8 calibrates on training
    images of ``data`` (never test images)."""
    from ..deploy import export as ex
    from ..errors import OptionError

    source = Path(source)
    fmt = ex.check_settings(fmt, quantize, int8_io)
    if quantize == "int8" and data is None:
        raise OptionError("quantize='int8' calibrates on training images; give data=NAME (a data set).")
    whole("threads", threads, 1)
    calibration = whole("calibration", ex.DEFAULT_CALIBRATION if calibration is None else calibration, 1)
    target = ex.check_output(output or ex.default_output(source, fmt, quantize), fmt, force=force, inputs=[source])
    net, prepared = _load(source, data, trust, stage)
    x = y = where = None
    if prepared is not None:
        x, y, where = prepared.x_test, prepared.y_test, f"test images of {prepared.name}"
    with stage(f"exporting to {fmt} and verifying"):
        result = ex.export_model(net, target, fmt, quantize, calibration=prepared if quantize == "int8" else None,
                                 int8_io=int8_io, x=x, y=y, source=where, force=force, inputs=[source],
                                 calibration_count=calibration, threads=threads)
    return report.export_dict(source, result, prepared)



def baseline_file(source, output=None, *, method, target_params=None, data: DataSpec | None = None,
                  settings=None, distill=True, alpha=None, temperature=None, min_params=None, layer_filter=None,
                  holdout_size=None, sizes=True, threads=2, force=False, trust=False, on_event=None,
                  stage=_quiet) -> dict:
    """The tfmot baselines on a model file: ``method`` "prune" or "cluster" at ``target_params``
    (saved as ``<stem>.pruned.keras`` / ``<stem>.clustered.keras``, a normal Keras 3 model), or
    "qat": quantisation-aware int8 (saved as ``<stem>.qat.int8.tflite``, reported against
    post-training int8). ``sizes``: also export LiteRT float and int8 files and time them."""
    from .. import defaults as d
    from ..deploy import export as ex
    from ..baseline import run
    from ..deploy import sizes as sz
    from ..errors import OptionError

    source = Path(source)
    settings = settings or ft.FitSettings()
    ft.check_settings(settings)
    alpha = d.DEFAULT_ALPHA if alpha is None else alpha
    temperature = d.DEFAULT_TEMPERATURE if temperature is None else temperature
    ft.Teacher(None, alpha, temperature)
    holdout_size = d.DEFAULT_HOLDOUT if holdout_size is None else holdout_size
    min_params = d.DEFAULT_MIN_PARAMS if min_params is None else min_params
    if method == "qat":
        if target_params is not None:
            raise OptionError("target_params does not apply to method=qat (it keeps every weight, in int8); leave it out.")
        target = ex.check_output(output or source.with_name(f"{stem(source)}.qat.int8.tflite"), "litert",
                                 force=force, inputs=[source])
    elif method in run.METHODS:
        if target_params is None:
            raise OptionError(f"method={method} needs a budget; give target_params=F (0.2 = 5x fewer params).")
        suffix = {"prune": "pruned", "cluster": "clustered"}[method]
        target = model_io.check_output(output or source.with_name(f"{stem(source)}.{suffix}.keras"),
                                       force=force, inputs=[source])
    else:
        raise OptionError("is unknown", option="method", value=method, allowed="prune, cluster or qat")
    data = data or DataSpec(seed=settings.seed)
    with stage(f"loading {source}"):
        original = model_io.load_model(source, trust=trust)
    if method != "qat":  # budget and layer whitelist refused before the data is read
        from ..baseline.spec import model_spec

        model_spec(original)
        run.plan_budget(original, method, target_params, min_params=min_params, layer_filter=layer_filter)
    with stage(f"loading data set {data.name}"):
        prepared = load_for_model(original, data)
    common = dict(settings=settings, distill=distill, alpha=alpha, temperature=temperature,
                  holdout_size=holdout_size, on_event=on_event)
    if method == "qat":
        result = run.qat(original, prepared, **common)
        model_io.atomic_write(target, lambda tmp: tmp.write_bytes(result.tflite))
        with stage("post-training int8 against QAT int8"):
            qat_compare = {"post-training int8 (input model)": sz.deployment_sizes(original, prepared, threads=threads)["litert_int8"],
                           "QAT int8": sz.tflite_sizes(target, result.model, prepared, threads=threads)}
        before, after = evaluate(original, prepared), evaluate(result.model, prepared)
        return report.baseline_dict(source, target, result, prepared, before, after, None, qat_compare)
    result = run.baseline(original, prepared, method, target_params, min_params=min_params,
                          layer_filter=layer_filter, **common)
    model_io.save_model(result.model, target, force=force, inputs=[source])
    with stage("evaluating"):
        before, after = evaluate(original, prepared), evaluate(model_io.load_model(target), prepared)
    measured = None
    if sizes:
        with stage("exporting LiteRT float and int8 files and timing them"):
            measured = {"original": sz.deployment_sizes(original, prepared, threads=threads),
                        result.method: sz.deployment_sizes(result.model, prepared, threads=threads)}
    return report.baseline_dict(source, target, result, prepared, before, after, measured)

__all__ = ["convert_file", "finetune_file", "compare_models", "compare_files", "compress_file", "tune",
           "inspect_model", "sensitivity_of", "chosen_spectra", "export_file",
           "baseline_file"]
