"""Options several commands share, each with one help text, and the small helpers commands use
to turn them into library objects and to print a report in the form asked for."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import os
import sys
import typing
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import (BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from .._deferred import deferred
from ..defaults import CONV_MODE_CHOICES
from ..deploy.timing import DEFAULT_THREADS, Runtime
from ..errors import OptionError
from ..factorization.methods import get_method, known_methods
from .library import report

DataSpec = deferred("lightcompress.data.sets", "DataSpec")
FitSettings = deferred("lightcompress.training.finetune", "FitSettings")
LayerFilter = deferred("lightcompress.planning", "LayerFilter")

Debug = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout instead of tables.")]
MarkdownOut = Annotated[bool, typer.Option("--markdown", help="Print the report as Markdown instead of tables.")]
Force = Annotated[bool, typer.Option("--force", help="Overwrite the output files if they exist.")]
TrustModel = Annotated[
    bool,
    typer.Option("--trust-model",
                 help="Allow Lambda layers (Python code in the file) and SavedModel folders (a graph that runs "
                      "when loaded). Only for files from authors you trust."),
]
CustomObjects = Annotated[
    Optional[str],
    typer.Option("--custom-objects", metavar="FILE.py|MODULE",
                 help="Your own classes the model is made of (a keras.Model subclass, custom layers), registered "
                      "with keras.saving.register_keras_serializable: a Python file (path/to/net.py) or module "
                      "(pkg.net) imported before the model is loaded. It runs that code: only code you trust."),
]
ModelPath = Annotated[Path, typer.Argument(help="A trained Keras model: .h5 (Keras 2 or 3) or .keras.")]
PlotOpt = Annotated[Optional[Path], typer.Option("--plot", help="Also draw the report's pictures into this PNG file.")]


def output_opt(default_text):
    return Annotated[Optional[Path], typer.Option("--output", "-o", help=f"Where to save. Default: {default_text}.")]


# -- data --------------------------------------------------------------------------------------
DatasetOpt = Annotated[
    Optional[str],
    typer.Option(
        "--dataset", "-d",
        help="Needed by every command that trains or measures accuracy (only the demo has a default): "
        "digits (real 8x8 digits shipped with scikit-learn, offline), mnist, "
        "fashion_mnist, cifar10, cifar100, or a .npz file (read into memory); streamed in batches: a folder "
        "of images in class sub-folders (train/ and test/ inside if present, else 20% held out), TFRecord "
        "files (x.tfrecord or 'shards/*.tfrecord': an encoded 'image' bytes and an int64 'label' feature; "
        "files named *test* are the test split), or module:function / file.py:function returning a "
        "tf.data.Dataset or keras PyDataset of (images, labels) batches (called with split='train' and "
        "split='test' if it takes split, else returning a (train, test) pair).",
    ),
]
NpzKeys = Annotated[Optional[str], typer.Option(help="Names of the 4 arrays in a .npz (x_train,y_train,x_test,y_test), "
                                                 "or of the 2 features of TFRecord examples (image,label).")]
Scale = Annotated[Optional[float], typer.Option(help="Multiply pixels by this. Default: uint8 images to [0, 1], others as they are.")]
Resize = Annotated[bool, typer.Option("--resize", help="Resize images to the model's input size.")]
InputShape = Annotated[
    Optional[str],
    typer.Option("--input-shape", metavar="N[,N...]",
                 help="The size of one example, for random inputs where the model leaves a size open and declares "
                      "none (a keras-hub backbone's max_sequence_length, an image size are used by themselves): a "
                      "sequence length (128) or all sizes (224,224,3), batch axis left out. Not needed by the "
                      "factorisation itself."),
]
TrainLimit = Annotated[Optional[int], typer.Option(help="Use only the first N training images.")]
TestLimit = Annotated[Optional[int], typer.Option(help="Use only the first N test images.")]
Seed = Annotated[int, typer.Option(help="Seed for shuffling, splits and initialisation (repeatable runs).")]


@dataclasses.dataclass(frozen=True)
class Data:
    """--dataset and the options that shape it, as one parameter of a command (see ``expand``)."""

    dataset: DatasetOpt = None
    npz_keys: NpzKeys = None
    scale: Scale = None
    resize: Resize = False
    test_limit: TestLimit = None

    def spec(self, train_limit=None, seed=0):
        """The ``DataSpec`` (None without --dataset: ``data.sets.required`` refuses that)."""
        return data_spec(self.dataset, self.npz_keys, self.scale, self.resize, train_limit, self.test_limit, seed)

    def optional(self, train_limit=None):
        """``optional_data_spec``: None without --dataset, the shaping options then refused."""
        return optional_data_spec(self.dataset, self.npz_keys, self.scale, self.resize, train_limit, self.test_limit)


@dataclasses.dataclass(frozen=True)
class TrainingData(Data):
    """``Data`` with --train-limit, for the commands that train."""

    train_limit: TrainLimit = None

    def spec(self, seed=0):
        return data_spec(self.dataset, self.npz_keys, self.scale, self.resize, self.train_limit, self.test_limit, seed)


@dataclasses.dataclass(frozen=True)
class Common:
    """The options of every command that loads a model and prints a report: --json, --markdown,
    --trust-model, --custom-objects and --debug (the last three are read by the error boundary)."""

    json_out: JsonOut = False
    markdown_out: MarkdownOut = False
    trust_model: TrustModel = False
    custom_objects: CustomObjects = None
    debug: Debug = False


GROUPS = (Data, TrainingData, Common)


def expand(fn):
    """``fn`` as Typer should see it: each parameter typed by one of ``GROUPS`` stands for the
    group's own options (defined once, above), and the call gathers them back into the group. The
    flat option values stay visible to the error boundary wrapped around the result."""
    hints = typing.get_type_hints(fn, include_extras=True)
    params, gathered = [], {}
    for param in inspect.signature(fn).parameters.values():
        kind = hints.get(param.name, param.annotation)
        if kind not in GROUPS:
            params.append(param.replace(annotation=kind))
            continue
        members = typing.get_type_hints(kind, include_extras=True)
        gathered[param.name] = (kind, tuple(members))
        params += [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=f.default,
                                     annotation=members[f.name]) for f in dataclasses.fields(kind)]

    @functools.wraps(fn)
    def command(*args, **kwargs):
        for name, (kind, members) in gathered.items():
            kwargs[name] = kind(**{m: kwargs.pop(m) for m in members if m in kwargs})
        return fn(*args, **kwargs)

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command


def data_spec(dataset, npz_keys=None, scale=None, resize=False, train_limit=None, test_limit=None, seed=0):
    keys = tuple(k.strip() for k in npz_keys.split(",")) if npz_keys else None
    return DataSpec(dataset, keys, scale, resize, train_limit, test_limit, seed)


def optional_data_spec(dataset, npz_keys=None, scale=None, resize=False, train_limit=None, test_limit=None):
    """``data_spec`` for commands whose data set is optional: None without --dataset, and then the
    data options the user gave (``npz_keys``, ``scale``, ``resize``, ``test_limit``) refused, not
    ignored (``train_limit`` is the command's own choice)."""
    if dataset is None:
        named = {"npz_keys": npz_keys, "scale": scale, "resize": resize or None, "test_limit": test_limit}
        for name, value in named.items():
            if value is not None:
                shown = "True" if value is True else value
                raise OptionError(f"{name}={shown} shapes a data set, and none was given; give dataset=NAME too, "
                                  f"or drop {name}.")
        return None
    return data_spec(dataset, npz_keys, scale, resize, train_limit, test_limit)


# -- layer selection and training --------------------------------------------------------------
ConvMode = Enum("ConvMode", {mode: mode for mode in CONV_MODE_CHOICES}, type=str)  # --conv-mode's choices


Include = Annotated[Optional[list[str]], typer.Option(help="Only layers whose name matches this glob (repeatable).")]
Exclude = Annotated[Optional[list[str]], typer.Option(help="Leave layers whose name matches this glob (repeatable).")]
MinParams = Annotated[int, typer.Option(help="Leave layers with fewer parameters alone.")]
ConvModeOpt = Annotated[
    ConvMode,
    typer.Option(help="Conv2D factorisation: channel (kxk then 1x1), spatial (kx1 then 1xk), "
                      "tucker (1x1, kxk core, 1x1; rank is the core's output channels), or auto (the default: per "
                      "layer, the mode with the lowest error at the rank the rule gives)."),
]


def _method_help() -> str:
    named = "; ".join(f"{name}: {get_method(name).summary}" for name in known_methods())
    return f"How the factors are made (default: data-aware with --dataset, svd without). {named}."


MethodOpt = Annotated[Optional[str], typer.Option(help=_method_help())]
CalibrationSamples = Annotated[int, typer.Option("--calibration", help="Training images whose layer inputs "
                                                 "calibrate the factors of a method that needs data.")]
MinSaving = Annotated[float, typer.Option(help="Factorise a layer only at ranks saving at least this fraction of it.")]


NoDataFloor = Annotated[float, typer.Option(
    help="Without --dataset, a budget takes no layer below this fraction of its energy (spectral, or of its "
         "outputs on --samples or synthesised inputs), so no layer is wrecked for want of labels; a budget that "
         "cannot be met above it is refused with the smallest that can. 0: no floor.")]


def layer_filter(include, exclude, min_params, conv_mode, min_saving=None, no_data_floor=None):
    extra = {} if min_saving is None else {"min_saving": min_saving}
    if no_data_floor is not None:
        extra["no_data_floor"] = no_data_floor
    return LayerFilter(tuple(include or ()), tuple(exclude or ()), min_params, conv_mode.value, **extra)


Epochs = Annotated[int, typer.Option(help="Most epochs to train; early stopping may end sooner.")]
BatchSize = Annotated[int, typer.Option(help="Images per training step.")]
LearningRate = Annotated[float, typer.Option("--lr", help="Peak learning rate of Adam (cosine decay to 5% of it).")]
Patience = Annotated[int, typer.Option(help="Stop after this many epochs without a better validation loss.")]
ValSplit = Annotated[float, typer.Option(help="Fraction of training images held out for validation.")]
Devices = Annotated[
    str,
    typer.Option("--devices", help="Train data-parallel on 'all' visible accelerators (the CPU, as one device, when "
                 "there is none) or on the first N: keras.distribution on JAX, tf.distribute on TensorFlow."),
]
Alpha = Annotated[float, typer.Option(help="Distillation: weight of the hard labels (the teacher gets 1 - alpha), in [0, 1].")]
Temperature = Annotated[float, typer.Option(help="Distillation: temperature softening the teacher's outputs.")]


def fit_settings(epochs, batch_size, lr, val_split, patience, seed, devices="all"):
    """The fit options as ``FitSettings``, checked once (in its constructor), before any work."""
    return FitSettings(epochs, batch_size, lr, val_split, patience, seed, devices)


# -- runtime ------------------------------------------------------------------------------------
RuntimeOpt = Annotated[
    Optional[str],
    typer.Option("--runtime", help="Where Keras models are timed: litert (exported as a float .tflite, run in the "
                 "LiteRT interpreter a deployment runs), litert-int8 (the same exported full int8, as export "
                 "--quantize int8 writes it, calibrated on random inputs), onnxruntime (exported to ONNX, run in "
                 "ONNX Runtime on the CPU; needs the onnx extra: pip install \"lightcompress\\[onnx]\") or keras "
                 "(the compiled Keras forward pass on this backend). Default: litert with TensorFlow, else keras; "
                 "compress --export litert-int8 plans in litert-int8."),
]
Threads = Annotated[int, typer.Option(help="Threads of the LiteRT interpreter or ONNX Runtime (intra-op) when timing.")]


def runtime(name, threads=DEFAULT_THREADS):
    """--runtime and --threads as one ``Runtime``, checked once, before any work."""
    return Runtime.parse(name, threads)


# -- output --------------------------------------------------------------------------------------
def check_form(json_out, markdown_out):
    """Refuse two output forms at once, before any work."""
    if json_out and markdown_out:
        raise OptionError("choose one of --json and --markdown.")


_REPORT_STREAMS = []  # while a --json command runs: the stdout its report goes to


@contextlib.contextmanager
def report_stdout(json_out):
    """While a ``--json`` command runs, anything printed to stdout (the user's own code, a library)
    goes to stderr, and only ``emit``'s JSON reaches stdout: the document stays parseable."""
    if not json_out:
        yield
        return

    _REPORT_STREAMS.append(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _REPORT_STREAMS.pop()


def emit(data, sections, json_out, markdown_out, console=None):
    """Print one report in the form asked for: JSON, Markdown, or rich tables."""
    check_form(json_out, markdown_out)
    if json_out:
        report.print_json(data, file=_REPORT_STREAMS[-1] if _REPORT_STREAMS else None)
    elif markdown_out:
        print(report.markdown(sections(data)), end="")
    else:
        report.render(sections(data), console or stdout())


def plot_saved(path, why_not=None):
    """Say on stderr where --plot wrote its PNG (or why it wrote none), after the report."""
    err = stderr()
    if why_not:
        err.print(f"--plot: no PNG written to {path}: {why_not}", highlight=False, markup=False)
    else:
        err.print(f"plot saved to {path}", highlight=False, markup=False)


REDIRECTED_WIDTH = 200  # rich falls back to 80 columns when not on a terminal; tables would wrap


def stdout():
    redirected = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=REDIRECTED_WIDTH if redirected else None)


def stderr():
    return Console(stderr=True)


def spinner(console):
    """A ``stage(text)`` for the pipeline: a spinner on ``console`` while a stage runs, a bar when
    the stage reports measured progress (see ``Stages``)."""
    return Stages(console)


class Stages:
    """``stage(text)``: a context showing a spinner and the time spent on ``console``; inside it,
    ``step(done, total, text)`` turns the spinner into a bar with an ETA (e.g. kernel weights
    decomposed of all, for a big model)."""

    def __init__(self, console):
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console, transient=True)
        self.task = None
        self.text = ""

    @contextlib.contextmanager
    def __call__(self, text):
        if not self.progress.console.is_terminal:  # a log or a pipe: no live display, no stray lines
            yield
            return
        outer = (self.task, self.text)  # stages may nest: the inner one shows while it runs
        self.text = text
        self.task = self.progress.add_task(text, total=None)
        if outer[0] is None:
            self.progress.start()
        try:
            yield
        finally:
            self.progress.remove_task(self.task)
            self.task, self.text = outer
            if self.task is None:
                self.progress.stop()

    def step(self, done, total, text=None):
        if self.task is not None:
            description = f"{self.text}: {text}" if text else self.text
            self.progress.update(self.task, completed=done, total=total, description=description)
