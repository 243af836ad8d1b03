"""`lightcompress baseline`: what pruning, clustering and QAT (tensorflow-model-optimization) buy
on this model, at the budget low-rank compression meets."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from .. import defaults as d
from .._deferred import deferred
from . import options as o
from .library import flows, report

required = deferred("lightcompress.data.sets", "required")

NAME = "baseline"


class Method(str, Enum):
    prune = "prune"
    cluster = "cluster"
    qat = "qat"


def command(
    model: o.ModelPath,
    method: Annotated[Method, typer.Option(help="prune (magnitude, polynomial schedule), cluster (weight "
                                                "clustering) or qat (quantisation-aware int8 LiteRT).")],
    target_params: Annotated[Optional[float], typer.Option(
        help="prune/cluster: keep about this fraction of the params (0.2 = 5x fewer non-zero params; "
             "clustering: the same storage).")] = None,
    epochs: o.Epochs = d.DEFAULT_EPOCHS,
    distill: Annotated[bool, typer.Option(help="Distil from the input model while fine-tuning (as compress does).")] = True,
    alpha: o.Alpha = d.DEFAULT_ALPHA,
    temperature: o.Temperature = d.DEFAULT_TEMPERATURE,
    include: o.Include = None,
    exclude: o.Exclude = None,
    min_params: Annotated[int, typer.Option(help="Leave kernels with fewer weights alone (as compress does).")] = d.DEFAULT_MIN_PARAMS,
    holdout: Annotated[int, typer.Option(help="Training images left out, as compress leaves them out for its sensitivity analysis.")] = d.DEFAULT_HOLDOUT,
    sizes: Annotated[bool, typer.Option(help="Export LiteRT float and int8 files of both models and time them.")] = True,
    threads: Annotated[int, typer.Option(help="Threads of the LiteRT interpreter for the latency figures.")] = 2,
    batch_size: o.BatchSize = d.DEFAULT_BATCH_SIZE,
    lr: o.LearningRate = d.DEFAULT_LEARNING_RATE,
    seed: o.Seed = 0,
    output: o.output_opt("<stem>.pruned.keras, <stem>.clustered.keras or <stem>.qat.int8.tflite beside the input") = None,
    data: o.TrainingData = o.TrainingData(),
    force: o.Force = False,
    common: o.Common = o.Common(),
):
    """Prune, cluster or quantise-aware-train the model with tfmot, for comparison with low-rank.

    The model is rebuilt in tf_keras (Keras 2) from a whitelist of standard layers, in a separate
    process, and checked to compute the same outputs; tfmot prunes it to the non-zero parameter
    count that compress --target-params keeps (or clusters it to the same storage), fine-tunes it
    with compress's schedule, and the weights come back into the original Keras 3 model, saved as
    a normal .keras file. The report gives honest sizes: non-zero params, gzip bytes, LiteRT float
    and int8 file bytes and measured batch-1 latency. --method qat fine-tunes quantisation-aware
    and writes an int8 .tflite, reported against post-training int8.

    Example: lightcompress baseline model.h5 --method prune --target-params 0.2 -d fashion_mnist
    """
    o.check_form(common.json_out, common.markdown_out)
    err = o.stderr()

    def on_event(event):
        if event.get("event") == "epoch":
            shown = ", ".join(f"{k} {v:.4f}" for k, v in event.items() if k in ("loss", "accuracy", "val_loss", "val_accuracy"))
            err.print(f"epoch {event['epoch']}/{event['epochs']} ({event['seconds']:.1f} s): {shown}", highlight=False)
        elif event.get("event") == "twin":
            err.print(f"tf_keras twin matches the model (max abs diff {event['max_abs_diff']:.2g})", highlight=False)

    spec = required(data.spec(seed))  # data first
    settings = flows.BaselineSettings.make(  # every choice checked once, before any work
        method.value, target_params=target_params,
        settings=o.fit_settings(epochs, batch_size, lr, d.DEFAULT_VALIDATION_SPLIT, d.DEFAULT_PATIENCE, seed),
        distill=distill, alpha=alpha, temperature=temperature, min_params=min_params,
        layer_filter=o.layer_filter(include, exclude, min_params, o.ConvMode.channel), holdout_size=holdout,
        sizes=sizes, threads=threads)
    out = flows.baseline_file(model, settings, output, data=spec, force=force, trust=common.trust_model,
                              on_event=on_event, stage=o.spinner(err))
    o.emit(out, report.baseline_sections, common.json_out, common.markdown_out)
