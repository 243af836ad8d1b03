"""`lightcompress tradeoffs`: every candidate a user would weigh on one model, in one table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import defaults as d
from .._deferred import deferred
from . import options as o
from .library import RichProgress, flows, report

flow = deferred("lightcompress.flows.tradeoffs")
required = deferred("lightcompress.data.sets", "required")

NAME = "tradeoffs"


def command(
    model: o.ModelPath,
    budgets: Annotated[str, typer.Option(help="Fractions of the params kept, separated by commas: one low-rank "
                                              "(and prune and cluster) candidate each.")] = ",".join(
        f"{b:g}" for b in d.DEFAULT_TRADEOFF_BUDGETS),
    epochs: Annotated[int, typer.Option(help="Most fine-tuning epochs, the same for every candidate.")] = d.DEFAULT_EPOCHS,
    baselines: Annotated[Optional[bool], typer.Option(
        "--baselines/--no-baselines", help="Also prune and cluster at the same budgets with tfmot. Default: when "
                                           "the baseline extra is installed.")] = None,
    max_drop: Annotated[float, typer.Option(help="The recommendation picks among candidates losing at most this "
                                                 "many accuracy points.")] = d.DEFAULT_TRADEOFF_MAX_DROP,
    work_dir: Annotated[Optional[Path], typer.Option(help="Folder where each finished candidate is kept; the same "
                                                          "command finds them there again and continues. Default: "
                                                          "<stem>.tradeoffs/ beside the plot (so beside the model).")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="PNG of accuracy against file size and against "
                                                              "latency. Default: <stem>.tradeoffs.png beside the "
                                                              "model.")] = None,
    runtime: o.RuntimeOpt = None,
    threads: o.Threads = o.DEFAULT_THREADS,
    repeats: Annotated[int, typer.Option(help="Timed calls per latency figure (median taken).")] = 30,
    distill: Annotated[bool, typer.Option(help="Distil from the original while fine-tuning (low-rank, prune, "
                                               "cluster).")] = True,
    holdout: Annotated[int, typer.Option(help="Training images held out to judge sensitivity (never test "
                                              "images), left out of every candidate's fine-tuning.")] = d.DEFAULT_HOLDOUT,
    method: o.MethodOpt = None,
    allow_slower: Annotated[bool, typer.Option("--allow-slower", help="Low-rank: allow factorisations measured "
                                                                      "slower than the layer they replace (skips the "
                                                                      "per-layer timing).")] = False,
    batch_size: o.BatchSize = d.DEFAULT_BATCH_SIZE,
    lr: o.LearningRate = d.DEFAULT_LEARNING_RATE,
    seed: o.Seed = 0,
    devices: o.Devices = "all",
    data: o.TrainingData = o.TrainingData(),
    force: Annotated[bool, typer.Option("--force", help="Overwrite the plot if it exists.")] = False,
    common: o.Common = o.Common(),
):
    """Weigh low-rank, int8, low-rank + int8, pruning and clustering on your model, in one table.

    Makes each candidate: the original, its int8 LiteRT file (calibrated on training images),
    compress at each of --budgets and each of those exported int8, and with the baseline extra
    (tensorflow-model-optimization) pruning and clustering at the same budgets, every one
    fine-tuned for the same --epochs. Measures each alike (accuracy on the test images, params,
    file bytes, latency at batch 1 and 32 in --runtime for Keras models, in the LiteRT
    interpreter for .tflite files), and prints one table, the Pareto fronts and a one-sentence
    recommendation; draws accuracy against size and latency into --plot. Each finished candidate
    is kept in --work-dir as it completes: a stopped run, started again with the same options,
    continues where it stopped.

    Example: lightcompress tradeoffs model.h5 -d fashion_mnist --budgets 0.5,0.2 --epochs 3
    """
    o.check_form(common.json_out, common.markdown_out)
    spec = required(data.spec(seed))  # data first
    settings = flows.TradeoffsSettings.make(  # every choice checked once, before any work
        budgets=budgets, baselines=baselines, max_drop=max_drop, runtime=o.runtime(runtime, threads),
        settings=o.fit_settings(epochs, batch_size, lr, d.DEFAULT_VALIDATION_SPLIT, d.DEFAULT_PATIENCE, seed, devices),
        repeats=repeats, distill=distill, holdout_size=holdout, method=method, allow_slower=allow_slower)
    plot = plot or flow.default_plot(model)
    work = work_dir or flow.default_work_dir(model, plot)
    err = o.stderr()
    stages = o.spinner(err)
    progress = RichProgress(err)

    def say(text):  # not wrapped: a log's lines stay whole
        err.print(text, highlight=False, markup=False, soft_wrap=True)

    def on_event(event):  # the baseline worker's epochs
        if event.get("event") == "epoch":
            say(f"epoch {event['epoch']}/{event['epochs']} ({event['seconds']:.1f} s): loss {event['loss']:.4f}")

    try:
        out = flows.tradeoffs_file(
            model, settings, data=spec, work_dir=work, plot=plot, trust=common.trust_model, force=force,
            stage=stages, callbacks=[progress], on_step=stages.step, on_event=on_event, log=say,
            warn=lambda m: say(f"warning: {m}"))
    except KeyboardInterrupt:
        if work.is_dir():
            say(f"note: the candidates finished so far are kept in {work}; the same command continues from there")
        raise
    finally:
        progress.stop()
    o.emit(out, report.tradeoffs_sections, common.json_out, common.markdown_out)
    o.plot_saved(plot)
