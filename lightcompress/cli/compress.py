"""`lightcompress compress`: hit a size budget with the least accuracy lost."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import Progress

from .. import defaults as d
from .._deferred import deferred
from ..deploy.targets import either, export_choices
from . import options as o
from .library import RichProgress, flows, model_io, plots, report

CompressSettings = deferred("lightcompress.flows.compress", "CompressSettings")
budget_line = deferred("lightcompress.report.convert", "budget_line")
plan_section = deferred("lightcompress.report.convert", "plan_section")
render = deferred("lightcompress.report.render", "render")
required = deferred("lightcompress.data.sets", "required")

NAME = "compress"


def command(
    model: o.ModelPath,
    target_params: Annotated[Optional[float], typer.Option(help="Keep about this fraction of the model's params (0.2 = 5x smaller).")] = None,
    target_macs: Annotated[Optional[float], typer.Option(help="Keep about this fraction of the MACs per example.")] = None,
    target_latency: Annotated[Optional[float], typer.Option(help="Keep about this fraction of the batch-1 latency measured in --runtime (0.5 = 2x faster).")] = None,
    max_drop: Annotated[Optional[float], typer.Option(help="Find the smallest model losing at most this many accuracy points on held-out training images (searched over --trials budgets). If none does, the model with the smallest drop is saved and the report says the limit was missed (JSON: goal.met false).")] = None,
    allocation: Annotated[str, typer.Option(help="How ranks are chosen for the budget: sensitivity (each layer's loss per rank measured on --holdout training images, one model evaluation per layer and rank, cached) or error (each layer's truncation error, its output error on the --calibration images with a data-aware --method; no model evaluated, much faster).")] = d.DEFAULT_ALLOCATION,
    epochs: Annotated[Optional[int], typer.Option(help="Most fine-tuning epochs (per trial with --max-drop); training stops "
                                                       "earlier once the held-out training slice stops improving. Default: "
                                                       f"{d.DEFAULT_COMPRESS_EPOCHS}, and with --target-params beyond 10x one more "
                                                       f"per unit of the factor above 10, at most {d.MOST_COMPRESS_EPOCHS} (20x: 15).",
                                                  show_default=False)] = None,
    distill: Annotated[bool, typer.Option(help="Distil from the original model while fine-tuning.")] = True,
    alpha: o.Alpha = d.DEFAULT_ALPHA,
    temperature: o.Temperature = d.DEFAULT_TEMPERATURE,
    rank_multiple: Annotated[int, typer.Option(help="Round ranks to a multiple of this (runtimes like 8).")] = 1,
    conv_mode: o.ConvModeOpt = o.ConvMode(d.DEFAULT_CONV_MODE),
    min_saving: o.MinSaving = d.DEFAULT_MIN_SAVING,
    method: o.MethodOpt = None,
    calibration_samples: o.CalibrationSamples = d.DEFAULT_CALIBRATION_SAMPLES,
    include: o.Include = None,
    exclude: o.Exclude = None,
    min_params: o.MinParams = d.DEFAULT_MIN_PARAMS,
    holdout: Annotated[int, typer.Option(help="Training images held out to judge sensitivity (never test images).")] = d.DEFAULT_HOLDOUT,
    trials: Annotated[int, typer.Option(help="With --max-drop: budgets tried (each fine-tuned, unless its plan is one already tried).")] = 4,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Where sensitivity results are cached.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute the sensitivity analysis.")] = False,
    batch_size: o.BatchSize = d.DEFAULT_BATCH_SIZE,
    lr: Annotated[Optional[float], typer.Option("--lr", show_default=False, help=(
        f"Peak learning rate of Adam (cosine decay to 5% of it). Default: {d.DEFAULT_LEARNING_RATE:g}, and "
        f"{d.LONG_BUDGET_LEARNING_RATE:g} with --target-params beyond 10x (the longer epoch budget)."))] = None,
    seed: o.Seed = 0,
    devices: o.Devices = "all",
    output: o.output_opt("<stem>.compressed.keras beside the input") = None,
    data: o.TrainingData = o.TrainingData(),
    runtime: o.RuntimeOpt = None,
    threads: o.Threads = o.DEFAULT_THREADS,
    allow_slower: Annotated[bool, typer.Option("--allow-slower", help="Allow factorisations measured slower than the layer they replace (skips the per-layer timing).")] = False,
    export: Annotated[Optional[str], typer.Option(help="Also write a verified deployable file beside the model: "
                                                       f"{either(list(export_choices()))}.")] = None,
    repeats: Annotated[int, typer.Option(help="Timed calls per latency figure in the final report.")] = 30,
    plot: o.PlotOpt = None,
    force: o.Force = False,
    common: o.Common = o.Common(),
):
    """Hit a size or latency budget with the least accuracy lost (sensitivity, allocation, distillation).

    Measures each layer's accuracy cost per rank on held-out training images (or, with
    --allocation error, takes each layer's truncation error instead) and its latency per rank in
    --runtime (both cached), allocates ranks for the budget without choosing any
    factorisation measured slower than the layer it replaces (unless --allow-slower), converts,
    fine-tunes with distillation from the original, and prints the compare report of the
    original against the result. Saves the model and the plan
    (<output stem>.plan.json; convert --plan applies it again).

    Example: lightcompress compress model.h5 --dataset fashion_mnist --target-params 0.2
    """
    o.check_form(common.json_out, common.markdown_out)

    spec = required(data.spec(seed))  # data first

    # every setting made (and checked) once, before any progress display; the flow trusts them
    epochs = d.compress_epochs(target_params) if epochs is None else epochs
    lr = d.compress_learning_rate(target_params) if lr is None else lr
    settings = CompressSettings.make(
        target_params=target_params, target_macs=target_macs, target_latency=target_latency, max_drop=max_drop,
        method=method, allocation=allocation, runtime=runtime, threads=threads, export=export,
        settings=o.fit_settings(epochs, batch_size, lr, d.DEFAULT_VALIDATION_SPLIT, d.DEFAULT_PATIENCE, seed, devices),
        distill=distill, alpha=alpha, temperature=temperature,
        layer_filter=o.layer_filter(include, exclude, min_params, conv_mode, min_saving), rank_multiple=rank_multiple,
        holdout_size=holdout, trials=trials, allow_slower=allow_slower, calibration_samples=calibration_samples,
        cache_dir=cache_dir, use_cache=not no_cache)
    if plot is not None:
        model_io.check_output(plot, force=force, inputs=[model], suffixes=(".png",))
    err = o.stderr()
    first = "sensitivity analysis" if allocation == "sensitivity" else "error allocation (no sensitivity analysis)"
    heading = (f"compress {model}: " + ", ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in settings.goal._given())
               + f"; {first}, then the rank plan, then fine-tuning, then the comparison")
    progress = RichProgress(err)
    steps = "sensitivity" if allocation == "sensitivity" else "timing"  # what on_step follows
    with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(steps, total=None)

        said, tenths = [], {}

        def on_step(done, total, name):  # the first step comes once every option has been checked
            if not said:
                said.append(err.print(heading, highlight=False, markup=False))
            bar.update(task, completed=done, total=total, description=f"{steps}: {name}")
            tenth = 10 * done // total if total else None
            if not err.is_terminal and tenth is not None and tenths.get(steps) != tenth:  # a log: a line per tenth
                tenths[steps] = tenth
                err.print(f"{steps}: {done}/{total} ({name})", highlight=False, markup=False, soft_wrap=True)

        def on_estimate(line):  # before any long work, in a log as on a terminal
            if not said:
                said.append(err.print(heading, highlight=False, markup=False))
            err.print(line, highlight=False, markup=False, soft_wrap=True)  # one line, whatever the width

        def show_plan(plan):  # before fine-tuning starts, on the progress channel (stdout: the report)

            bar.update(task, visible=False)
            section = plan_section(f"plan ({plan.policy}, {plan.method}), before fine-tuning",
                                   plan.to_dict()["layers"])
            section.lines.extend(plan.notes + ([budget_line(plan.budget)] if plan.budget else []))
            render([section], err)

        try:
            out = flows.compress_file(
                model, output, settings, data=spec, force=force, trust=common.trust_model, repeats=repeats,
                callbacks=[progress], stage=o.spinner(err), on_step=on_step, on_estimate=on_estimate,
                warn=lambda m: err.print(f"warning: {m}", highlight=False, markup=False), on_plan=show_plan,
                on_trial=lambda t: err.print(
                    f"trial: keep {t.target:.3f} -> held-out drop {t.drop_points:.2f} pts", highlight=False))
        finally:
            progress.stop()
    if plot:
        plots.compare_plot(out["compare"], plot, force=force)
    o.emit(out, report.compress_sections, common.json_out, common.markdown_out)
    if plot:
        o.plot_saved(plot)
