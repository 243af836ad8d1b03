"""`lightcompress inspect`: where the parameters and MACs are, and how compressible each layer is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..defaults import DEFAULT_HOLDOUT
from . import options as o
from .library import flows, model_io, plots, report

NAME = "inspect"


def command(
    model: o.ModelPath,
    conv_mode: Annotated[o.ConvMode, typer.Option(help="Which Conv2D matrix the spectrum is taken of: channel or spatial.")] = o.ConvMode.channel,
    plot: o.PlotOpt = None,
    sensitivity: Annotated[bool, typer.Option("--sensitivity", help="Also measure each layer's accuracy cost per rank on --dataset.")] = False,
    data: o.Data = o.Data(),
    plan: Annotated[Optional[Path], typer.Option("--plan", help="With --dataset: errors at this plan's ranks (plan.json).")] = None,
    holdout: Annotated[int, typer.Option(help="Training images used for --sensitivity.")] = DEFAULT_HOLDOUT,
    latency: Annotated[bool, typer.Option("--latency", help="Also time each layer alone, as it is and at each rank, in --runtime.")] = False,
    runtime: o.RuntimeOpt = None,
    threads: o.Threads = o.DEFAULT_THREADS,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute the sensitivity analysis.")] = False,
    force: o.Force = False,
    common: o.Common = o.Common(),
):
    """Where the parameters and MACs are, and how compressible each factorisable layer is.

    For each layer: output shape, params, MACs per example; for factorisable layers also the ranks
    keeping 90/95/99% of the spectral energy, the break-even rank, and the cost at 95%. With
    --dataset, also the weight-space and output-space errors of plain SVD and of data-aware
    factors at the chosen rank (--plan's, else the 95% energy rank). Changes nothing.

    Example: lightcompress inspect model.h5 --plot spectra.png
    """
    o.check_form(common.json_out, common.markdown_out)
    spec = data.optional()
    where = o.runtime(runtime, threads) if latency else None
    if plot is not None:
        model_io.check_output(plot, force=force, inputs=[model], suffixes=(".png",))
    out = flows.inspect_file(model, conv_mode=conv_mode.value, data=spec, plan_file=plan, sensitivity=sensitivity,
                             holdout=holdout, runtime=where, use_cache=not no_cache, trust=common.trust_model,
                             stage=o.spinner(o.stderr()))
    if plot:
        plots.inspect_plot(out, plot, force=force)
    o.emit(out, report.inspect_sections, common.json_out, common.markdown_out)
    if plot:
        o.plot_saved(plot)
