"""The flows several commands share, once: files in, report dicts out.

Each flow checks every output path and option before any work, loads the inputs, runs the
stages (load → analyse → plan → factorise → fine-tune → report → save), writes its outputs
atomically, never over an input, and returns the report dict (see ``report``). Front ends pass
``stage(text)`` (a context manager, e.g. a spinner) and training ``callbacks`` for progress.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from . import analyze, measure, model_io, report
from . import training as ft
from .compression import compress
from .data import DataSpec, load_for_model
from .devices import device_name
from .evaluation import agreement, evaluate
from .factorize import convert
from .planning import read_plan, write_plan


def _quiet(text):
    return contextlib.nullcontext()


def stem(path) -> str:
    """``dir/model.light.keras`` -> ``model``."""
    return Path(path).name.split(".")[0]


def convert_file(source, output=None, *, rule=None, layer_filter=None, plan_file=None,
                 data: DataSpec | None = None, force=False, trust=False, stage=_quiet, method=None,
                 calibration=None, sequential=False, bias_correction=False) -> dict:
    """Convert the model in ``source`` (a rank ``rule`` and ``layer_filter``, or a saved
    ``plan_file``), save it to ``output`` (default ``<stem>.light.keras``), and report; with
    ``data``, the factors are data-aware (``method``; calibrated on ``calibration`` training
    images), and outputs are compared and accuracy measured on its test images."""
    from .calibration import calibration_images, check_count, check_method
    from .defaults import DEFAULT_CALIBRATION_SAMPLES

    method = check_method(method, data is not None)
    calibration = check_count(DEFAULT_CALIBRATION_SAMPLES if calibration is None else calibration)
    if (rule is None) == (plan_file is None):
        from .errors import OptionError

        raise OptionError("give either a rank rule or plan_file, not both or neither.")
    source = Path(source)
    inputs = [source] + ([plan_file] if plan_file else [])
    target = model_io.check_output(output or model_io.default_output(source), force=force, inputs=inputs)
    with stage(f"loading {source}"):
        original = model_io.load_model(source, trust=trust)
    prepared = None
    if data is not None:
        with stage(f"loading data set {data.name}"):
            prepared = load_for_model(original, data)
    with stage("factorising"):
        plan = read_plan(original, plan_file) if plan_file else None
        x = None if prepared is None else prepared.x_test
        where = "random inputs" if prepared is None else f"test images of {prepared.name}"
        calib_x = calibration_images(prepared, calibration, data.seed) if method == "data-aware" else None
        result = convert(original, rule, layer_filter, x, where, plan=plan, calibration_x=calib_x, method=method,
                         sequential=sequential, bias_correction=bias_correction)
    model_io.save_model(result.model, target, force=force, inputs=inputs)
    out = report.conversion_dict(result, source, target, source.stat().st_size, target.stat().st_size)
    if prepared is not None:
        with stage("evaluating"):
            out["accuracy"] = report.before_after(evaluate(original, prepared), evaluate(result.model, prepared))
    return out


def finetune_file(source, output=None, *, data: DataSpec | None = None, settings=None, teacher=None,
                  alpha=None, temperature=None, force=False, trust=False, callbacks=(), stage=_quiet) -> dict:
    """Fine-tune the model in ``source`` (distilled from the model file ``teacher`` if given),
    save it to ``output`` (default ``<stem>.tuned.keras``) with its history beside it
    (``<output stem>.history.json``), and report."""
    source = Path(source)
    settings = settings or ft.FitSettings()
    ft.check_settings(settings)
    tutor_settings = {k: v for k, v in (("alpha", alpha), ("temperature", temperature)) if v is not None}
    if teacher is None and tutor_settings:
        from .errors import OptionError

        raise OptionError(f"{' and '.join(tutor_settings)} only apply with a teacher model; give teacher too.")
    ft.Teacher(None, **tutor_settings)  # checks alpha and temperature before any work
    inputs = [source] + ([teacher] if teacher else [])
    target = model_io.check_output(output or source.with_name(f"{stem(source)}.tuned.keras"),
                                   force=force, inputs=inputs)
    history_path = model_io.check_output(target.with_name(f"{target.stem}.history.json"), force=force,
                                         inputs=inputs, suffixes=(".json",))
    data = data or DataSpec(seed=settings.seed)
    with stage(f"loading {source}"):
        net = model_io.load_model(source, trust=trust)
    with stage(f"loading data set {data.name}"):
        prepared = load_for_model(net, data)
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


def compare_models(nets, paths, prepared=None, batches=(1, 32), repeats=30, warmup=5, on_model=None) -> dict:
    """Several models side by side: measured size, cost and latency; with data, accuracy and
    agreement with the first. Returns the `compare` report dict."""
    measures = []
    for net, path in zip(nets, paths):
        if on_model:
            on_model(path)
        measures.append(measure.measure(net, path, batches=batches, repeats=repeats, warmup=warmup))
    evaluations = agreements = None
    if prepared is not None:
        evaluations = [evaluate(net, prepared) for net in nets]
        agreements = [agreement(nets[0], net, prepared.x_test) for net in nets]
    return report.compare_dict(measures, device_name(), evaluations, agreements,
                               analyze.matching_layers(nets), prepared.name if prepared else None)


def compare_files(paths, *, data: DataSpec | None = None, batches=(1, 32), repeats=30, warmup=5,
                  trust=False, stage=_quiet):
    """``compare_models`` on model files: (report dict, loaded models)."""
    from .errors import OptionError

    if len(paths) < 2:
        raise OptionError("compare needs at least two models: the reference first, then the others.")
    with stage("loading models"):
        nets = [model_io.load_model(path, trust=trust) for path in paths]
    prepared = None
    if data is not None:
        with stage(f"loading data set {data.name}"):
            prepared = load_for_model(nets[0], data)
    with stage("timing and evaluating"):
        out = compare_models(nets, paths, prepared, batches, repeats, warmup)
    return out, nets


def compress_file(source, output=None, *, data: DataSpec | None = None, layer_filter=None,
                  settings=None, force=False, trust=False, repeats=30, callbacks=(), stage=_quiet,
                  **goal_and_options) -> dict:
    """``compress`` on a model file: saves the model (default ``<stem>.compressed.keras``) and its
    plan (``<output stem>.plan.json``), and reports it against the original."""
    from .compression import check_goal

    source = Path(source)
    check_goal(*(goal_and_options.get(k) for k in ("target_params", "target_macs", "max_drop")))
    settings = settings or ft.FitSettings()
    ft.check_settings(settings)
    if goal_and_options.get("cache_dir") is not None:
        from .planning.sensitivity import check_cache_dir

        check_cache_dir(goal_and_options["cache_dir"])
    target = model_io.check_output(output or source.with_name(f"{stem(source)}.compressed.keras"),
                                   force=force, inputs=[source])
    plan_path = model_io.check_output(target.with_name(f"{target.stem}.plan.json"), force=force,
                                      inputs=[source], suffixes=(".json",))
    data = data or DataSpec(seed=settings.seed)
    with stage(f"loading {source}"):
        original = model_io.load_model(source, trust=trust)
    with stage(f"loading data set {data.name}"):
        prepared = load_for_model(original, data)
    result = compress(original, prepared, layer_filter=layer_filter, settings=settings, callbacks=callbacks,
                      **goal_and_options)
    model_io.save_model(result.model, target, force=force, inputs=[source])
    write_plan(result.plan, plan_path, force=force, inputs=[source])
    with stage("measuring both models"):
        compared = compare_models([original, model_io.load_model(target)], [source, target], prepared,
                                  repeats=repeats)
    return report.compress_dict(result, compared, plan_path, target)





def inspect_model(net, path, conv_mode="channel") -> dict:
    """The `inspect` report of a loaded model: params and MACs per layer, spectra of the
    factorisable ones (Conv2D matrices in ``conv_mode``)."""
    stats = analyze.layer_stats(net)
    spectra = {}
    for c in analyze.candidates(net):
        if c.unsupported is None:
            mode = conv_mode if conv_mode in c.modes else c.modes[0]
            spectra[c.name] = analyze.spectrum_summary(c, mode)
    return report.inspect_dict(path, stats, spectra, conv_mode)


def layer_errors(net, prepared, conv_mode="channel", plan=None, calibration=None, seed=0) -> dict:
    """Per factorisable layer, at the chosen rank (the ``plan``'s, else the rank keeping 95% of
    the kernel's energy in ``conv_mode``): the weight-space and output-space relative errors of
    plain SVD and of data-aware factors, on ``calibration`` training images of ``prepared``."""
    from . import svd
    from .calibration import calibration_images, collect
    from .defaults import DEFAULT_CALIBRATION_SAMPLES

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
    from .compression import split_holdout
    from .planning import LayerFilter, analyse

    prepared = load_for_model(net, data)
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
    from . import export as ex
    from .errors import OptionError

    source = Path(source)
    fmt = ex.check_settings(fmt, quantize, int8_io)
    if quantize == "int8" and data is None:
        raise OptionError("quantize='int8' calibrates on training images; give data=NAME (a data set).")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise OptionError("is invalid", option="threads", value=threads, allowed="1 or more")
    calibration = ex.DEFAULT_CALIBRATION if calibration is None else calibration
    if isinstance(calibration, bool) or not isinstance(calibration, int) or calibration < 1:
        raise OptionError("is invalid", option="calibration", value=calibration, allowed="1 or more training images")
    target = ex.check_output(output or ex.default_output(source, fmt, quantize), fmt, force=force, inputs=[source])
    with stage(f"loading {source}"):
        net = model_io.load_model(source, trust=trust)
    prepared = None
    if data is not None:
        with stage(f"loading data set {data.name}"):
            prepared = load_for_model(net, data)
    x = y = where = None
    if prepared is not None:
        x, y, where = prepared.x_test, prepared.y_test, f"test images of {prepared.name}"
    with stage(f"exporting to {fmt} and verifying"):
        result = ex.export_model(net, target, fmt, quantize, calibration=prepared if quantize == "int8" else None,
                                 int8_io=int8_io, x=x, y=y, source=where, force=force, inputs=[source],
                                 calibration_count=calibration, threads=threads)
    return report.export_dict(source, result, prepared)


__all__ = ["convert_file", "finetune_file", "compare_models", "compare_files", "compress_file", "tune",
           "inspect_model", "sensitivity_of", "chosen_spectra", "export_file"]
