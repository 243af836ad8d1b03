"""The ``compare`` flow: several models or exported artefacts side by side, timed in turns; and
the int8 compare (``compare_int8``): the original and the compressed model, each as float and as
int8 LiteRT files, the four side by side."""


from __future__ import annotations

import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from .. import report
from ..data.sets import DataSpec
from ..data.synthetic import input_specs
from ..defaults import DEFAULT_CALIBRATION
from ..deploy import measure, runtimes
from ..deploy.export import export_model
from ..deploy.runtimes import Artifact
from ..deploy.timing import Runtime
from ..errors import OptionError
from ..factorization import candidates
from ..factorization.statistics import calibration_images
from ..io.models import available_memory
from ..training.devices import device_name
from ..training.evaluation import agreement, evaluate
from ..validation import whole
from .common import load_any, load_data_for, no_progress


def compare_models(nets, paths, prepared=None, batches=(1, 32), repeats=30, warmup=5,
                   runtime: Runtime | None = None, *, labels=None, sources=None, headline=None, notes=()) -> dict:
    """Several models side by side: measured size, cost and latency, all timed in turns at each
    batch size (``measure.measure_all``: Keras models in ``runtime``, None: ``Runtime()``;
    exported artefacts in their own, loaded with their thread count); with data, accuracy and
    agreement with the first. ``nets`` holds Keras models or loaded artefacts
    (``runtimes.load_artifact``). ``sources``: the Keras model each net was exported from (its
    params, MACs and layers are reported), None where it is one. ``labels``, ``headline``,
    ``notes``: see ``report.compare_dict``. Returns the `compare` report dict."""
    check_batches(batches, nets)
    measures = measure.measure_all(nets, paths, batches, repeats, warmup, runtime)
    keras_nets = [source if source is not None else net for net, source in zip(nets, sources or [None] * len(nets))]
    for m, net, model in zip(measures, nets, keras_nets):
        if model is not net and not isinstance(model, Artifact):
            for key, value in measure.counts(model).items():
                setattr(m, key, value)
    evaluations = agreements = None
    if prepared is not None:
        evaluations = [evaluate(net, prepared) for net in nets]
        agreements = [agreement(nets[0], net, prepared) for net in nets]
    layers = candidates.matching_layers(keras_nets) if not any(isinstance(n, Artifact) for n in keras_nets) else []
    return report.compare_dict(measures, device_name(), evaluations, agreements, layers,
                               prepared.name if prepared else None, labels=labels, headline=headline, notes=notes)


def check_batches(batches, nets=()):
    """Each timed batch size a whole number >= 1 and, once the models are known, one whose random
    inputs fit in the memory this process has (a batch the machine cannot hold is refused before
    any timing, not met by a MemoryError)."""
    for batch in batches:
        whole("batch", batch, 1)
    free = available_memory()
    if free is None or not nets:
        return
    for net in nets:
        shapes = net._input_shapes() if isinstance(net, Artifact) else [tuple(t.shape)[1:] for t in input_specs(net)]
        example = sum(int(np.prod([d or 1 for d in shape], dtype=np.float64)) for shape in shapes) * 4
        for batch in batches:
            if batch * example > free:
                raise OptionError(f"needs {batch * example / 2**30:.3g} GiB for one batch of inputs, more than the "
                                  f"{free / 2**30:.3g} GiB of memory free", option="batch", value=batch,
                                  allowed=f"a batch of at most {max(1, free // max(example, 1)):,}")


# -- the int8 compare ----------------------------------------------------------------------------

INT8_LABELS = ("original float", "original int8", "compressed float", "compressed int8")


