"""The one-command demo: convert a trained sample model, fine-tune it briefly, compare.

Runs offline on the embedded digits data set. The sample model is the committed
``sample_models/digits_cnn.keras`` when the project is checked out; otherwise (an installed
wheel) the same model is trained here first, deterministically, in a few seconds. The stages are
the library's own flows (``pipeline``), run on files in the demo folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import data, model_io, pipeline, report, zoo
from . import training as ft
from .planning import LayerFilter, TargetParams
from .planning.filters import check_whole

SAMPLE = Path(__file__).resolve().parents[1] / "sample_models" / "digits_cnn.keras"


@dataclass
class DemoFiles:
    original: Path
    converted: Path
    tuned: Path
    history: Path


def files_in(folder) -> DemoFiles:
    folder = Path(folder)
    return DemoFiles(folder / "digits_cnn.keras", folder / "digits_cnn.light.keras",
                     folder / "digits_cnn.tuned.keras", folder / "digits_cnn.tuned.history.json")


def check_outputs(folder, force) -> DemoFiles:
    """Refuse to overwrite an earlier demo's files unless forced, before any work starts."""
    files = files_in(folder)
    for path in (files.original, files.converted, files.tuned, files.history):
        model_io.check_output(path, force=force, suffixes=(path.suffix,))
    return files


def sample_model(files: DemoFiles, force, log):
    """The trained sample model, copied into the demo folder (trained here if not shipped)."""
    if SAMPLE.exists():
        model = model_io.load_model(SAMPLE)
        log(f"sample model: {SAMPLE}")
    else:
        log("sample model not shipped with this install: training it on digits (a few seconds)")
        model = zoo.dense_heavy_cnn((8, 8, 1))
        zoo.train(model, data.prepare(data.load_dataset("digits"), model), epochs=30, batch_size=32)
    model_io.save_model(model, files.original, force=force)


def run(folder, target_params=0.2, epochs=10, force=False, log=print, callbacks=(), stage=pipeline._quiet) -> dict:
    """Convert, fine-tune and compare the sample model in ``folder``: the `demo` report dict
    (its ``convert``, ``finetune`` and ``compare`` parts are those commands' reports)."""
    rule = TargetParams(target_params)  # every option is checked before any file is written
    check_whole("epochs", epochs, 1)
    files = check_outputs(folder, force)
    sample_model(files, force, log)
    digits = data.DataSpec("digits")
    converted = pipeline.convert_file(files.original, files.converted, rule=rule,
                                      layer_filter=LayerFilter(min_params=0, conv_mode="auto"),
                                      data=digits, force=force, stage=stage)
    tuned = pipeline.finetune_file(files.converted, files.tuned, data=digits,
                                   settings=ft.FitSettings(epochs=epochs, patience=3), force=force,
                                   callbacks=callbacks, stage=stage)
    compared, _ = pipeline.compare_files([files.original, files.converted, files.tuned], data=digits,
                                         repeats=20, warmup=3, stage=stage)
    return {"schema": report.SCHEMA_VERSION, "report": "demo", "folder": str(folder),
            "convert": converted, "finetune": tuned, "compare": compared}


def sections(out: dict) -> list:
    return (report.conversion_sections(out["convert"]) + report.finetune_sections(out["finetune"])
            + report.compare_sections(out["compare"]))
