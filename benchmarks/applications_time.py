"""Seconds, not minutes, on real architectures (issue 39): `convert --target-params 0.5` without a
data set on keras.applications MobileNetV2, EfficientNetB0 and ResNet50 (``weights=None``: the
time does not depend on the weights' values), beside a plain load and save of the same file.

For each model, in turns on one quiet machine, each a fresh child process timed whole:

- ``load+save``: ``lightcompress.load_model`` then ``model.save`` to a new ``.keras`` (the floor
  any conversion pays);
- ``convert --no-synthesis``: factorisation and planning, everything but the calibration;
- ``convert`` (the default): the same plus inputs synthesised from the BatchNorm statistics; the
  synthesis's own seconds as the report gives them.

    nice python benchmarks/applications_time.py            # all three
    nice python benchmarks/applications_time.py ResNet50   # one

Targets: factorisation and planning at most 60 s and at most 3x load+save; the synthesis at most
5 minutes for ResNet50 on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {"MobileNetV2": "keras.applications.MobileNetV2(weights=None)",
          "EfficientNetB0": "keras.applications.EfficientNetB0(weights=None)",
          "ResNet50": "keras.applications.ResNet50(weights=None)"}
LOAD_SAVE = ("import sys, lightcompress; m = lightcompress.load_model(sys.argv[1]); m.save(sys.argv[2])")


def timed(command) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    return time.perf_counter() - start, done


def main(names) -> int:
    rows = []
    for name in names or MODELS:
        with tempfile.TemporaryDirectory() as work:
            path = Path(work) / f"{name}.keras"
            subprocess.run([sys.executable, "-c", f"import keras; {MODELS[name]}.save({str(path)!r})"], check=True,
                           capture_output=True)
            load_save, _ = timed([sys.executable, "-c", LOAD_SAVE, str(path), str(Path(work) / "copy.keras")])
            row = {"model": name, "load_save_s": round(load_save, 1)}
            for way, extra in (("no_synthesis", ["--no-synthesis"]), ("default", [])):
                seconds, done = timed([sys.executable, "-m", "lightcompress", "convert", str(path), "--target-params",
                                       "0.5", "-o", str(Path(work) / f"{way}.keras"), "--json", *extra])
                row[f"{way}_s"] = round(seconds, 1)
                if done.returncode:
                    row[f"{way}_error"] = (done.stderr.strip().splitlines() or ["?"])[-1]
                    continue
                report = json.loads(done.stdout)
                row[f"{way}_params"] = [report["totals"]["params_before"], report["totals"]["params_after"]]
                if report.get("synthesis"):
                    row["synthesis"] = report["synthesis"]
            row["ratio_to_load_save"] = round(row["no_synthesis_s"] / load_save, 2)
            print(json.dumps(row), flush=True)
            rows.append(row)
    print("| model | load+save s | convert --no-synthesis s (x load+save) | convert s | synthesis s (inputs x steps) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        made = r.get("synthesis") or {}
        print(f"| {r['model']} | {r['load_save_s']} | {r['no_synthesis_s']} ({r['ratio_to_load_save']}x) | "
              f"{r['default_s']} | {made.get('seconds', '—')} ({made.get('inputs', '')} x {made.get('steps', '')}) |")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main(sys.argv[1:]))
