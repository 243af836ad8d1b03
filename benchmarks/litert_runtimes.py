"""tf.lite against ai_edge_litert (issue 38): the same .tflite files, float32 and full-int8, timed
in both interpreters in one process, in turns (``deploy.timing.interleaved``), at batch 1 and 32,
2 threads each. It decides which interpreter ``lightcompress`` should prefer when both are there.

ai_edge_litert is not a dependency of the project: install it where this script can import it,
e.g. ``pip install --no-deps --target /tmp/litpkg ai-edge-litert`` and ``--litert-path /tmp/litpkg``.

    nice python benchmarks/litert_runtimes.py --litert-path /tmp/litpkg ../shared/real_models/*.h5

Each model is exported with ``lightcompress export`` (float32, then int8 calibrated on
Fashion-MNIST training images) into a temporary folder first.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def interpreters(path: Path, batch: int, threads: int):
    import ai_edge_litert.interpreter as litert
    import tensorflow as tf

    made = {}
    for name, cls in (("tf.lite", tf.lite.Interpreter), ("ai_edge_litert", litert.Interpreter)):
        interp = cls(model_path=str(path), num_threads=threads)
        detail = interp.get_input_details()[0]
        interp.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
        interp.allocate_tensors()
        detail = interp.get_input_details()[0]
        dtype = detail["dtype"]
        x = (np.random.default_rng(0).random(detail["shape"]) * (255 if dtype != np.float32 else 1)).astype(dtype)
        interp.set_tensor(detail["index"], x)
        made[name] = interp
    return made


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--litert-path", type=Path, help="a folder holding ai_edge_litert (pip --target)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.litert_path:
        sys.path.insert(0, str(args.litert_path))
    from lightcompress.deploy.timing import interleaved, verdict

    rows = []
    with tempfile.TemporaryDirectory() as work:
        for model in args.models:
            for quantize in ("none", "int8"):
                out = Path(work) / f"{model.stem}.{quantize}.tflite"
                command = [sys.executable, "-m", "lightcompress", "export", str(model), "--format", "litert",
                           "--quantize", quantize, "-o", str(out)] + (["--dataset", "fashion_mnist"]
                                                                      if quantize == "int8" else [])
                subprocess.run(command, check=True, capture_output=True)
                for batch in (1, 32):
                    made = interpreters(out, batch, args.threads)
                    tf_lat, lit_lat = interleaved([i.invoke for i in made.values()], batch=batch, min_seconds=6.0)
                    v = verdict(tf_lat, lit_lat)
                    rows.append((model.name, quantize, batch, tf_lat.median_ms, lit_lat.median_ms, v.text()))
                    print(rows[-1], flush=True)
    print("| model | weights | batch | tf.lite (ms) | ai_edge_litert (ms) | ai_edge_litert vs tf.lite |")
    print("|---|---|---:|---:|---:|---|")
    for name, quantize, batch, a, b, text in rows:
        print(f"| {name} | {'float32' if quantize == 'none' else 'int8'} | {batch} | {a:.3f} | {b:.3f} | {text} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
