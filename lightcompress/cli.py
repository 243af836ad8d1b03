"""The ``lightcompress`` command: a thin Typer app over the library.

Commands parse options, call the pipeline, and hand results to ``report``. Errors of the
LightCompressError family become one line on stderr and exit code 1; a traceback only with
``--debug``.
"""

from __future__ import annotations

import functools
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from . import finetune as ft
from .distill import DEFAULT_ALPHA, DEFAULT_TEMPERATURE
from .errors import LightCompressError

app = typer.Typer(
    name="lightcompress",
    help="Low-rank compression of trained Keras models with LightLayers (SVD-initialised).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool):
    if value:
        typer.echo(f"lightcompress {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
):
    """Low-rank compression of trained Keras models with LightLayers (SVD-initialised)."""
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # e.g. retracing notices between models


def _fail(message: str, code: int = 1):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(fn):
    """Map known errors to one line and an exit code; ``debug=True`` re-raises them."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        debug = kwargs.get("debug", False)
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except LightCompressError as err:
            if debug:
                raise
            _fail(str(err))
        except KeyboardInterrupt:
            if debug:
                raise
            _fail("interrupted.", 130)
        except Exception as err:  # noqa: BLE001 - last resort: one line, not a traceback
            if debug:
                raise
            _fail(f"unexpected {type(err).__name__}: {err} (rerun with --debug for the traceback)")

    return wrapper


# Options shared by several commands.
Debug = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout instead of tables.")]
MarkdownOut = Annotated[bool, typer.Option("--markdown", help="Print the report as Markdown instead of tables.")]
Force = Annotated[bool, typer.Option("--force", help="Overwrite the output file if it exists.")]
TrustModel = Annotated[
    bool,
    typer.Option(
        "--trust-model",
        help="Allow Lambda layers (Python code in the file). Only for files from authors you trust.",
    ),
]
ModelPath = Annotated[Path, typer.Argument(help="A trained Keras model: .h5 (Keras 2 or 3) or .keras.")]


# Data options shared by every command that reads a data set.
DatasetOpt = Annotated[
    Optional[str],
    typer.Option(
        "--dataset", "-d",
        help="digits (default: real 8x8 digits shipped with scikit-learn, offline), mnist, "
        "fashion_mnist, cifar10, cifar100, a .npz file, or a folder of images in class sub-folders.",
    ),
]
NpzKeys = Annotated[
    Optional[str], typer.Option(help="Names of the 4 arrays in a .npz: x_train,y_train,x_test,y_test.")
]
Scale = Annotated[
    Optional[float], typer.Option(help="Multiply pixels by this. Default: uint8 images to [0, 1], others as they are.")
]
Resize = Annotated[bool, typer.Option("--resize", help="Resize images to the model's input size.")]
TrainLimit = Annotated[Optional[int], typer.Option(help="Use only the first N training images.")]
TestLimit = Annotated[Optional[int], typer.Option(help="Use only the first N test images.")]
Alpha = Annotated[float, typer.Option(help="Distillation: weight of the hard labels (the teacher gets 1 - alpha).")]
Temperature = Annotated[float, typer.Option(help="Distillation: temperature softening the teacher's outputs.")]
Seed = Annotated[int, typer.Option(help="Seed for shuffling, splits and initialisation (repeatable runs).")]


def _load_data(model, dataset, npz_keys, scale, resize, train_limit=None, test_limit=None, seed=0):
    from . import data

    target, _ = data.single_io_shape(model)
    image_size = target[:2] if len(target) == 3 else None
    color = "grayscale" if len(target) == 3 and target[2] == 1 else "rgb"
    keys = tuple(k.strip() for k in npz_keys.split(",")) if npz_keys else None
    for name, value in (("--train-limit", train_limit), ("--test-limit", test_limit)):
        if value is not None and value < 1:
            raise LightCompressError(f"{name} {value} is invalid; use 1 or more images.")
    raw = data.load_dataset(dataset, npz_keys=keys, image_size=image_size, color_mode=color, seed=seed)
    return data.prepare(raw.limit(train_limit, test_limit), model, scale=scale, resize=resize)


class ConvMode(str, Enum):
    channel = "channel"
    spatial = "spatial"
    auto = "auto"


def _read_plan(model, path):
    import json

    from .allocate import plan_from_dict

    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise LightCompressError(f"{path}: no such plan file; check the path.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise LightCompressError(f"{path} is not a plan JSON file ({err}).") from None
    if not isinstance(data, dict) or "layers" not in data:
        raise LightCompressError(f"{path} is not a plan (no 'layers'); use a plan.json written by compress.")
    return plan_from_dict(model, data)


def _emit(data, sections, json_out, markdown_out, console):
    """Print one report in the form asked for: JSON, Markdown, or rich tables."""
    from . import report

    if json_out and markdown_out:
        raise LightCompressError("choose one of --json and --markdown.")
    if json_out:
        report.print_json(data)
    elif markdown_out:
        print(report.markdown(sections(data)), end="")
    else:
        report.render(sections(data), console)


def _consoles():
    from rich.console import Console

    return Console(), Console(stderr=True)


@app.command()
@handle_errors
def convert(
    model: ModelPath,
    rank: Annotated[
        Optional[int],
        typer.Option("--rank", "-r", help="The same rank for every layer, clipped per layer to what saves parameters."),
    ] = None,
    energy: Annotated[
        Optional[float],
        typer.Option(help="Per layer, the smallest rank keeping this fraction of spectral energy (e.g. 0.95)."),
    ] = None,
    ratio: Annotated[
        Optional[float],
        typer.Option(help="Global budget: converted layers keep about this fraction of their params (e.g. 0.3)."),
    ] = None,
    target_params: Annotated[
        Optional[float],
        typer.Option(help="Whole-model budget: keep about this fraction of all params (0.2 = 5x smaller)."),
    ] = None,
    plan_file: Annotated[
        Optional[Path], typer.Option("--plan", help="Apply a plan saved by compress (plan.json) instead of a policy.")
    ] = None,
    include: Annotated[
        Optional[list[str]], typer.Option(help="Only layers whose name matches this glob (repeatable).")
    ] = None,
    exclude: Annotated[
        Optional[list[str]], typer.Option(help="Leave layers whose name matches this glob (repeatable).")
    ] = None,
    min_params: Annotated[int, typer.Option(help="Leave layers with fewer parameters alone.")] = 1000,
    conv_mode: Annotated[
        ConvMode,
        typer.Option(help="Conv2D factorisation: channel (kxk then 1x1), spatial (kx1 then 1xk), or auto per layer."),
    ] = ConvMode.channel,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Where to save (.keras or .h5). Default: <stem>.light.keras beside the input.")
    ] = None,
    dataset: DatasetOpt = None,
    npz_keys: NpzKeys = None,
    scale: Scale = None,
    resize: Resize = False,
    test_limit: TestLimit = None,
    force: Force = False,
    json_out: JsonOut = False,
    markdown_out: MarkdownOut = False,
    trust_model: TrustModel = False,
    debug: Debug = False,
):
    """Replace Dense and Conv2D layers with SVD-initialised LightLayers and report what changed.

    Without --dataset the outputs are compared on random inputs; with it, on the test images,
    and the report adds accuracy before and after.

    Example: lightcompress convert model.h5 --rank 8
    """
    from . import model_io, report
    from .factorize import convert as convert_model
    from .plan import RankPolicy

    out, err = _consoles()
    policy = None if plan_file is not None and rank is energy is ratio is target_params is None else RankPolicy(
        rank=rank,
        energy=energy,
        ratio=ratio,
        target_params=target_params,
        include=tuple(include or ()),
        exclude=tuple(exclude or ()),
        min_params=min_params,
        conv_mode=conv_mode.value,
    )
    target = model_io.check_output(output or model_io.default_output(model), force=force, inputs=[model])
    with err.status(f"loading {model}"):
        original = model_io.load_model(model, trust=trust_model)
    prepared = None
    if dataset is not None:
        with err.status(f"loading data set {dataset}"):
            prepared = _load_data(original, dataset, npz_keys, scale, resize, 1, test_limit)
    with err.status("factorising"):
        plan = None
        if plan_file is not None:
            if policy is not None:
                raise LightCompressError("give either --plan or a rank policy, not both.")
            plan = _read_plan(original, plan_file)
        x = None if prepared is None else prepared.x_test
        source = "random inputs" if prepared is None else f"test images of {prepared.name}"
        result = convert_model(original, policy, x, source, plan=plan)
    model_io.save_model(result.model, target, force=force, inputs=[model])
    data = report.conversion_dict(result, model, target, model.stat().st_size, target.stat().st_size)
    if prepared is not None:
        with err.status("evaluating"):
            data["accuracy"] = report.before_after(ft.evaluate(original, prepared), ft.evaluate(result.model, prepared))
    _emit(data, report.conversion_sections, json_out, markdown_out, out)


@app.command()
@handle_errors
def finetune(
    model: ModelPath,
    dataset: DatasetOpt = None,
    epochs: Annotated[int, typer.Option(help="Most epochs to train; early stopping may end sooner.")] = ft.DEFAULT_EPOCHS,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = ft.DEFAULT_BATCH_SIZE,
    lr: Annotated[
        float, typer.Option("--lr", help="Peak learning rate of Adam (cosine decay to 5% of it).")
    ] = ft.DEFAULT_LEARNING_RATE,
    val_split: Annotated[
        float, typer.Option(help="Fraction of training images held out for validation.")
    ] = ft.DEFAULT_VALIDATION_SPLIT,
    patience: Annotated[
        int, typer.Option(help="Stop after this many epochs without a better val loss.")
    ] = ft.DEFAULT_PATIENCE,
    seed: Seed = 0,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Where to save. Default: <stem>.tuned.keras beside the input.")
    ] = None,
    teacher: Annotated[
        Optional[Path], typer.Option(help="Distil from this model (usually the original before convert).")
    ] = None,
    alpha: Alpha = DEFAULT_ALPHA,
    temperature: Temperature = DEFAULT_TEMPERATURE,
    npz_keys: NpzKeys = None,
    scale: Scale = None,
    resize: Resize = False,
    train_limit: TrainLimit = None,
    test_limit: TestLimit = None,
    force: Force = False,
    json_out: JsonOut = False,
    markdown_out: MarkdownOut = False,
    trust_model: TrustModel = False,
    debug: Debug = False,
):
    """Fine-tune a model (typically a converted one) on a data set; keep the best epoch.

    Saves the model and its training history (<output stem>.history.json). Ctrl-C stops and
    still saves the best weights so far.

    Example: lightcompress finetune model.light.keras --dataset fashion_mnist --epochs 3 -o tuned.keras
    """
    from . import model_io, report
    from .progress import RichProgress

    out, err = _consoles()
    settings = ft.FitSettings(epochs, batch_size, lr, val_split, patience, seed)
    ft.check_settings(settings)
    target = model_io.check_output(
        output or model.with_name(f"{model.name.split('.')[0]}.tuned.keras"), force=force, inputs=[model]
    )
    history_path = model_io.check_output(
        target.with_name(f"{target.stem}.history.json"), force=force, inputs=[model], suffixes=(".json",)
    )
    with err.status(f"loading {model}"):
        net = model_io.load_model(model, trust=trust_model)
    with err.status(f"loading data set {dataset or 'digits'}"):
        prepared = _load_data(net, dataset, npz_keys, scale, resize, train_limit, test_limit, seed)
    kind = ft.output_kind(net, prepared.x_test)
    tutor = None
    if teacher is not None:
        with err.status(f"loading teacher {teacher}"):
            tutor = ft.Teacher(model_io.load_model(teacher, trust=trust_model), alpha, temperature)
    before = ft.evaluate(net, prepared, kind)
    progress = RichProgress(err)
    try:
        fit = ft.finetune(net, prepared, settings, callbacks=[progress], kind=kind, teacher=tutor)
    finally:
        progress.stop()
    after = ft.evaluate(net, prepared, kind)
    model_io.save_model(net, target, force=force, inputs=[model])
    data = report.finetune_dict(model, target, prepared, fit, before, after)
    model_io.write_json(data, history_path, force=force)
    _emit(data, report.finetune_sections, json_out, markdown_out, out)


@app.command()
@handle_errors
def evaluate(
    model: ModelPath,
    dataset: DatasetOpt = None,
    npz_keys: NpzKeys = None,
    scale: Scale = None,
    resize: Resize = False,
    test_limit: TestLimit = None,
    json_out: JsonOut = False,
    markdown_out: MarkdownOut = False,
    trust_model: TrustModel = False,
    debug: Debug = False,
):
    """Accuracy (top-1; top-5 above 10 classes), loss and time on a data set's test images.

    Example: lightcompress evaluate model.keras --dataset fashion_mnist
    """
    from . import model_io, report

    out, err = _consoles()
    with err.status(f"loading {model}"):
        net = model_io.load_model(model, trust=trust_model)
    with err.status(f"loading data set {dataset or 'digits'}"):
        prepared = _load_data(net, dataset, npz_keys, scale, resize, 1, test_limit)
    with err.status("evaluating"):
        result = ft.evaluate(net, prepared)
    data = report.evaluation_dict(model, prepared, result, ft.device_name())
    _emit(data, report.evaluation_sections, json_out, markdown_out, out)


PlotOpt = Annotated[Optional[Path], typer.Option("--plot", help="Also draw the report's pictures into this PNG file.")]


@app.command()
@handle_errors
def inspect(
    model: ModelPath,
    conv_mode: Annotated[
        ConvMode, typer.Option(help="Which Conv2D matrix the spectrum is taken of: channel or spatial.")
    ] = ConvMode.channel,
    plot: PlotOpt = None,
    sensitivity: Annotated[
        bool, typer.Option("--sensitivity", help="Also measure each layer's accuracy cost per rank on --dataset.")
    ] = False,
    dataset: DatasetOpt = None,
    holdout: Annotated[int, typer.Option(help="Training images used for --sensitivity.")] = 1000,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute the sensitivity analysis.")] = False,
    force: Force = False,
    json_out: JsonOut = False,
    markdown_out: MarkdownOut = False,
    trust_model: TrustModel = False,
    debug: Debug = False,
):
    """Where the parameters and MACs are, and how compressible each Dense/Conv2D is.

    For each layer: output shape, params, MACs per example; for Dense/Conv2D also the ranks keeping
    90/95/99% of the spectral energy, the break-even rank, and the cost at 95%. Changes nothing.

    Example: lightcompress inspect model.h5 --plot spectra.png
    """
    from . import analyze, model_io, report

    if conv_mode == ConvMode.auto:
        raise LightCompressError("inspect takes --conv-mode channel or spatial (auto picks per rank, not here).")
    out, err = _consoles()
    with err.status(f"loading {model}"):
        net = model_io.load_model(model, trust=trust_model)
    stats = analyze.layer_stats(net)
    spectra = {}
    for c in analyze.candidates(net):
        if c.unsupported is None:
            spectra[c.name] = analyze.spectrum_summary(c, "dense" if c.kind == "Dense" else conv_mode.value)
    data = report.inspect_dict(model, stats, spectra, conv_mode.value)
    sections = report.inspect_sections
    if sensitivity:
        from .compress import split_holdout
        from .plan import RankPolicy
        from .sensitivity import analyse

        prepared = _load_data(net, dataset, None, None, False)
        judge, _ = split_holdout(prepared, holdout, 0)
        with err.status("sensitivity analysis"):
            sens = analyse(net, judge, RankPolicy(rank=1, conv_mode=conv_mode.value), use_cache=not no_cache)
        data["sensitivity"] = sens.to_dict()

        def sections(d):
            return report.inspect_sections(d) + report.sensitivity_sections(d["sensitivity"])
    if plot:
        from .plots import inspect_plot

        inspect_plot(data, plot, force=force)
    _emit(data, sections, json_out, markdown_out, out)


@app.command()
@handle_errors
def compare(
    models: Annotated[list[Path], typer.Argument(help="Two or more models; the first is the reference.")],
    dataset: DatasetOpt = None,
    npz_keys: NpzKeys = None,
    scale: Scale = None,
    resize: Resize = False,
    test_limit: TestLimit = None,
    repeats: Annotated[int, typer.Option(help="Timed inference calls per latency figure (median taken).")] = 30,
    warmup: Annotated[int, typer.Option(help="Untimed calls before timing.")] = 5,
    batch: Annotated[int, typer.Option(help="The larger batch size for latency (batch 1 is always measured).")] = 32,
    plot: PlotOpt = None,
    force: Force = False,
    json_out: JsonOut = False,
    markdown_out: MarkdownOut = False,
    trust_model: TrustModel = False,
    debug: Debug = False,
):
    """Side by side: params, MACs, bytes, measured latency, and with --dataset accuracy and agreement.

    Example: lightcompress compare base.h5 r4.keras r8.keras --dataset fashion_mnist --plot tradeoff.png
    """
    from . import analyze, model_io, report
    from .comparison import compare_models

    if len(models) < 2:
        raise LightCompressError("compare needs at least two models: the reference first, then the others.")
    out, err = _consoles()
    with err.status("loading models"):
        nets = [model_io.load_model(path, trust=trust_model) for path in models]
    prepared = None
    if dataset is not None:
        with err.status(f"loading data set {dataset}"):
            prepared = _load_data(nets[0], dataset, npz_keys, scale, resize, 1, test_limit)
    with err.status("timing and evaluating") as status:
        data = compare_models(nets, models, prepared, (1, batch), repeats, warmup,
                              on_model=lambda p: status.update(f"timing and evaluating {p.name}"))
    layers = data["layers"]
    if plot:
        from .plots import compare_plot

        spectra = {}
        for c in analyze.candidates(nets[0]):
            if c.unsupported is None:
                row = next(r for r in layers if r["name"] == c.name)
                modes = [e["mode"] for e in row["models"][1:] if e and e["mode"]]
                spectra[c.name] = c.spectrum(modes[0] if modes else c.modes[0])
        compare_plot(data, plot, spectra=spectra, force=force)
    _emit(data, report.compare_sections, json_out, markdown_out, out)


@app.command()
@handle_errors
def demo(
    out_dir: Annotated[
        Optional[Path], typer.Option("--out", help="Folder for the demo's files. Default: a new temporary folder.")
    ] = None,
    target_params: Annotated[
        float, typer.Option(help="Keep about this fraction of the sample model's params (0.2 = 5x smaller).")
    ] = 0.2,
    epochs: Annotated[int, typer.Option(help="Most fine-tuning epochs.")] = 10,
    force: Force = False,
    debug: Debug = False,
):
    """Convert a trained sample model 5x smaller, fine-tune it, and compare: offline, about a minute.

    Uses the shipped digits CNN (84k params, mostly Dense) and the embedded digits data set
    (scikit-learn's 1,797 real 8x8 handwritten digits).
    """
    import tempfile

    from . import demo as demo_run
    from . import report
    from .progress import RichProgress

    out, err = _consoles()
    folder = out_dir or Path(tempfile.mkdtemp(prefix="lightcompress-demo-"))
    if not folder.is_dir():
        raise LightCompressError(f"--out {folder} is not a folder; create it first.")
    demo_run.check_outputs(folder, force)
    err.print(f"demo files in {folder}", highlight=False)
    progress = RichProgress(err)
    try:
        converted, tuned, compared = demo_run.run(
            folder, target_params, epochs, force, log=lambda m: err.print(m, highlight=False),
            callbacks=[progress],
        )
    finally:
        progress.stop()
    report.render(report.conversion_sections(converted), out)
    report.render(report.finetune_sections(tuned), out)
    report.render(report.compare_sections(compared), out)


@app.command()
@handle_errors
def compress(
    model: ModelPath,
    dataset: DatasetOpt = None,
    target_params: Annotated[
        Optional[float], typer.Option(help="Keep about this fraction of the model's params (0.2 = 5x smaller).")
    ] = None,
    target_macs: Annotated[
        Optional[float], typer.Option(help="Keep about this fraction of the MACs per example.")
    ] = None,
    max_drop: Annotated[
        Optional[float], typer.Option(help="Find the smallest model losing at most this many accuracy points.")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Most fine-tuning epochs (per trial with --max-drop).")] = ft.DEFAULT_EPOCHS,
    distill: Annotated[bool, typer.Option(help="Distil from the original model while fine-tuning.")] = True,
    alpha: Alpha = DEFAULT_ALPHA,
    temperature: Temperature = DEFAULT_TEMPERATURE,
    rank_multiple: Annotated[int, typer.Option(help="Round ranks to a multiple of this (runtimes like 8).")] = 1,
    conv_mode: Annotated[ConvMode, typer.Option(help="Conv2D factorisation; auto measures both.")] = ConvMode.channel,
    include: Annotated[Optional[list[str]], typer.Option(help="Only layers matching this glob.")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option(help="Leave layers matching this glob.")] = None,
    min_params: Annotated[int, typer.Option(help="Leave layers with fewer parameters alone.")] = 1000,
    holdout: Annotated[int, typer.Option(help="Training images held out to judge sensitivity (never test images).")] = 1000,
    trials: Annotated[int, typer.Option(help="With --max-drop: budgets tried (each fine-tuned).")] = 4,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Where sensitivity results are cached.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute the sensitivity analysis.")] = False,
    batch_size: Annotated[int, typer.Option(help="Images per fine-tuning step.")] = ft.DEFAULT_BATCH_SIZE,
    lr: Annotated[float, typer.Option("--lr", help="Peak fine-tuning learning rate.")] = ft.DEFAULT_LEARNING_RATE,
    seed: Seed = 0,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Default: <stem>.compressed.keras beside the input.")
    ] = None,
    npz_keys: NpzKeys = None,
    scale: Scale = None,
    resize: Resize = False,
    train_limit: TrainLimit = None,
    test_limit: TestLimit = None,
    repeats: Annotated[int, typer.Option(help="Timed calls per latency figure in the final report.")] = 30,
    plot: PlotOpt = None,
    force: Force = False,
    json_out: JsonOut = False,
    markdown_out: MarkdownOut = False,
    trust_model: TrustModel = False,
    debug: Debug = False,
):
    """Hit a size budget with the least accuracy lost (sensitivity, allocation, distillation).

    Measures each layer's accuracy cost per rank on held-out training images (cached), allocates
    ranks for the budget, converts, fine-tunes with distillation from the original, and prints the
    compare report of the original against the result. Saves the model and the plan (<output stem>.plan.json; convert --plan applies it again).

    Example: lightcompress compress model.h5 --dataset fashion_mnist --target-params 0.2
    """
    from rich.progress import Progress

    from . import model_io, report
    from .comparison import compare_models
    from .compress import compress as run_compress
    from .plan import RankPolicy
    from .progress import RichProgress

    out, err = _consoles()
    target = model_io.check_output(
        output or model.with_name(f"{model.name.split('.')[0]}.compressed.keras"), force=force, inputs=[model]
    )
    plan_path = model_io.check_output(target.with_name(f"{target.stem}.plan.json"), force=force,
                                      inputs=[model], suffixes=(".json",))
    settings = ft.FitSettings(epochs, batch_size, lr, ft.DEFAULT_VALIDATION_SPLIT, ft.DEFAULT_PATIENCE, seed)
    ft.check_settings(settings)
    policy = RankPolicy(rank=1, include=tuple(include or ()), exclude=tuple(exclude or ()),
                        min_params=min_params, conv_mode=conv_mode.value)
    with err.status(f"loading {model}"):
        original = model_io.load_model(model, trust=trust_model)
    with err.status(f"loading data set {dataset or 'digits'}"):
        prepared = _load_data(original, dataset, npz_keys, scale, resize, train_limit, test_limit, seed)
    progress = RichProgress(err)
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("sensitivity analysis", total=None)

        def on_step(done, total, name):
            bar.update(task, completed=done, total=total, description=f"sensitivity: {name}")

        try:
            result = run_compress(
                original, prepared, target_params=target_params, target_macs=target_macs, max_drop=max_drop,
                policy=policy, rank_multiple=rank_multiple, holdout_size=holdout, cache_dir=cache_dir,
                use_cache=not no_cache, settings=settings, distill=distill, alpha=alpha,
                temperature=temperature, trials=trials, callbacks=[progress], on_step=on_step,
                on_trial=lambda t: err.print(
                    f"trial: keep {t.target:.3f} -> held-out drop {t.drop_points:.2f} pts", highlight=False),
            )
        finally:
            progress.stop()
    model_io.save_model(result.model, target, force=force, inputs=[model])
    model_io.write_json(result.plan.to_dict(), plan_path, force=force)
    with err.status("measuring both models"):
        compare_data = compare_models([original, model_io.load_model(target)], [model, target], prepared,
                                      repeats=repeats)
    data = report.compress_dict(result, compare_data, plan_path, target)
    if plot:
        from .plots import compare_plot

        compare_plot(compare_data, plot, force=force)
    _emit(data, report.compress_sections, json_out, markdown_out, out)


def main():
    """Entry point of the console script and ``python -m lightcompress``."""
    app(prog_name="lightcompress")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
