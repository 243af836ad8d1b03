"""`lightcompress convert`: replace factorisable layers with SVD-initialised LightLayers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .._deferred import deferred
from ..defaults import (CALIBRATION_BYTES, CONVERT_ALLOCATION_CHOICES, CONVERT_CALIBRATION_SAMPLES,
                        DEFAULT_CALIBRATION_SAMPLES, DEFAULT_CONV_MODE, DEFAULT_CONVERT_ALLOCATION, DEFAULT_MIN_PARAMS,
                        DEFAULT_MIN_SAVING, NO_DATA_ENERGY_FLOOR)
from ..factorization.methods import get_method
from . import options as o
from .library import flows, report

applies = deferred("lightcompress.flows.best_allocation", "applies")
rank_rule = deferred("lightcompress.planning", "rank_rule")

NAME = "convert"


def command(
    model: o.ModelPath,
    rank: Annotated[Optional[int], typer.Option("--rank", "-r", help="The same rank for every layer, clipped per layer to what saves parameters.")] = None,
    energy: Annotated[Optional[float], typer.Option(help="Per layer, the smallest rank keeping this fraction of spectral energy (e.g. 0.95).")] = None,
    ratio: Annotated[Optional[float], typer.Option(help="Global budget: converted layers keep about this fraction of their params (e.g. 0.3).")] = None,
    target_params: Annotated[Optional[float], typer.Option(help="Whole-model budget: keep about this fraction of all params (0.2 = 5x smaller).")] = None,
    target_macs: Annotated[float | None, typer.Option(help="Whole-model budget: keep about this fraction of the MACs per example (0.5 = half the compute); ranks bought by error removed per MAC.")] = None,
    target_latency: Annotated[float | None, typer.Option(help="Whole-model budget: keep about this fraction of the batch-1 latency in --runtime (0.5 = 2x faster). Each layer is timed as it is and per rank (cached), ranks are bought by error removed per ms, and the result is timed whole and re-planned while it misses.")] = None,
    plan: Annotated[Optional[Path], typer.Option("--plan", help="Apply a plan saved by compress (plan.json) instead of a rank rule.")] = None,
    include: o.Include = None,
    exclude: o.Exclude = None,
    min_params: o.MinParams = DEFAULT_MIN_PARAMS,
    conv_mode: o.ConvModeOpt = o.ConvMode(DEFAULT_CONV_MODE),
    min_saving: o.MinSaving = DEFAULT_MIN_SAVING,
    no_data_floor: o.NoDataFloor = NO_DATA_ENERGY_FLOOR,
    method: o.MethodOpt = None,
    calibration_samples: Annotated[Optional[int], typer.Option(
        "--calibration", show_default=False,
        help=f"Training images whose layer inputs calibrate the factors of a method that needs data (default: "
             f"{CONVERT_CALIBRATION_SAMPLES:,} layer by layer, fewer for large inputs: at most "
             f"{CALIBRATION_BYTES >> 20} MB of them; {DEFAULT_CALIBRATION_SAMPLES:,} for one pass).")] = None,
    allocation: Annotated[str, typer.Option(
        help="With --dataset, how --target-params / --target-macs ranks are chosen: "
             f"{' / '.join(CONVERT_ALLOCATION_CHOICES)}. error: each layer's output error on the calibration images, no model evaluated; sensitivity: each "
             "layer's loss per rank measured on held-out training images (cached); both: plan each way and keep "
             "the model whose outputs on the held-out images are closer to the original's (KL divergence); auto: "
             "both where measuring costs at most about a minute, else error.")] = DEFAULT_CONVERT_ALLOCATION,
    runtime: o.RuntimeOpt = None,
    threads: o.Threads = o.DEFAULT_THREADS,
    output: o.output_opt("<stem>.light.keras beside the input (.keras or .h5)") = None,
    data: o.Data = o.Data(),
    input_shape: o.InputShape = None,
    samples: Annotated[Optional[Path], typer.Option(
        "--samples", metavar="PATH",
        help="Without --dataset: unlabelled inputs the model sees in use (a folder of images, a .npy, or a .npz of "
             "inputs; uint8 images scaled to [0, 1]). The factors are calibrated on four fifths of them (data-aware, "
             "and budgets follow measured output error) and the outputs compared on the other fifth, instead of on "
             "random inputs.")] = None,
    synthesis: Annotated[bool, typer.Option(
        "--synthesis/--no-synthesis",
        help="Without --dataset or --samples: calibrate a model that has BatchNorm layers on inputs synthesised "
             "from their moving statistics (ZeroQ), and compare outputs on a held-out fifth of them; the report "
             "says how long it took. --no-synthesis plans on the weights alone and compares on random inputs.")] = True,
    force: o.Force = False,
    common: o.Common = o.Common(),
):
    """Replace Dense and Conv2D layers with SVD-initialised LightLayers and report what changed.

    Without --dataset the outputs are compared on random inputs and the factors are plain SVD;
    with it, the factors are data-aware (calibrated on --calibration training images, never test
    images, layer by layer on the already-factorised model where that costs under a minute or so;
    --method svd forces plain SVD, see --method), outputs are compared on the test images, and the
    report adds accuracy before and after. The budgets (--ratio, --target-params, --target-macs,
    --target-latency) need no data set: they buy ranks by weight error; with --dataset, by output
    error, and --target-params / --target-macs also by measured sensitivity (--allocation).
    Without --dataset no input size is needed either: the random inputs take the size the model
    declares (a keras-hub backbone's max_sequence_length) or --input-shape, and the report says which.

    Example: lightcompress convert model.h5 --rank 8
    """
    o.check_form(common.json_out, common.markdown_out)
    choices = dict(rank=rank, energy=energy, ratio=ratio, target_params=target_params, target_macs=target_macs,
                   target_latency=target_latency)
    rule = None if plan is not None and not any(v is not None for v in choices.values()) else rank_rule(**choices)
    timing = target_latency is not None or runtime is not None or threads != o.DEFAULT_THREADS
    held_out = applies(rule, allocation)  # a budget planned from held-out training images reads them all
    chosen = None if method is None else get_method(method)  # looked up once; None: the default for the data
    train_limit = None if chosen is None or chosen.needs_data or held_out else 1  # calibration, held-out images
    spec = data.optional(train_limit)
    settings = flows.ConvertSettings.make(  # every choice checked once, before any work
        rule, plan_file=plan, layer_filter=o.layer_filter(include, exclude, min_params, conv_mode, min_saving,
                                                          no_data_floor),
        method=chosen, calibration_samples=calibration_samples, runtime=o.runtime(runtime, threads) if timing else None,
        allocation=allocation, input_shape=input_shape, samples=samples, synthesise=synthesis, data=spec)
    stage = o.spinner(o.stderr())
    out = flows.convert_file(model, output, settings, data=spec, force=force, trust=common.trust_model, stage=stage,
                             on_step=stage.step)
    o.emit(out, report.conversion_sections, common.json_out, common.markdown_out)
