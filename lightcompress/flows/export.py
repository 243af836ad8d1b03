"""The ``export`` flow: lower, write, verify in the artefact's own runtime; on a model in memory
(``export_loaded``, what ``compress_file`` uses for ``settings.export``) or on a file (``export_file``)."""


from __future__ import annotations

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


def check_options(fmt, quantize, int8_io, data, calibration, threads):
    """(format, calibration count) once every export option is checked, before any work."""
    fmt = ex.check_settings(fmt, quantize, int8_io)
    if quantize == "int8" and data is None:
        raise OptionError("quantize='int8' calibrates on training images; give data=NAME (a data set).")
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


def export_file(source, fmt, output=None, *, quantize="none", int8_io=False, data: DataSpec | None = None,
                calibration=None, threads=DEFAULT_THREADS, force=False, trust=False, stage=no_progress) -> dict:
    """Lower the model in ``source``, write it as ``fmt`` (an export target's name: ``deploy.targets``) to
    ``output`` (default beside the input), and verify the artefact in its own runtime (see
    ``export_loaded``). ``threads``: the LiteRT / ONNX Runtime thread count of the verification's
    latency figure (the format decides the runtime)."""
    source = Path(source)
    fmt, calibration = check_options(fmt, quantize, int8_io, data, calibration, threads)
    target = ex.check_output(output or ex.default_output(source, fmt, quantize), fmt, force=force, inputs=[source])
    net, prepared = load_inputs(source, data, trust, stage)
    result = export_loaded(net, prepared, fmt, target, quantize=quantize, int8_io=int8_io, calibration=calibration,
                           threads=threads, force=force, inputs=[source], stage=stage)
    return report.export_dict(source, result, prepared)
