"""Is the compressed model faster where it runs? Issue 23's targets, each run as a user runs the
commands (one process per command), rows appended to benchmarks/deploy_latency.jsonl:

    python benchmarks/deploy_latency.py real        # both ../shared/real_models (real=NAME: one): compress --target-params 0.2
                                                    #   --export litert-int8 (defaults), its four-column compare
    python benchmarks/deploy_latency.py mobile      # MobileNetV2, EfficientNetB0 (224x224, weights=None; mobile=latency: that budget only):
                                                    #   convert at --target-params 0.5/0.3 and --target-latency 0.7,
                                                    #   compare --int8 (float and int8, LiteRT)
    python benchmarks/deploy_latency.py resnet50    # ResNet50 (224x224): convert --target-latency 0.5 --runtime litert
    python benchmarks/deploy_latency.py report      # the rows as Markdown

Latency does not depend on the weights' values, so the 224x224 models keep their random
initialisation and int8 calibrates on random images (benchmarks/random_images.py). Every ratio is
from one `compare` run, which times the models in turns (interleaved). Run on a quiet machine: a
timing taken under load is not a result.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "deploy_latency.jsonl"
REAL = HERE.parents[1] / "shared" / "real_models"
RANDOM_IMAGES = f"{HERE / 'random_images.py'}:load"


def cli(*args):
    """Run ``lightcompress ARGS`` in its own process: (stdout, stderr, seconds)."""
    start = time.time()
    done = subprocess.run([sys.executable, "-m", "lightcompress", *map(str, args)], capture_output=True, text=True)
    seconds = time.time() - start
    if done.returncode != 0:
        raise SystemExit(f"lightcompress {' '.join(map(str, args))} failed:\n{done.stderr[-3000:]}")
    return done.stdout, done.stderr, seconds


def machine() -> str:
    import os

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start"


def write(row):
    row = {"machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M"), **row}
    with OUT.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k not in ("compare", "stderr")}), flush=True)


def summary(report: dict) -> dict:
    """Per model of a compare report: label, params, MACs, bytes, latency medians, IQR, calls, ratios."""
    models = []
    for m in report["models"]:
        models.append({
            "label": m["label"], "params": m["params"], "macs": m["macs"], "file_bytes": m["file_bytes"],
            "latency": [{k: lat.get(k) for k in ("batch", "median_ms", "q1_ms", "q3_ms", "repeats")}
                        for lat in m["latency"]],
            "ratios": m["ratios"], "accuracy": (m.get("evaluation") or {}).get("accuracy"),
            "verdicts": [(lat.get("verdict") or {}).get("text") for lat in m["latency"]],
        })
    return {"models": models, "headline": (report.get("headline") or {}).get("text")}


def real(names="fmnist_cnn_keras2.h5,fmnist_cnn_keras3.h5"):
    for name in names.split(","):
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "c.keras"
            stdout, stderr, seconds = cli("compress", REAL / name, "--target-params", "0.2", "--export", "litert-int8",
                                          "--dataset", "fashion_mnist", "-o", out, "--json")
            report = json.loads(stdout)
            write({"benchmark": "real", "model": name,
                   "command": f"lightcompress compress {name} --target-params 0.2 --export litert-int8 "
                              f"--dataset fashion_mnist", "seconds": round(seconds, 1),
                   "compare": summary(report["compare"]) if report.get("compare") else None,
                   "report_keys": sorted(report), "stderr": stderr[-4000:]})


def _keras_app(name, folder):
    import keras

    model = getattr(keras.applications, name)(weights=None, input_shape=(224, 224, 3))
    path = Path(folder) / f"{name}.keras"
    model.save(path)
    return path


def _convert_and_compare(original, budget, folder, int8=True, runtime="litert"):
    light = Path(folder) / f"{original.stem}.{budget[0].strip('-')}{budget[1]}.keras"
    timed = ["--runtime", runtime] if budget[0] == "--target-latency" else []  # convert times only for a latency budget
    # random weights (latency does not depend on their values): their flat spectra sit below the
    # no-data energy floor, which is about accuracy, so it is off here
    stdout, stderr, seconds = cli("convert", original, *budget, *timed, "--no-data-floor", "0", "-o", light, "--force",
                                  "--json")
    converted = json.loads(stdout)
    args = ["compare", original, light, "--runtime", runtime, "--batch", "8", "--json"]
    if int8:
        args += ["--int8", "--dataset", RANDOM_IMAGES]  # 64 training images calibrate int8, 16 test images
    stdout, _, compare_seconds = cli(*args)
    return {"budget": " ".join(budget), "runtime": runtime, "convert_seconds": round(seconds, 1),
            "compare_seconds": round(compare_seconds, 1), "compare": summary(json.loads(stdout)),
            "convert_notes": converted.get("notes", []), "convert_budget": converted.get("budget"),
            "convert_policy": converted.get("policy") or (converted.get("plan") or {}).get("policy"),
            "convert_warnings": [line for line in stderr.splitlines() if "warning" in line.lower()][-6:]}


MOBILE_BUDGETS = {"params": (("--target-params", "0.5"), ("--target-params", "0.3")),
                  "latency": (("--target-latency", "0.7"),)}


def mobile(kinds="params,latency"):
    for name in ("MobileNetV2", "EfficientNetB0"):
        with tempfile.TemporaryDirectory() as folder:
            original = _keras_app(name, folder)
            for budget in [b for kind in kinds.split(",") for b in MOBILE_BUDGETS[kind]]:
                write({"benchmark": "mobile", "model": name, **_convert_and_compare(original, budget, folder)})


def resnet50():
    with tempfile.TemporaryDirectory() as folder:
        original = _keras_app("ResNet50", folder)
        write({"benchmark": "resnet50", "model": "ResNet50",
               **_convert_and_compare(original, ("--target-latency", "0.5"), folder, int8=False)})


def report():
    for line in OUT.read_text().splitlines():
        row = json.loads(line)
        print(f"\n### {row['benchmark']}: {row['model']} {row.get('budget', '')} ({row['when']}, {row['machine']})")
        compare = row.get("compare")
        if not compare:
            continue
        print("| model | params | MACs | bytes | " + " | ".join(
            f"batch {lat['batch']} ms (IQR)" for lat in compare["models"][0]["latency"]) + " | accuracy |")
        print("|---|---:|---:|---:|" + "---:|" * len(compare["models"][0]["latency"]) + "---:|")
        for m in compare["models"]:
            cells = [f"{lat['median_ms']:.3f} ({lat['q1_ms']:.3f}-{lat['q3_ms']:.3f}, {lat['repeats']} calls)"
                     for lat in m["latency"]]
            acc = "" if m["accuracy"] is None else f"{m['accuracy']:.4f}"
            print(f"| {m['label']} | {m['params']:,} | {m['macs']:,} | {m['file_bytes']:,} | {' | '.join(cells)} | {acc} |")
        print(f"\n{compare['headline']}")


if __name__ == "__main__":
    steps = {"real": real, "mobile": mobile, "resnet50": resnet50, "report": report}
    for step in sys.argv[1:] or ["report"]:  # a step, or real=NAME[,NAME] for some of the real models
        name, _, arg = step.partition("=")
        steps[name](*([arg] if arg else []))
