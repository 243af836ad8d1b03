"""Accuracy at 5x, 10x and 20x fewer parameters, as a user runs `compress` and `convert` (issue 24).

    python benchmarks/accuracy_budgets.py run [GROUP ...] [--models keras2,keras3] [--factors 10,20]
                                            # rows appended to benchmarks/accuracy_budgets.jsonl
    python benchmarks/accuracy_budgets.py report            # the Markdown tables for docs/RESULTS.md

Groups:

- ``compress``: `lightcompress compress MODEL --target-params F --dataset fashion_mnist` with every
  default (what a user runs), at F = 1/5, 1/10, 1/20;
- ``convert``: `lightcompress convert MODEL --target-params F --dataset fashion_mnist` with every
  default (no fine-tuning) at F = 1/2, 1/3, 1/5; its levers ``convert-error`` and
  ``convert-sensitivity`` (one allocation instead of the better of both on held-out images) and
  ``convert-one-pass`` (the defaults until this round: one data-aware pass on 2,000 images, error
  allocation); ``convert-by-loss`` holds the rows of "both" when it kept the lower held-out loss
  rather than the lower divergence from the original (not runnable any more);
- lever groups (one change against the defaults each): ``allow-slower`` (no latency guard),
  ``allocation-error`` (rank allocation from the data-aware truncation error, no sensitivity
  evaluations), ``epochs-8`` / ``epochs-15`` / ``epochs-20`` (an 8-, 15- or 20-epoch budget with early stopping,
  patience 2), ``lr-3e-3`` (peak learning rate 3e-3 instead of 1e-3), ``alpha-0.5`` (the loss half
  hard labels, half the teacher's softened outputs, instead of 0.9 / 0.1), ``sequential-10k``
  (factors calibrated layer by layer on 10,000 images, as `convert` now does), ``seed-1`` (the
  default with seed 1: another held-out slice, calibration draw and training order);
- ``quiet-default`` and ``quiet-3-epochs``: the default and the old 3-epoch default, for the wall
  time target; run them alone, one after the other.

Accuracy is the model's on the 10,000 Fashion-MNIST test images (compress's own comparison
evaluates on them; never used for any decision). Each finished row is appended as it completes,
so an interrupted run resumes. Models: the two in ../shared/real_models (trained by other
people) and sample_models/paper_cnn_fmnist.keras (ours). Needs `apt-get install
dataset-fashion-mnist`.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "accuracy_budgets.jsonl"
REAL = HERE.parents[1] / "shared" / "real_models"
MODELS = {
    "keras2": REAL / "fmnist_cnn_keras2.h5",
    "keras3": REAL / "fmnist_cnn_keras3.h5",
    "paper_cnn (ours)": HERE.parent / "sample_models" / "paper_cnn_fmnist.keras",
}
COMPRESS_FACTORS = (5, 10, 20)
CONVERT_LEVERS = {
    "convert": {},
    "convert-error": {"allocation": "error"},
    "convert-sensitivity": {"allocation": "sensitivity"},
    "convert-one-pass": {"method": "data-aware", "calibration_samples": 2000, "allocation": "error"},
    "convert-by-loss": None,  # rows only: "both" when it kept the lower held-out loss (commit de54b01)
    "convert-by-kl-before-7422737": None,  # rows only: the default measured before it was committed
    "convert-7169e1a": None,  # rows only: the default on commit 7169e1a, before the review fixes
    "convert-4801ffe": None,  # rows only: the default on commit 4801ffe, after the review fixes
}
CONVERT_FACTORS = (2, 3, 5)
LEVERS = {
    "compress": {},
    "compress-3-epochs": {"epochs": 3},
    "allow-slower": {"allow_slower": True},
    "allocation-error": {"allocation": "error"},
    "epochs-8": {"epochs": 8},
    "epochs-15": {"epochs": 15},
    "epochs-20": {"epochs": 20},  # at 20x with the long budget's learning rate (3e-3)
    "lr-3e-3": {"learning_rate": 3e-3},
    "alpha-0.5": {"alpha": 0.5},  # distillation weighted half on the teacher (default 0.9 on the labels)
    "sequential-10k": {"method": "data-aware+sequential", "calibration_samples": 10_000},  # convert's calibration
    "seed-1": {"seed": 1},  # the default again with another seed: run-to-run spread
    # wall time of the default against the old 3-epoch default, both run alone on a quiet machine
    "quiet-default": {},
    "quiet-3-epochs": {"epochs": 3},
    # the same pair again in the other order, both with every cache warm
    "quiet-3-epochs-b": {"epochs": 3},
    "quiet-default-b": {},
}


def _rows():
    return [json.loads(line) for line in OUT.read_text().splitlines()] if OUT.exists() else []


def _done(group, model, factor):
    return any(r["group"] == group and r["model"] == model and r["factor"] == factor for r in _rows())


def _save(row):
    with OUT.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def _budget_used(plan):
    return next((n for n in plan.get("notes", []) if n.startswith("budget:")), None)


def _compress(group, name, path, factor, options):
    from lightcompress.data.sets import DataSpec
    from lightcompress.flows.compress import CompressSettings, compress_file
    from lightcompress.training.finetune import FitSettings

    from lightcompress.defaults import compress_epochs, compress_learning_rate

    fit = {key: options.pop(key) for key in ("epochs", "learning_rate", "seed") if key in options}
    settings = FitSettings(**{"epochs": compress_epochs(1 / factor), "learning_rate": compress_learning_rate(1 / factor),
                              **fit}) if fit else None
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        out = compress_file(path, Path(folder) / "c.keras",
                            CompressSettings.make(target_params=1 / factor, settings=settings, **options),
                            data=DataSpec("fashion_mnist"))
        wall = time.perf_counter() - start
    before, after = (m["evaluation"]["accuracy"] for m in out["compare"]["models"])
    params = [m["params"] for m in out["compare"]["models"]]
    _save({"group": group, "model": name, "factor": factor, "accuracy_before": before, "accuracy_after": after,
           "drop_points": round((before - after) * 100, 2), "params_ratio": round(params[1] / params[0], 4),
           "budget": _budget_used(out["plan"]), "epochs_run": out["finetune"]["epochs_run"],
           "best_epoch": out["finetune"]["best_epoch"], "wall_s": round(wall, 1), "policy": out["plan"]["policy"],
           "notes": out["plan"].get("notes", []), "machine": _machine()})


def _convert(group, name, path, factor):
    from lightcompress.data.sets import DataSpec
    from lightcompress.flows.convert import ConvertSettings, convert_file
    from lightcompress.planning import rank_rule

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        data = DataSpec("fashion_mnist")
        settings = ConvertSettings.make(rank_rule(target_params=1 / factor), data=data, **CONVERT_LEVERS[group])
        out = convert_file(path, Path(folder) / "c.keras", settings, data=data)
        wall = time.perf_counter() - start
    acc = out["accuracy"]
    _save({"group": group, "model": name, "factor": factor, "accuracy_before": acc["before"]["accuracy"],
           "accuracy_after": acc["after"]["accuracy"],
           "drop_points": round((acc["before"]["accuracy"] - acc["after"]["accuracy"]) * 100, 2),
           "params_ratio": round(out["totals"]["params_after"] / out["totals"]["params_before"], 4),
           "budget": next((n for n in out["notes"] if n.startswith("budget:")), None),
           "allocation": next((n for n in out["notes"] if n.startswith("allocation:")), None),
           "method": out["method"], "calibration": out["calibration"], "policy": out["policy"],
           "wall_s": round(wall, 1), "machine": _machine()})


def _machine():
    import subprocess

    import keras

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    return f"{platform.processor() or platform.machine()}, Keras {keras.__version__}, {keras.backend.backend()}, commit {commit}"


def run(groups, models=None, factors_wanted=None):
    for group in groups:
        for name, path in MODELS.items():
            if models and name not in models:
                continue
            if group in CONVERT_LEVERS and CONVERT_LEVERS[group] is None:
                raise SystemExit(f"{group}: rows of an earlier commit, not runnable")
            factors = CONVERT_FACTORS if group in CONVERT_LEVERS else COMPRESS_FACTORS
            for factor in factors:
                if _done(group, name, factor) or (factors_wanted and factor not in factors_wanted):
                    continue
                if group in CONVERT_LEVERS:
                    _convert(group, name, path, factor)
                else:
                    _compress(group, name, path, factor, dict(LEVERS[group]))


def report():
    rows = _rows()
    for group in [*CONVERT_LEVERS, *LEVERS]:
        chosen = [r for r in rows if r["group"] == group]
        if not chosen:
            continue
        print(f"\n### {group}\n")
        print("| model | factor | original | after | change (pts) | params kept | budget used | epochs (best) | wall s (under load) |")
        print("|---|---:|---:|---:|---:|---:|---|---|---:|")
        for r in chosen:
            epochs = f"{r['epochs_run']} ({r['best_epoch']})" if "epochs_run" in r else "none"
            budget = (r.get("budget") or "").replace("budget: params ", "")
            print(f"| {r['model']} | {r['factor']}x | {r['accuracy_before']:.4f} | {r['accuracy_after']:.4f} | "
                  f"{-r['drop_points']:+.2f} | {r['params_ratio']:.4f} | {budget} | {epochs} | {r['wall_s']} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "report":
        report()
    else:  # run [GROUP ...] [--models keras2,keras3] [--factors 10,20]
        import argparse

        parser = argparse.ArgumentParser()
        parser.add_argument("command")
        parser.add_argument("groups", nargs="*", default=["compress", "convert"])
        parser.add_argument("--models", type=lambda v: v.split(","))
        parser.add_argument("--factors", type=lambda v: [int(f) for f in v.split(",")])
        args = parser.parse_args()
        run(args.groups, args.models, args.factors)
