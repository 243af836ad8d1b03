"""The ``export`` flow on files: lower, write, verify in the artefact's own runtime."""


from __future__ import annotations

from pathlib import Path

from ..deploy.timing import DEFAULT_THREADS
from .. import report
from ..validation import INT_MAX, number, whole
from ..data.sets import DataSpec
from .common import load_inputs, no_progress


def export_file(source, fmt, output=None, *, quantize="none", int8_io=False, data: DataSpec | None = None,
                calibration=None, threads=DEFAULT_THREADS, force=False, trust=False, stage=no_progress) -> dict:
    """Lower the model in ``source``, write it as ``fmt`` (an export target's name: ``deploy.targets``) to
    ``output`` (default beside the input), and verify the artefact in its own runtime: on the test
    images of ``data`` (and its accuracy), else on random inputs. int8 calibrates on training
    images of ``data`` (never test images). ``threads``: the LiteRT / ONNX Runtime thread count
    of the verification's latency figure (the format decides the runtime)."""
    from ..deploy import export as ex
    from ..errors import OptionError

    source = Path(source)
    fmt = ex.check_settings(fmt, quantize, int8_io)
    if quantize == "int8" and data is None:
        raise OptionError("quantize='int8' calibrates on training images; give data=NAME (a data set).")
    number("threads", threads, 1, INT_MAX, whole_only=True)  # the interpreters take a C int
    calibration = whole("calibration", ex.DEFAULT_CALIBRATION if calibration is None else calibration, 1)
    target = ex.check_output(output or ex.default_output(source, fmt, quantize), fmt, force=force, inputs=[source])
    net, prepared = load_inputs(source, data, trust, stage)
    x = y = where = None
    if prepared is not None:
        (x, y), where = prepared.arrays("test"), f"test images of {prepared.name}"
    with stage(f"exporting to {fmt} and verifying"):
        result = ex.export_model(net, target, fmt, quantize, calibration=prepared.arrays("train")[0] if quantize == "int8" else None,
                                 int8_io=int8_io, x=x, y=y, source=where, force=force, inputs=[source],
                                 calibration_count=calibration, threads=threads)
    return report.export_dict(source, result, prepared)

