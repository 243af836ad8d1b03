"""`lightcompress finetune`: fine-tune a (converted) model, optionally distilled from a teacher."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import defaults as d
from .._deferred import deferred
from . import options as o
from . import signals
from .library import RichProgress, flows, report

required = deferred("lightcompress.data.sets", "required")

NAME = "finetune"


def command(
    model: o.ModelPath,
    epochs: o.Epochs = d.DEFAULT_EPOCHS,
    batch_size: o.BatchSize = d.DEFAULT_BATCH_SIZE,
    lr: o.LearningRate = d.DEFAULT_LEARNING_RATE,
    val_split: o.ValSplit = d.DEFAULT_VALIDATION_SPLIT,
    patience: o.Patience = d.DEFAULT_PATIENCE,
    seed: o.Seed = 0,
    devices: o.Devices = "all",
    output: o.output_opt("<stem>.tuned.keras beside the input") = None,
    teacher: Annotated[Optional[Path], typer.Option(help="Distil from this model (usually the original before convert).")] = None,
    alpha: o.Alpha = d.DEFAULT_ALPHA,
    temperature: o.Temperature = d.DEFAULT_TEMPERATURE,
    data: o.TrainingData = o.TrainingData(),
    force: o.Force = False,
    common: o.Common = o.Common(),
):
    """Fine-tune a model (typically a converted one) on a data set; keep the best epoch.

    Saves the model and its training history (<output stem>.history.json). Ctrl-C stops and
    still saves the best completed epoch (or, before one completes, the input's weights).

    Example: lightcompress finetune model.light.keras --dataset fashion_mnist --epochs 3 -o tuned.keras
    """
    o.check_form(common.json_out, common.markdown_out)
    err = o.stderr()
    progress = RichProgress(err)
    spec = required(data.spec(seed))  # data first
    settings = flows.FinetuneSettings.make(  # every choice checked once, before any work
        o.fit_settings(epochs, batch_size, lr, val_split, patience, seed, devices), teacher=teacher,
        **(dict(alpha=alpha, temperature=temperature) if teacher is not None else {}))
    try:
        out = flows.finetune_file(model, output, settings, data=spec, force=force, trust=common.trust_model,
                                  callbacks=[progress], stage=o.spinner(err))
    finally:
        progress.stop()
    o.emit(out, report.finetune_sections, common.json_out, common.markdown_out)
    if out.get("interrupted"):
        kept = "the input's weights (no epoch completed)" if out.get("started_from_input") else "the best completed epoch"
        typer.echo(f"error: interrupted ({signals.name()}); saved {kept} to {out['output']}.", err=True)
        raise typer.Exit(signals.exit_code())
