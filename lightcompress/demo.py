"""The one-command demo: convert a trained sample model, fine-tune it briefly, compare.

Runs offline on the embedded digits data set. The sample model is the committed
``sample_models/digits_cnn.keras`` when the project is checked out; otherwise (an installed
wheel) the same model is trained here first, deterministically, in a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import data, model_io, zoo
from . import finetune as ft
from .comparison import compare_models
from .factorize import convert
from .plan import RankPolicy

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
    return model_io.load_model(files.original)


def run(folder, target_params=0.2, epochs=10, force=False, log=print, callbacks=()):
    """Returns (convert report data, finetune FitResult and evaluations, compare inputs)."""
    from . import report

    files = check_outputs(folder, force)
    original = sample_model(files, force, log)
    prepared = data.prepare(data.load_dataset("digits"), original)
    policy = RankPolicy(target_params=target_params, min_params=0, conv_mode="auto")
    result = convert(original, policy, prepared.x_test, "test images of digits")
    model_io.save_model(result.model, files.converted, force=force)
    converted_data = report.conversion_dict(result, files.original, files.converted,
                                            files.original.stat().st_size, files.converted.stat().st_size)
    converted_data["accuracy"] = report.before_after(ft.evaluate(original, prepared),
                                                     ft.evaluate(result.model, prepared))
    tuned = model_io.load_model(files.converted)
    before = ft.evaluate(tuned, prepared)
    fit = ft.finetune(tuned, prepared, ft.FitSettings(epochs=epochs, patience=3), callbacks=callbacks)
    after = ft.evaluate(tuned, prepared)
    model_io.save_model(tuned, files.tuned, force=force)
    tuned_data = report.finetune_dict(files.converted, files.tuned, prepared, fit, before, after)
    model_io.write_json(tuned_data, files.history, force=force)

    paths = [files.original, files.converted, files.tuned]
    compare_data = compare_models([model_io.load_model(p) for p in paths], paths, prepared,
                                  repeats=20, warmup=3)
    return converted_data, tuned_data, compare_data
