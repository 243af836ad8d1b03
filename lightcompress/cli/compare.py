"""`lightcompress compare`: models side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options as o
from .library import flows, model_io, plots, report

NAME = "compare"


def command(
    models: Annotated[list[Path], typer.Argument(help="Two or more models (.keras, .h5) or exported artefacts (.tflite, .onnx, SavedModel folder); the first is the reference.")],
    data: o.Data = o.Data(),
    repeats: Annotated[int, typer.Option(help="Timed inference calls per latency figure (median taken).")] = 30,
    warmup: Annotated[int, typer.Option(help="Untimed calls before timing.")] = 5,
    batch: Annotated[int, typer.Option(help="The larger batch size for latency (batch 1 is always measured).")] = 32,
    runtime: o.RuntimeOpt = None,
    threads: o.Threads = o.DEFAULT_THREADS,
    int8: Annotated[bool, typer.Option("--int8", help="Two Keras models (original, compressed), each exported as float and int8 LiteRT to a temporary folder (int8 calibrated on training images of --dataset): the four side by side, all timed in the LiteRT interpreter with --threads.")] = False,
    plot: o.PlotOpt = None,
    force: o.Force = False,
    common: o.Common = o.Common(),
):
    """Side by side: params, MACs, bytes, measured latency, and with --dataset accuracy and agreement.

    Keras models are timed in --runtime (LiteRT by default); .tflite, .onnx and SavedModel
    artefacts in their own runtime. All models are timed in turns at each batch size; each
    latency is a median with its IQR, and a model is called faster or slower than the first only
    beyond the noise of both medians. --int8: original float, original int8, compressed float and
    compressed int8 side by side.

    Example: lightcompress compare base.h5 r4.keras r8.keras --dataset fashion_mnist --plot tradeoff.png

    Example: lightcompress compare base.h5 base.compressed.keras --int8 --dataset fashion_mnist
    """
    o.check_form(common.json_out, common.markdown_out)
    where = o.runtime(runtime, threads)
    if plot is not None:
        model_io.check_output(plot, force=force, inputs=models, suffixes=(".png",))
    # int8 calibrates on training images; otherwise none are read
    spec = data.optional(None if int8 else 1)
    settings = flows.CompareSettings.make(batches=(1, batch), repeats=repeats, warmup=warmup, runtime=where, int8=int8,
                                          data=spec)  # every choice checked once, before any model is loaded
    out, nets = flows.compare_files(models, settings, data=spec, trust=common.trust_model, stage=o.spinner(o.stderr()))
    if plot and out["layers"]:
        plots.compare_plot(out, plot, spectra=flows.chosen_spectra(nets, out["layers"]), force=force)
    o.emit(out, report.compare_sections, common.json_out, common.markdown_out)
    if plot:
        o.plot_saved(plot, None if out["layers"] else "these models have no layers in common to plot")
