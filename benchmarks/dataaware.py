"""Issue 14 benchmark: convert (no fine-tuning) on the real models, each part switched on and off.

python benchmarks/dataaware.py ROW_SPEC...   where a row spec is model:target:method:conv_mode
(method: a registered method name, e.g. svd, data-aware, data-aware+bias, data-aware+sequential)
e.g. keras2:0.5:data-aware:channel  keras3:0.2:svd:auto
Appends one JSON line per row to benchmarks/dataaware.jsonl.
"""
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from lightcompress.io import models as model_io  # noqa: E402
from lightcompress.factorization.statistics import calibration_images  # noqa: E402
from lightcompress.data import DataSpec, open_for_model  # noqa: E402
from lightcompress.defaults import DEFAULT_CALIBRATION_SAMPLES  # noqa: E402
from lightcompress.training.evaluation import evaluate  # noqa: E402
from lightcompress.flows.convert import convert  # noqa: E402
from lightcompress.factorization.methods import get_method  # noqa: E402
from lightcompress.planning import LayerFilter, TargetParams  # noqa: E402

MODELS = {"keras2": "fmnist_cnn_keras2.h5", "keras3": "fmnist_cnn_keras3.h5"}
REAL = Path(__file__).resolve().parents[2] / "shared" / "real_models"
OUT = Path(__file__).with_name("dataaware.jsonl")
_cache = {}


def row(spec):
    name, target, method, conv_mode = spec.split(":")
    if name not in _cache:
        model = model_io.load_model(REAL / MODELS[name])
        data = open_for_model(model, DataSpec("fashion_mnist"), in_memory=True)
        _cache[name] = (model, data, evaluate(model, data).accuracy)
    model, data, base = _cache[name]
    calib = calibration_images(data, DEFAULT_CALIBRATION_SAMPLES) if get_method(method).needs_data else None
    start = time.perf_counter()
    result = convert(model, TargetParams(float(target)), LayerFilter(conv_mode=conv_mode), data.arrays("test")[0],
                     calibration_x=calib, method=method)
    seconds = time.perf_counter() - start
    acc = evaluate(result.model, data).accuracy
    out = {"spec": spec, "model": name, "target": float(target), "method": method, "conv_mode": conv_mode, "params_before": result.params_before, "params_after": result.params_after,
           "accuracy_before": base, "accuracy_after": acc, "drop_points": round((base - acc) * 100, 2),
           "calibration_seconds": result.calibration_seconds, "convert_seconds": round(seconds, 2),
           "plan": [(p.name, p.mode, p.rank) for p in result.plan.converted]}
    with OUT.open("a") as f:
        f.write(json.dumps(out) + "\n")
    print(f"{spec:45s} params {out['params_after']:>7,} ({out['params_after'] / out['params_before']:.3f})  "
          f"acc {base:.4f} -> {acc:.4f}  drop {out['drop_points']:+.2f}  cal {result.calibration_seconds}  "
          f"{out['plan']}", flush=True)


if __name__ == "__main__":
    for spec in sys.argv[1:]:
        row(spec)
