"""Export: a lowered model written as an artefact that runs without lightcompress, then verified.

Every format is an export target (``targets``: its suffix, quantisations, writer and loader). Each
lowers the model first (``lowered.lower_model``: LightLayers become the standard Dense/Conv2D pairs
they compute), then writes it with its writer; the built-in ones (``builtin_targets``) use Keras's
own exporter:

- ``keras``: the lowered model as a ``.keras`` file (loads with plain Keras);
- ``tf_saved_model``: ``model.export(path, format="tf_saved_model")``, a folder;
- ``litert``: ``model.export(path, format="litert", **converter settings)``, a ``.tflite`` file;
- ``onnx``: ``model.export(path, format="onnx")`` (needs onnx, tf2onnx and onnxruntime).

Quantisation (LiteRT only) goes through the same call: Keras's LiteRT exporter sets every keyword
it is given on the ``tf.lite.TFLiteConverter`` (``optimizations``, ``representative_dataset``,
``inference_input_type``/``inference_output_type``, and ``target_spec`` as a dict of its
attributes), so no setting needs a hand-written converter:

- ``dynamic``: int8 weights, float activations (``optimizations=[Optimize.DEFAULT]``);
- ``float16``: float16 weights (``target_spec={"supported_types": [tf.float16]}``);
- ``int8``: int8 weights and activations, calibrated on ``DEFAULT_CALIBRATION`` training images
  (the caller passes them; never test images). ``int8_io`` also makes the model's input and
  output int8 (the runtime then quantises inputs with the input tensor's scale and zero point).
  Ops with no int8 kernel stay float (the converter's default).

The artefact is written to a temporary path beside the target, loaded in its own runtime and
compared with the Keras model (``verify``); only then is it renamed into place. A float export
whose outputs do not match is deleted and raises ExportError; quantised exports report their
agreement and accuracy instead.
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .._deferred import deferred
from ..data.synthetic import model_inputs_like
# Calibration images for int8: the TFLite documentation suggests a few hundred representative
# samples; 300 drawn at random (seeded) from the training images covers every class of a
# 10-class set many times over and converts in seconds.
from ..defaults import DEFAULT_CALIBRATION  # noqa: E402
from ..errors import ExportError
from ..io.models import TMP_PREFIX, check_finite
from ..io.models import check_output as check_file
from ..io.models import check_owned, remove_stale_temporaries
from ..io.substitutions import in_place
from . import runtimes, targets
from .lower import light_layers, lower_model
from .timing import DEFAULT_THREADS, Latency

tf = deferred("tensorflow")
# A float artefact matches when |artefact - keras| <= ATOL + RTOL * |keras| for every output
# value (numpy.allclose). Kernel and summation order differ between runtimes: float32 TFLite and
# ONNX Runtime differ from Keras by about 1e-6 on this project's models.
FLOAT_ATOL = 1e-4
FLOAT_RTOL = 1e-3
VERIFY_RANDOM_EXAMPLES = 64


def check_settings(fmt, quantize="none", int8_io=False):
    """The canonical format name, after refusing combinations that cannot be exported (and a
    target whose packages are not installed here)."""
    target = targets.get_target(fmt)
    if quantize not in targets.quantizations():
        raise ExportError(f"quantize={quantize!r} is unknown; use one of {', '.join(targets.quantizations())}.")
    if quantize not in target.quantizations:
        able = [t.choice for t in targets.targets() if quantize in t.quantizations]
        raise ExportError(
            f"quantize={quantize} applies to the {' and '.join(able)} format{'s' if len(able) > 1 else ''} only; "
            f"use format={able[0]}, or quantize=none for {target.name}."
        )
    if int8_io and quantize != "int8":
        raise ExportError("int8_io=True needs int8 quantisation; add quantize=int8.")
    target.require()
    return target.name


def default_output(model_path, fmt, quantize="none") -> Path:
    """Beside the model, named by the target (``ExportTarget.default_name``): ``dir/m.h5`` ->
    ``dir/m.lowered.keras``, ``dir/m_saved_model`` (``m.light.keras`` -> ``m_light_saved_model``),
    ``dir/m.tflite``, ``dir/m.onnx``; quantised: ``dir/m.int8.tflite``, ``dir/m.float16.tflite``, ..."""
    path = Path(model_path)
    return path.with_name(targets.get_target(fmt).default_name(path.stem, quantize))


def check_output(path, fmt, *, force=False, inputs=()) -> Path:
    """Refuse, before any work, an output path that is wrong for ``fmt`` or must not be written
    (a folder target: what force may replace is ``check_owned``'s SavedModel rule)."""
    return check_file(Path(path), force=force, inputs=inputs, suffixes=(targets.get_target(fmt).suffix,))


# -- calibration -----------------------------------------------------------------------------

def calibration_images(calibration, count=DEFAULT_CALIBRATION, seed=0) -> list:
    """Up to ``count`` examples drawn (seeded) from ``calibration``: a list of arrays, one per input.

    ``calibration`` is an array of training images, a list of arrays (one per model input), or a
    ``data.Prepared``, of which only ``x_train`` is read: calibration must never see test images.
    """
    if calibration is None:
        raise ExportError(
            "int8 quantisation needs calibration images from the training set; pass a data set "
            "(--dataset) or calibration arrays."
        )
    if hasattr(calibration, "x_train"):
        calibration = calibration.x_train
    arrays = [np.asarray(a, np.float32) for a in
              (calibration if isinstance(calibration, (list, tuple)) else [calibration])]
    n = len(arrays[0])
    if n == 0 or any(len(a) != n for a in arrays):
        raise ExportError(f"calibration needs the same number (at least 1) of images per input; got "
                          f"{[len(a) for a in arrays]}.")
    if count < 1:
        raise ExportError(f"calibration count {count} is invalid; use 1 or more images.")
    if n > count:
        chosen = np.sort(np.random.default_rng(seed).choice(n, count, replace=False))
        arrays = [a[chosen] for a in arrays]
    return arrays


def representative_dataset(arrays):
    """The converter's calibration generator: one example (batch of 1) per step, in order."""

    def generate():
        for i in range(len(arrays[0])):
            yield [a[i:i + 1] for a in arrays]

    return generate


def converter_options(fmt, quantize, int8_io=False, calibration_arrays=None) -> dict:
    """The writer's options for ``quantize`` (the target's ``converter_options``; {} without)."""
    target = targets.get_target(fmt)
    if target.converter_options is None:
        return {}
    return target.converter_options(quantize, int8_io, calibration_arrays)


def litert_options(quantize, int8_io=False, calibration_arrays=None) -> dict:
    """Keyword arguments for ``model.export(..., format="litert")`` (TFLite converter settings)."""
    if quantize == "none":
        return {}
    options = {"optimizations": [tf.lite.Optimize.DEFAULT]}
    if quantize == "float16":
        options["target_spec"] = {"supported_types": [tf.float16]}
    elif quantize == "int8":
        options["representative_dataset"] = representative_dataset(calibration_arrays)
        if int8_io:
            options["inference_input_type"] = tf.int8
            options["inference_output_type"] = tf.int8
    return options


# -- verification ----------------------------------------------------------------------------

@dataclass
class Verification:
    """An artefact's outputs in its runtime against the Keras model's, and its cost there."""

    source: str  # what the inputs were: "test images of digits" / "random inputs"
    examples: int
    max_abs_diff: float
    relative_diff: float  # ||y_artefact - y_keras|| / ||y_keras|| over all outputs
    agreement: float | None  # same top-1 class as the Keras model (classification outputs)
    accuracy: float | None  # the artefact's top-1 accuracy, when labels were given
    reference_accuracy: float | None  # the Keras model's on the same images
    within_tolerance: bool  # allclose(atol=FLOAT_ATOL, rtol=FLOAT_RTOL)
    strict: bool  # True: a mismatch is an error (float exports); False: reported only
    file_bytes: int
    latency: Latency  # batch 1, in the artefact's runtime
    runtime: str

    @property
    def passed(self) -> bool:
        return self.within_tolerance or not self.strict

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def _as_list(y):
    return [np.asarray(a, np.float32) for a in y] if isinstance(y, (list, tuple)) else [np.asarray(y, np.float32)]


def verify(artifact, reference, x=None, y=None, source=None, *, strict=True, atol=FLOAT_ATOL,
           rtol=FLOAT_RTOL, threads=DEFAULT_THREADS, repeats=100, warmup=10,
           batch_size=256, label=None) -> Verification:
    """Compare ``artifact`` (a path or a loaded ``runtimes.Artifact``) with the Keras model
    ``reference`` on ``x`` (random inputs shaped for the model when None); ``y``: labels.

    With ``strict`` (float exports), outputs outside tolerance raise ExportError; otherwise the
    differences are only reported.
    """
    path = artifact.path if isinstance(artifact, runtimes.Artifact) else Path(artifact)
    label = label or path.name
    if not isinstance(artifact, runtimes.Artifact):
        # lightcompress's own export, just written: trusted, and made by the converter (no probe)
        artifact = runtimes.load_artifact(artifact, threads=threads, trust=True, probe=False)
    if x is None:
        x = model_inputs_like(reference, batch=VERIFY_RANDOM_EXAMPLES)
        source = "random inputs"
    names = [t.name for t in getattr(reference, "inputs", None) or []]  # none: a subclassed model
    feed = dict(zip(names, x)) if isinstance(x, (list, tuple)) and len(names) > 1 else x
    expected = _as_list(reference.predict(x, batch_size=batch_size, verbose=0))
    got = _as_list(artifact.predict(feed, batch_size=batch_size))
    if len(got) != len(expected) or any(a.shape != b.shape for a, b in zip(got, expected)):
        raise ExportError(
            f"{label} gives outputs of shapes {[a.shape for a in got]} but the model gives "
            f"{[b.shape for b in expected]}; the artefact is not this model."
        )
    _check_finite_outputs(label, expected, got, source or "given inputs")
    diff = np.sqrt(sum(np.sum((a - b) ** 2, dtype=np.float64) for a, b in zip(got, expected)))
    norm = np.sqrt(sum(np.sum(b.astype(np.float64) ** 2) for b in expected))
    within = all(np.allclose(a, b, atol=atol, rtol=rtol) for a, b in zip(got, expected))
    first, ref = got[0], expected[0]
    agreement = accuracy = reference_accuracy = None
    if ref.ndim == 2 and ref.shape[1] > 1:
        agreement = float(np.mean(np.argmax(first, 1) == np.argmax(ref, 1)))
        if y is not None:
            labels = np.asarray(y).reshape(-1)
            accuracy = float(np.mean(np.argmax(first, 1) == labels))
            reference_accuracy = float(np.mean(np.argmax(ref, 1) == labels))
    result = Verification(
        source=source or "given inputs",
        examples=int(len(ref)),
        max_abs_diff=float(max(np.max(np.abs(a - b)) for a, b in zip(got, expected))),
        relative_diff=float(diff / norm) if norm > 0 else float(diff),
        agreement=agreement,
        accuracy=accuracy,
        reference_accuracy=reference_accuracy,
        within_tolerance=bool(within),
        strict=strict,
        file_bytes=runtimes.path_bytes(path),
        latency=artifact.latency(batch=1, repeats=repeats, warmup=warmup),
        runtime=artifact.runtime,
    )
    if not result.passed:
        raise ExportError(
            f"{label} does not compute what the model does: max abs diff "
            f"{result.max_abs_diff:.3g}, relative {result.relative_diff:.3g} on {result.examples} "
            f"{result.source} (tolerance atol={atol:g}, rtol={rtol:g}); nothing was kept."
        )
    return result


def _check_finite_outputs(label, expected, got, source):
    """Outputs holding NaN or inf compare as nothing: never report them as matching (strict or not)."""
    for who, outputs in (("the model", expected), (label, got)):
        bad = sum(int(a.size - np.count_nonzero(np.isfinite(a))) for a in outputs)
        if bad:
            total = sum(int(a.size) for a in outputs)
            raise ExportError(
                f"{label} could not be verified: {who} gives {bad} NaN or infinite output value"
                f"{'s' if bad != 1 else ''} of {total} on the {source}; nothing was kept: check the "
                f"model's weights and inputs (evaluate it) before exporting.")


# -- export ----------------------------------------------------------------------------------

@dataclass
class ExportResult:
    path: Path
    format: str
    quantize: str
    int8_io: bool
    lowered_layers: int  # LightLayers replaced by standard layer pairs
    calibration_examples: int  # training images used for int8 calibration (0 otherwise)
    verification: Verification

    @property
    def file_bytes(self) -> int:
        return self.verification.file_bytes

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "format": self.format,
            "quantize": self.quantize,
            "int8_io": self.int8_io,
            "file_bytes": self.file_bytes,
            "lowered_layers": self.lowered_layers,
            "calibration_examples": self.calibration_examples,
            "verification": self.verification.to_dict(),
        }


