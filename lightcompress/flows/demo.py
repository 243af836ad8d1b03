"""The one-command demo: compress a trained sample model, ship it, and compare, offline.

The sample model is the committed ``sample_models/digits_cnn.keras`` when the project is checked
out; otherwise (an installed wheel) the same model is trained here first, deterministically, in a
few seconds. The data is the embedded digits set. The stages are the library's own flows
(``compress_file`` with its sensitivity analysis, allocation, latency guard,
distillation and a verified int8 LiteRT export), run on files in the demo folder; the comparison
is the four-column int8 compare (original and compressed, each float and int8, timed in turns).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data import sets
from ..io import models as model_io
from . import zoo
from .common import no_progress
from .compress import CompressSettings, compress_file
from .. import report
from ..training import finetune as ft
from ..validation import whole as check_whole

SAMPLE = Path(__file__).resolve().parents[2] / "sample_models" / "digits_cnn.keras"  # the checkout's
EXPORT = "litert-int8"


@dataclass
class DemoFiles:
    original: Path
    compressed: Path
    plan: Path
    deployable: Path


def files_in(folder) -> DemoFiles:
    folder = Path(folder)
    return DemoFiles(folder / "digits_cnn.keras", folder / "digits_cnn.compressed.keras",
                     folder / "digits_cnn.compressed.plan.json", folder / "digits_cnn.compressed.int8.tflite")


def check_outputs(folder, force) -> DemoFiles:
    """Refuse to overwrite an earlier demo's files unless forced, before any work starts."""
    files = files_in(folder)
    for path in (files.original, files.compressed, files.plan, files.deployable):
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
        zoo.train(model, sets.prepare(sets.load_dataset("digits"), model), epochs=30, batch_size=32)
    model_io.save_model(model, files.original, force=force)


def verdict(compared: dict) -> str:
    """One plain sentence on speed: the compare report's headline (the compressed model against
    the original; int8 against int8 when int8 is the target), faster or slower only beyond the
    noise of both timings."""
    headline = compared["headline"]
    where = compared["models"][headline["model"]].get("runtime", "")
    batches = {word: " and ".join(str(v["batch"]) for v in headline["latency"] if v["word"] == word)
               for word in ("faster", "slower", "same within noise")}
    if batches["slower"]:
        conclusion = f"the compressed model is smaller, but slower in {where} at batch {batches['slower']}"
    elif batches["faster"] and batches["same within noise"]:
        conclusion = (f"the compressed model is faster in {where} at batch {batches['faster']}, the same within "
                      f"noise at batch {batches['same within noise']}")
    elif batches["faster"]:
        conclusion = f"the compressed model is faster in {where}"
    else:
        conclusion = f"this machine shows no speed-up beyond the noise in {where}: the model is smaller, not faster here"
    return f"{headline['text']}. {conclusion[0].upper()}{conclusion[1:]}."


def run(folder, target_params=0.2, epochs=10, force=False, log=print, callbacks=(), stage=no_progress,
        runtime=None) -> dict:
    """Compress, export and compare the sample model in ``folder``: the `demo` report dict (its
    ``compress`` part is the compress command's report, with the export)."""
    check_whole("epochs", epochs, 1)  # every option is checked before any file is written
    settings = CompressSettings.make(target_params=target_params, settings=ft.FitSettings(epochs=epochs, patience=3),
                                     runtime=runtime, export=EXPORT, use_cache=False)
    files = check_outputs(folder, force)
    sample_model(files, force, log)
    compressed = compress_file(files.original, files.compressed, settings, data=sets.DataSpec("digits"), force=force,
                               stage=stage, callbacks=callbacks, repeats=100)
    return {"schema": report.SCHEMA_VERSION, "report": "demo", "folder": str(folder), "compress": compressed,
            "verdict": verdict(compressed["compare"])}


def sections(out: dict) -> list:
    sections = report.compress_sections(out["compress"])
    sections.append(report.Section(lines=[out["verdict"], f"files in {out['folder']}"]))
    return sections
