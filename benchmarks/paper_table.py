"""Reproduce the LightLayers paper's Fashion-MNIST table (arXiv:2101.02268, Table 2) and add
lightcompress rows: the trained Conv2D model converted at the same parameter budgets.

    python benchmarks/paper_table.py paper      # paper rows from scratch + our converted rows
    python benchmarks/paper_table.py real       # the two models in ../shared/real_models
    python benchmarks/paper_table.py compress   # the same with `compress` (sensitivity + distillation)
    python benchmarks/paper_table.py compress-no-distill   # the same without distillation
    python benchmarks/paper_table.py control    # the trained Conv2D fine-tuned 3 more epochs, unconverted
    python benchmarks/paper_table.py report     # docs/RESULTS.md tables + docs/results.png

Protocol (the paper's): full Fashion-MNIST (60,000 train / 10,000 test), 10 epochs, batch 64,
Adam 1e-3, filters 8/16/32. Our rows: `lightcompress` conversion of the trained Conv2D model with
`target_params` = the paper row's parameter count / 18,818, then `finetune` defaults for at most
3 epochs (Adam peak 1e-3 with cosine decay, 10% validation, early stopping on the best epoch).
Each finished row is appended to benchmarks/results.json, so an interrupted run resumes.
Needs Fashion-MNIST offline: `apt-get install dataset-fashion-mnist`.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import keras

from lightcompress.data import sets as data
from lightcompress.io import models as model_io
from lightcompress.flows import zoo
from lightcompress.training import finetune
from lightcompress.training.devices import device_name
from lightcompress.training.evaluation import evaluate
from lightcompress.flows.convert import convert
from lightcompress.planning import LayerFilter, TargetParams

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results.json"
SAMPLE = ROOT / "sample_models" / "paper_cnn_fmnist.keras"
REAL = ROOT.parent / "shared" / "real_models"
PAPER = {  # name: (params, accuracy) as published
    "Conv2D": (18818, 0.9147), "SeparableConv2D": (3611, 0.8725),
    "LightLayers K=1": (2649, 0.789), "LightLayers K=2": (4392, 0.8452), "LightLayers K=3": (6135, 0.8695),
    "LightLayers K=4": (7878, 0.8623), "LightLayers K=5": (9621, 0.8820), "LightLayers K=6": (11364, 0.8733),
}
EPOCHS, BATCH, LR, SEED = 10, 64, 1e-3, 0


def _load():
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else []


def _save_row(row):
    rows = [r for r in _load() if (r["group"], r["name"]) != (row["group"], row["name"])]
    RESULTS.write_text(json.dumps(rows + [row], indent=1) + "\n")
    print(json.dumps(row), flush=True)


def _done(group, name):
    return any((r["group"], r["name"]) == (group, name) for r in _load())


def _machine():
    return f"{device_name()}, {platform.system()}, keras {keras.__version__}"


def _fashion(model):
    return data.prepare(data.load_dataset("fashion_mnist"), model)


def _scratch(name, model, prepared):
    start = time.perf_counter()
    zoo.train(model, prepared, EPOCHS, BATCH, LR, SEED, verbose=2)
    seconds = time.perf_counter() - start
    ev = evaluate(model, prepared)
    _save_row({"group": "paper", "name": name, "method": f"from scratch, {EPOCHS} epochs",
               "params": model.count_params(), "accuracy": ev.accuracy, "loss": ev.loss,
               "seconds": round(seconds, 1), "machine": _machine()})
    return model


def _converted(group, name, original, prepared, target_params, base_accuracy, conv_mode="auto"):
    start = time.perf_counter()
    fraction = target_params / original.count_params()
    result = convert(original, TargetParams(fraction), LayerFilter(min_params=0, conv_mode=conv_mode),
                     prepared.x_test[:1000], "test images")
    before = evaluate(result.model, prepared)
    fit = finetune.finetune(result.model, prepared, finetune.FitSettings(epochs=3, seed=SEED))
    ev = evaluate(result.model, prepared)
    _save_row({"group": group, "name": name, "method": f"lightcompress target_params={fraction:.4f} "
               f"conv_mode={conv_mode}, finetune {fit.epochs_run} epochs (best {fit.best_epoch})",
               "params": result.model.count_params(), "accuracy": ev.accuracy, "loss": ev.loss,
               "accuracy_before_finetune": before.accuracy, "original_accuracy": base_accuracy,
               "ranks": {p.name: [p.rank, p.mode] for p in result.plan.converted},
               "seconds": round(time.perf_counter() - start, 1), "machine": _machine()})


def run_paper():
    base = zoo.paper_cnn()
    prepared = _fashion(base)
    if SAMPLE.exists() and _done("paper", "Conv2D"):
        base = model_io.load_model(SAMPLE)
    else:
        _scratch("Conv2D", base, prepared)
        model_io.save_model(base, SAMPLE, force=True)
    base_accuracy = evaluate(base, prepared).accuracy
    builders = {"SeparableConv2D": zoo.paper_separable_cnn,
                **{f"LightLayers K={k}": (lambda k=k: zoo.paper_light_cnn(k)) for k in range(1, 7)}}
    for name, build in builders.items():
        if not _done("paper", name):
            _scratch(name, build(), prepared)
    budgets = {f"at {name.split()[-1]} budget": r["params"] for r in _load() if r["group"] == "paper"
               for name in [r["name"]] if name.startswith("LightLayers")}
    budgets["at 2x fewer params"] = base.count_params() // 2
    for name, params in sorted(budgets.items(), key=lambda kv: kv[1]):
        if not _done("ours", name):
            _converted("ours", name, base, prepared, params, base_accuracy)


def run_real():
    for path in sorted(REAL.glob("*.h5")):
        original = model_io.load_model(path)
        prepared = _fashion(original)
        base_accuracy = evaluate(original, prepared).accuracy
        for factor in (2, 5, 10):
            name = f"{path.name} {factor}x fewer params"
            if not _done("real", name):
                _converted("real", name, original, prepared, original.count_params() // factor,
                           base_accuracy, conv_mode="channel")


def run_control():
    """The trained Conv2D model itself fine-tuned like our rows (3 epochs): is the gain over the
    baseline the conversion's, or only the extra epochs'?"""
    if _done("control", "Conv2D + 3 epochs finetune"):
        return
    base = model_io.load_model(SAMPLE)
    prepared = _fashion(base)
    start = time.perf_counter()
    fit = finetune.finetune(base, prepared, finetune.FitSettings(epochs=3, seed=SEED))
    ev = evaluate(base, prepared)
    _save_row({"group": "control", "name": "Conv2D + 3 epochs finetune",
               "method": f"no conversion; finetune {fit.epochs_run} epochs (best {fit.best_epoch})",
               "params": base.count_params(), "accuracy": ev.accuracy, "loss": ev.loss,
               "seconds": round(time.perf_counter() - start, 1), "machine": _machine()})


def run_compress(group="compress", distill=True):
    from lightcompress.flows.compress import CompressSettings, compress

    for path in sorted(REAL.glob("*.h5")):
        original = model_io.load_model(path)
        prepared = _fashion(original)
        base_accuracy = evaluate(original, prepared).accuracy
        for factor in (5, 10):
            name = f"{path.name} {factor}x fewer params"
            if _done(group, name):
                continue
            start = time.perf_counter()
            result = compress(original, prepared, CompressSettings.make(
                target_params=1 / factor, layer_filter=LayerFilter(min_params=0), use_cache=True,
                settings=finetune.FitSettings(epochs=3, seed=SEED), distill=distill))
            ev = evaluate(result.model, prepared)
            how = "distilled" if distill else "plain (--no-distill)"
            _save_row({"group": group, "name": name,
                       "method": f"lightcompress compress --target-params {1 / factor:g} --min-params 0, "
                       f"{how} finetune {result.fit.epochs_run} epochs (best {result.fit.best_epoch})",
                       "params": result.model.count_params(), "accuracy": ev.accuracy, "loss": ev.loss,
                       "original_accuracy": base_accuracy,
                       "analysis_seconds": round(result.sensitivity.seconds, 1),
                       "analysis_evaluations": sum(len(ls.options) - 1 for ls in result.sensitivity.layers),
                       "analysis_from_cache": result.sensitivity.from_cache,
                       "ranks": {p.name: [p.rank, p.mode] for p in result.plan.converted},
                       "seconds": round(time.perf_counter() - start, 1), "machine": _machine()})


if __name__ == "__main__":
    part = sys.argv[1] if len(sys.argv) > 1 else "paper"
    if part == "report":
        from results_report import write_report

        write_report(_load(), PAPER, ROOT / "docs")
    else:
        {"paper": run_paper, "real": run_real, "compress": run_compress,
         "compress-no-distill": lambda: run_compress("compress_nodistill", distill=False),
         "control": run_control}[part]()
