"""`lightcompress export`: a verified artefact (.keras, SavedModel, .tflite, .onnx: an export
target, ``deploy.targets``) that runs without lightcompress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..defaults import DEFAULT_CALIBRATION
from ..deploy import targets
from . import options as o
from .library import flows, report

NAME = "export"


def _format_help() -> str:
    """keras (lowered .keras), saved_model (folder), litert (.tflite), onnx (.onnx): from the registry."""
    return ", ".join(f"{t.choice} ({t.summary or t.suffix})" for t in targets.targets()) + "."


def _output_help() -> str:
    named = []
    for t in targets.targets():
        name = t.default_name("<stem>") + ("/" if t.is_folder else "")
        if len(t.quantizations) > 1:
            name += f" ({t.default_name('<stem>', t.quantizations[-1])} when quantised)"
        named.append(name)
    return f"Default beside the input: {', '.join(named)}."


def _quantize_help() -> str:
    return "; ".join(f"{t.choice} only: {t.quantize_help}" for t in targets.targets() if len(t.quantizations) > 1) + "."


def command(
    model: o.ModelPath,
    format: Annotated[str, typer.Option("--format", "-f", help=_format_help())],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help=_output_help())] = None,
    quantize: Annotated[str, typer.Option(help=_quantize_help())] = "none",
    int8_io: Annotated[
        bool, typer.Option("--int8-io", help="With --quantize int8: int8 input and output tensors too.")
    ] = False,
    calibration: Annotated[
        int, typer.Option(help="Training images drawn for int8 calibration (never test images).")
    ] = DEFAULT_CALIBRATION,
    data: o.Data = o.Data(),
    threads: Annotated[int, typer.Option(help="Threads of the LiteRT / ONNX runtime for the latency figure.")] = o.DEFAULT_THREADS,
    force: o.Force = False,
    common: o.Common = o.Common(),
):
    """Write a deployable artefact that runs without lightcompress, and verify it.

    LightLayers are lowered to the standard Dense/Conv2D pairs they compute; the artefact is
    then run in its own runtime and compared with the model: on the test images with
    --dataset (plus accuracy), else on random inputs. A float export that does not match is
    not kept. int8 calibrates on training images of --dataset.

    Example: lightcompress export model.light.keras --format litert --quantize int8 -d fashion_mnist
    """
    o.check_form(common.json_out, common.markdown_out)
    spec = data.optional()
    settings = flows.ExportSettings.make(format, quantize=quantize, int8_io=int8_io, calibration=calibration,
                                         threads=threads, data=spec)  # every choice checked once, before any work
    out = flows.export_file(model, settings, output, data=spec, force=force, trust=common.trust_model,
                            stage=o.spinner(o.stderr()))
    o.emit(out, report.export_sections, common.json_out, common.markdown_out)
