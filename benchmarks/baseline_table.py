"""Issue 16: low-rank (compress) against tfmot pruning and clustering at the same budget, and QAT
against post-training int8 for the low-rank result, on the two real models.

    nice -n 10 python benchmarks/baseline_table.py OUT_DIR [--epochs 2]

Writes OUT_DIR/<model>.<method>.<budget>.json per run (so a partial run keeps what it measured)
and prints a Markdown table at the end (``--table`` re-prints it from the JSON files).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

MODELS = ["fmnist_cnn_keras2.h5", "fmnist_cnn_keras3.h5"]
BUDGETS = [0.2, 0.1]
REAL = Path(__file__).resolve().parents[2] / "shared" / "real_models"


def measure(model, prepared, extra):
    from lightcompress.deploy.sizes import deployment_sizes
    from lightcompress.training.evaluation import evaluate

    out = deployment_sizes(model, prepared, threads=2, repeats=200)
    out["accuracy"] = evaluate(model, prepared).accuracy
    out.update(extra)
    return out


def run_all(out_dir: Path, epochs: int, qat_epochs: int):
    from lightcompress.io import models as model_io
    from lightcompress.baseline import run
    from lightcompress.deploy.sizes import tflite_sizes
    from lightcompress.flows.compress import CompressSettings, compress
    from lightcompress.data import DataSpec, open_for_model
    from lightcompress.training.finetune import FitSettings

    settings = FitSettings(epochs=epochs)
    for name in MODELS:
        original = model_io.load_model(REAL / name)
        prepared = open_for_model(original, DataSpec("fashion_mnist"), in_memory=True)
        stem = name.split(".")[0]

        def save(tag, data):
            (out_dir / f"{stem}.{tag}.json").write_text(json.dumps(data, indent=1, default=str))
            print(stem, tag, {k: data.get(k) for k in ("accuracy", "nonzero", "gzip_bytes", "seconds")}, flush=True)

        if not (out_dir / f"{stem}.original.json").exists():
            save("original", measure(original, prepared, {"seconds": 0}))
        for budget in BUDGETS:
            tag = f"lowrank.{budget}"
            low = None
            if not (out_dir / f"{stem}.{tag}.json").exists():
                t = time.time()
                result = compress(original, prepared, CompressSettings.make(target_params=budget, settings=settings))
                seconds = time.time() - t
                low = result.model
                model_io.save_model(low, out_dir / f"{stem}.{tag}.keras", force=True)
                save(tag, measure(low, prepared, {"seconds": seconds, "epochs_run": result.fit.epochs_run}))
            for method in ("prune", "cluster"):
                mtag = f"{method}.{budget}"
                if (out_dir / f"{stem}.{mtag}.json").exists():
                    continue
                t = time.time()
                r = run.baseline(original, prepared, method, budget, settings=settings)
                seconds = time.time() - t
                model_io.save_model(r.model, out_dir / f"{stem}.{mtag}.keras", force=True)
                save(mtag, measure(r.model, prepared, {"seconds": seconds, "budget": r.budget.to_dict(),
                                                       "epochs_run": r.fit["epochs_run"]}))
            qtag = f"qat.{budget}"
            if not (out_dir / f"{stem}.{qtag}.json").exists():
                low = low or model_io.load_model(out_dir / f"{stem}.{tag}.keras")
                t = time.time()
                q = run.qat(low, prepared, settings=FitSettings(epochs=qat_epochs))
                seconds = time.time() - t
                measured = tflite_sizes(q.tflite, q.model, prepared, repeats=200)
                from lightcompress.training.evaluation import evaluate

                measured.update(seconds=seconds, float_accuracy_after_qat=evaluate(q.model, prepared).accuracy)
                save(qtag, measured)


def _f(v, fmt="{:,}"):
    return "-" if v is None else fmt.format(v)


def table(out_dir: Path) -> str:
    rows = ["| model | budget | method | accuracy (Keras) | non-zero params | gzip weights B | LiteRT float B | "
            "LiteRT int8 B | int8 gzip B | accuracy LiteRT int8 | ms float | ms int8 | wall s |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in MODELS:
        stem = name.split(".")[0]
        for tag, budget, method in [("original", "1", "original")] + [
                (f"{m}.{b}", f"{b:g} ({1 / b:.0f}x)", m) for b in BUDGETS for m in ("lowrank", "prune", "cluster")]:
            path = out_dir / f"{stem}.{tag}.json"
            if not path.exists():
                continue
            d = json.loads(path.read_text())
            fl, q = d["litert_float"], d["litert_int8"]
            rows.append(f"| {stem} | {budget} | {method} | {d['accuracy']:.4f} | {d['nonzero']:,} | {d['gzip_bytes']:,} | "
                        f"{fl['file_bytes']:,} | {q['file_bytes']:,} | {q['gzip_bytes']:,} | {q['accuracy']:.4f} | "
                        f"{fl['latency_ms']:.4f} | {q['latency_ms']:.4f} | {d['seconds']:.0f} |")
    rows += ["", "| model | budget | low-rank, post-training int8: accuracy / agreement / B / ms | "
                 "low-rank + QAT int8: accuracy / agreement / B / ms | QAT float accuracy | QAT wall s |",
             "|---|---|---|---|---:|---:|"]
    for name in MODELS:
        stem = name.split(".")[0]
        for b in BUDGETS:
            lp, qp = out_dir / f"{stem}.lowrank.{b}.json", out_dir / f"{stem}.qat.{b}.json"
            if not (lp.exists() and qp.exists()):
                continue
            ptq, qat = json.loads(lp.read_text())["litert_int8"], json.loads(qp.read_text())
            cell = lambda d: (f"{d['accuracy']:.4f} / {d['agreement_with_keras'] * 100:.2f}% / {d['file_bytes']:,} / "  # noqa: E731
                              f"{d['latency_ms']:.4f}")
            rows.append(f"| {stem} | {b:g} | {cell(ptq)} | {cell(qat)} | {qat['float_accuracy_after_qat']:.4f} | "
                        f"{qat['seconds']:.0f} |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if not args.table:
        run_all(args.out_dir, args.epochs, args.qat_epochs)
    print(table(args.out_dir))


if __name__ == "__main__":
    sys.exit(main())