def _temporary_beside(path: Path, fmt) -> Path:
    """A temporary name that ``model_io``'s clean-up recognises (and removes when its run died)."""
    remove_stale_temporaries(path.parent)
    suffix = targets.get_target(fmt).suffix
    return path.with_name(f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.stem}{suffix}")


def _remove(path: Path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _move_into_place(tmp: Path, target: Path, fmt, inputs=()):
    """Rename ``tmp`` to ``target``; the ownership rule is checked again first (the folder may
    have changed since ``check_output``): only an earlier artefact of ``fmt`` is replaced."""
    check_owned(target, folder=targets.get_target(fmt).is_folder, inputs=inputs)
    if target.is_dir() and not target.is_symlink():  # a SavedModel replaced with --force
        trash = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(target, trash)
        os.replace(tmp, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, target)


def write_artifact(lowered, tmp: Path, fmt, options=None):
    """Write the lowered model as ``fmt`` at ``tmp`` with the target's writer (converters' prints held back)."""
    writer = targets.get_target(fmt).writer
    with runtimes.held_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        writer(lowered, tmp, options or {})


def _refuse_keras_file_of_in_place(model, fmt):
    """A subclassed or keras-hub model lowered in place is rebuilt from its class's config when a
    `.keras` file loads, which recreates the original layers, not the lowered ones."""
    target = targets.get_target(fmt)
    if target.keras_model and in_place(model) and light_layers(model):
        raise ExportError(
            f"format={target.choice} cannot hold the lowered '{model.name}' ({type(model).__name__}): loading rebuilds "
            f"its class, not the lowered layers; use format=litert or saved_model (they run without "
            f"lightcompress), or keep the converted .keras file (it loads once lightcompress is imported).")


def export_model(model, path, format, quantize="none", calibration=None, int8_io=False, *,
                 x=None, y=None, source=None, force=False, inputs=(),
                 calibration_count=DEFAULT_CALIBRATION, threads=DEFAULT_THREADS,
                 repeats=100, seed=0) -> ExportResult:
    """Lower ``model``, export it to ``path`` as ``format``, verify it in its runtime.

    ``x``/``y``: test images and labels to verify on (random inputs when None). ``calibration``
    (int8 only): training images, or a ``data.Prepared`` of which only ``x_train`` is read;
    ``calibration_count`` of them (seeded draw) are used. ``inputs``: files that must not be
    overwritten. Returns what was written and its verification; raises ExportError (and keeps
    nothing) when a float export does not match the model.
    """
    fmt = check_settings(format, quantize, int8_io)
    target = check_output(path, fmt, force=force, inputs=inputs)
    check_finite(model, f"not exported to {target}: ")
    arrays = calibration_images(calibration, calibration_count, seed) if quantize == "int8" else None
    options = converter_options(fmt, quantize, int8_io, arrays)
    _refuse_keras_file_of_in_place(model, fmt)
    lowered = lower_model(model)
    left = light_layers(lowered)
    if left:  # the table and the model disagree: never ship a file that needs lightcompress
        raise ExportError(f"layers {[layer.name for layer in left]} were not lowered; report this as a bug.")
    tmp = _temporary_beside(target, fmt)
    try:
        try:
            write_artifact(lowered, tmp, fmt, options)
        except ExportError:
            raise
        except Exception as err:  # noqa: BLE001 - converters raise many types; one line
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ExportError(f"exporting to {fmt} failed: {first}") from None
        verification = verify(tmp, model, x, y, source, strict=quantize == "none", threads=threads,
                              repeats=repeats, label=target.name)
        _move_into_place(tmp, target, fmt, inputs)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)
    return ExportResult(
        path=target,
        format=fmt,
        quantize=quantize,
        int8_io=bool(int8_io),
        lowered_layers=len(light_layers(model)),
        calibration_examples=0 if arrays is None else int(len(arrays[0])),
        verification=verification,
    )
