"""`lightcompress inspect`: where the parameters and MACs are, and how compressible each layer is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..defaults import DEFAULT_HOLDOUT
from . import options as o

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
    from ..io import models as model_io
    from .. import flows
    from .. import report
    from ..data.sets import required
    from ..errors import OptionError
    from ..validation import whole

    o.check_form(common.json_out, common.markdown_out)
    whole("holdout", holdout, 1)
    spec = data.optional()
    if sensitivity:
        required(spec)
    if conv_mode == o.ConvMode.auto:
        raise OptionError("inspect takes --conv-mode channel or spatial (auto picks per rank, not here).")
    where = o.runtime(runtime, threads) if latency else None
    if plot is not None:
        model_io.check_output(plot, force=force, inputs=[model], suffixes=(".png",))
    stage = o.spinner(o.stderr())
    with stage(f"loading {model}"):
        net = model_io.load_model(model, trust=common.trust_model)
    with stage("spectra"):
        out = flows.inspect_model(net, model, conv_mode.value, on_step=stage.step)
    sections = report.inspect_sections
    if spec is not None:
        from ..data.open import open_for_model
        from ..planning import read_plan

        with stage("calibrating: weight and output errors"):
            chosen = read_plan(net, plan) if plan is not None else None
            out["errors"] = flows.layer_errors(net, open_for_model(net, spec), conv_mode.value,
                                                  chosen)

        def sections(d, base=sections):
            return base(d) + report.errors_sections(d["errors"])
    elif plan is not None:
        raise OptionError("plan=... shows errors on calibration images; give data=NAME (a data set) too.")
    if sensitivity:
        with stage("sensitivity analysis"):
            out["sensitivity"] = flows.sensitivity_of(net, spec, holdout, conv_mode.value,
                                                           use_cache=not no_cache)

        def sections(d, base=sections):
            return base(d) + report.sensitivity_sections(d["sensitivity"])
    if latency:
        from ..deploy import latency as lat
        from ..planning import LayerFilter

        with stage("timing layers"):
            prof = lat.profile(net, LayerFilter(conv_mode="auto"), where, use_cache=not no_cache)
        out["latency"] = report.profile_dict(prof)

        def sections(d, before=sections):
            return before(d) + report.latency_sections(d["latency"])
    if plot:
        from ..report.plots import inspect_plot

        inspect_plot(out, plot, force=force)
    o.emit(out, sections, common.json_out, common.markdown_out)
    if plot:
        o.plot_saved(plot)