def check_int8(paths, data, runtime: Runtime | str | None = None):
    """Refuse, before any model is loaded, what the int8 compare cannot do: it exports to LiteRT
    (TensorFlow as the Keras backend), calibrates on training images (a data set), and compares
    two Keras models, all four files timed in the LiteRT interpreter."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise OptionError(f"int8=True needs LiteRT, which needs TensorFlow as the Keras backend; this process runs "
                          f"Keras on {backend} (set KERAS_BACKEND=tensorflow).")
    if data is None:
        raise OptionError("int8=True needs calibration images from the training split; give data=NAME (a data set).")
    if paths and len(paths) != 2:  # no paths: the settings alone, checked before the files are named
        raise OptionError(f"int8=True compares two Keras models, the original then the compressed; got {len(paths)}.")
    for path in paths:
        if runtimes.is_artifact_path(path):
            raise OptionError(f"int8=True exports each model itself; give Keras model files (.keras, .h5), not {path}.")
    name = runtime.name if isinstance(runtime, Runtime) else runtime
    if name not in (None, "litert"):
        raise OptionError("does not time int8: the int8 compare times all four files in the LiteRT interpreter",
                          option="runtime", value=name, allowed="runtime='litert' (the default)")


@contextmanager
def _int8_files(original, compressed, paths, prepared, threads, compressed_int8=None, stage=no_progress):
    """The four LiteRT artefacts (original float, original int8, compressed float, compressed
    int8), exported with the project's exporter into a temporary folder (removed at the end; never
    beside the inputs), int8 calibrated on training images of ``prepared``; ``compressed_int8``:
    an int8 file already written (by ``compress_file(export="litert-int8")``), used as it is. Yields
    (artefacts, their paths or descriptions, calibration images used)."""
    calibration = calibration_images(prepared, DEFAULT_CALIBRATION)
    columns = [(original, paths[0], "none"), (original, paths[0], "int8"), (compressed, paths[1], "none"),
               (compressed, paths[1], "int8")]
    with tempfile.TemporaryDirectory(prefix="lightcompress-int8-") as folder:
        files, described = [], []
        for i, (model, path, quantize) in enumerate(columns):
            kind = "float" if quantize == "none" else "int8"
            if i == 3 and compressed_int8 is not None:
                files.append(Path(compressed_int8))
                described.append(str(compressed_int8))
                continue
            with stage(f"exporting {Path(path).name} as {kind} LiteRT"):
                files.append(export_model(model, Path(folder) / f"{i}.{kind}.tflite", "litert", quantize,
                                          calibration=calibration if quantize == "int8" else None,
                                          threads=threads, repeats=5).path)
            described.append(f"{path} as {kind} .tflite (temporary)")
        # all written by lightcompress in this run (the exporter, or compress_file's int8 file): not probed
        yield ([runtimes.load_artifact(f, threads=threads, trust=True, probe=False) for f in files], described,
               len(calibration))


def compare_int8(original, compressed, paths, prepared, batches=(1, 32), repeats=30, warmup=5,
                 threads=2, compressed_int8=None, stage=no_progress) -> dict:
    """The four-column compare: ``original`` and ``compressed`` (Keras models, from ``paths``),
    each as a float and an int8 LiteRT file, side by side: file bytes, latency in the LiteRT
    interpreter with ``threads`` (all four in turns), accuracy on the test images of
    ``prepared``; the headline is compressed int8 against original int8. int8 calibrates on
    training images of ``prepared``, never its test images."""
    with _int8_files(original, compressed, paths, prepared, threads, compressed_int8, stage) as (
            artefacts, described, calibrated):
        kept = f" ({compressed_int8}: the file written)" if compressed_int8 is not None else ""
        note = (f"int8: {Path(paths[0]).name} and {Path(paths[1]).name} exported to LiteRT as float and as int8 "
                f"(calibrated on {calibrated:,} training images of {prepared.name}, never test images) into a "
                f"temporary folder, removed afterwards{kept}; file bytes are the .tflite files', params and MACs "
                f"the Keras models'")
        with stage("timing and evaluating"):
            return compare_models(artefacts, described, prepared, batches, repeats, warmup,
                                  labels=list(INT8_LABELS), sources=[original, original, compressed, compressed],
                                  headline=(3, 1), notes=[note])


@dataclass(frozen=True)
class CompareSettings:
    """compare's choices, checked once (``make``): the batch sizes, calls per figure, warm-up
    calls, the ``Runtime`` (its threads also the artefacts'), and the four-column int8 compare."""

    batches: tuple = (1, 32)
    repeats: int = 30
    warmup: int = 5
    runtime: Runtime = field(default_factory=Runtime.parse)
    int8: bool = False

    @classmethod
    def make(cls, *, batches=(1, 32), repeats=30, warmup=5, runtime: Runtime | str | None = None, int8=False,
             data: DataSpec | None = None) -> CompareSettings:
        """The settings of a compare with ``data``, refused before any model is loaded: int8
        needs TensorFlow, ``data`` (calibration images) and the LiteRT runtime."""
        if int8:
            check_int8([], data, runtime)
        whole("repeats", repeats, 1)
        whole("warmup", warmup, 0)
        check_batches(batches)
        return cls(batches=tuple(batches), repeats=repeats, warmup=warmup, runtime=Runtime.parse(runtime),
                   int8=bool(int8))


def compare_files(paths, settings: CompareSettings | None = None, *, data: DataSpec | None = None, trust=False,
                  stage=no_progress):
    """``compare_models`` on files (Keras models and exported artefacts) as ``settings`` say
    (``CompareSettings.make``; default: its defaults): (report dict, loaded). With
    ``settings.int8``, the four-column compare of two Keras models (``compare_int8``)."""
    settings = settings or CompareSettings.make()
    if len(paths) < 2:
        raise OptionError("compare needs at least two models: the reference first, then the others.")
    if settings.int8:
        check_int8(paths, data, settings.runtime)
    runtime, batches, repeats, warmup = settings.runtime, settings.batches, settings.repeats, settings.warmup
    with stage("loading models"):
        nets = [load_any(path, trust, runtime.threads) for path in paths]
    prepared = None
    if data is not None:
        with stage(f"loading data set {data.name}"):
            prepared = load_data_for(nets[0], data, stream=True)
    if settings.int8:
        return compare_int8(nets[0], nets[1], paths, prepared, batches, repeats, warmup, runtime.threads,
                            stage=stage), nets
    with stage("timing and evaluating"):
        out = compare_models(nets, paths, prepared, batches, repeats, warmup, runtime=runtime)
    return out, nets
