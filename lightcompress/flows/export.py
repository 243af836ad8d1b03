"""The ``export`` flow: lower, write, verify in the artefact's own runtime; on a model in memory
(``export_loaded``, what ``compress_file`` uses for ``settings.export``) or on a file (``export_file``)."""


from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import report
from ..data.dataset import Dataset
from ..data.sets import DataSpec
from ..deploy import export as ex
from ..deploy.timing import DEFAULT_THREADS
from ..errors import OptionError
from ..factorization.statistics import calibration_images
from ..validation import INT_MAX, number, whole
from .common import load_inputs, no_progress


INT8_NEEDS_DATA = "quantize='int8' calibrates on training images; give data=NAME (a data set)."


def check_options(fmt, quantize, int8_io, data, calibration, threads):
    """(format, calibration count) once every export option is checked, before any work."""
    fmt = ex.check_settings(fmt, quantize, int8_io)
    if quantize == "int8" and data is None:
        raise OptionError(INT8_NEEDS_DATA)
    number("threads", threads, 1, INT_MAX, whole_only=True)  # the interpreters take a C int
    return fmt, whole("calibration", ex.DEFAULT_CALIBRATION if calibration is None else calibration, 1)


def export_loaded(net, prepared: Dataset | None, fmt, target: Path, *, quantize="none", int8_io=False,
                  calibration=ex.DEFAULT_CALIBRATION, threads=DEFAULT_THREADS, force=False, inputs=(),
                  stage=no_progress) -> ex.ExportResult:
    """Write ``net`` to ``target`` as ``fmt`` and verify it: on the test images of ``prepared``
    (and their accuracy), else on random inputs. int8 calibrates on ``calibration`` training
    images of ``prepared`` (the draw ``compare_int8`` makes, never test images)."""
    x = y = where = None
    if prepared is not None:
        (x, y), where = prepared.arrays("test"), f"test images of {prepared.name}"
    images = calibration_images(prepared, calibration) if quantize == "int8" else None
    with stage(f"exporting to {fmt} and verifying"):
        return ex.export_model(net, target, fmt, quantize, calibration=images, int8_io=int8_io, x=x, y=y,
                               source=where, force=force, inputs=inputs, calibration_count=calibration,
                               threads=threads)


@dataclass(frozen=True)
class ExportSettings:
    """export's choices, checked once (``make``): the target's name, the quantisation, int8 input
    and output tensors, the training images int8 calibrates on, the verification's threads."""

    fmt: str
    quantize: str
    int8_io: bool
    calibration: int
    threads: int

    @classmethod
    def make(cls, fmt, *, quantize="none", int8_io=False, calibration=None, threads=DEFAULT_THREADS,
             data: DataSpec | None = None) -> ExportSettings:
        """The settings of an export with ``data`` (int8 needs it), refused before any work."""
        fmt, calibration = check_options(fmt, quantize, int8_io, data, calibration, threads)
        return cls(fmt=fmt, quantize=quantize, int8_io=bool(int8_io), calibration=calibration, threads=threads)


def export_file(source, settings: ExportSettings, output=None, *, data: DataSpec | None = None, force=False,
                trust=False, stage=no_progress) -> dict:
    """Lower the model in ``source``, write it as ``settings.fmt`` (an export target's name:
    ``deploy.targets``) to ``output`` (default beside the input), and verify the artefact in its own
    runtime (see ``export_loaded``); ``settings.threads``: the LiteRT / ONNX Runtime thread count of
    the verification's latency figure (the format decides the runtime)."""
    if settings.quantize == "int8" and data is None:  # what the settings were made with
        raise OptionError(INT8_NEEDS_DATA)
    source = Path(source)
    target = ex.check_output(output or ex.default_output(source, settings.fmt, settings.quantize), settings.fmt,
                             force=force, inputs=[source])
    net, prepared = load_inputs(source, data, trust, stage)
    result = export_loaded(net, prepared, settings.fmt, target, quantize=settings.quantize, int8_io=settings.int8_io,
                           calibration=settings.calibration, threads=settings.threads, force=force, inputs=[source],
                           stage=stage)
    return report.export_dict(source, result, prepared)
