"""Do latency verdicts hold between runs? Five consecutive `lightcompress compare` runs of the same
pair of files, each in its own process, as a user runs them (issue 23).

    python benchmarks/latency_stability.py [RUNS]      # default 5; rows in benchmarks/latency_stability.jsonl

The pair: ../shared/real_models/fmnist_cnn_keras3.h5 and the same model converted by
`lightcompress convert --target-params 0.2` (no fine-tuning: latency does not depend on the
weights' values). Each run prints the latency ratio (compressed / original) at batch 1 and 32, the
verdict and the calls timed; the summary gives each ratio's median over the runs and the largest
deviation from it. Run it on a quiet machine: a timing taken under load is not a result.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "latency_stability.jsonl"
ORIGINAL = HERE.parents[1] / "shared" / "real_models" / "fmnist_cnn_keras3.h5"


def _cli(*args):
    done = subprocess.run([sys.executable, "-m", "lightcompress", *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return done.stdout


def main(runs=5):
    with tempfile.TemporaryDirectory() as folder:
        light = Path(folder) / "k3.light.keras"
        # no fine-tuning and no data: the floor (about accuracy) off, as the rows were measured
        _cli("convert", ORIGINAL, "--target-params", "0.2", "--no-data-floor", "0", "-o", light)
        rows = []
        for run in range(runs):
            report = json.loads(_cli("compare", ORIGINAL, light, "--json"))
            base, new = report["models"]
            row = {"run": run + 1}
            for b, n in zip(base["latency"], new["latency"]):
                row[f"ratio_batch_{b['batch']}"] = round(n["median_ms"] / b["median_ms"], 4)
                row[f"calls_batch_{b['batch']}"] = [b["repeats"], n["repeats"]]
                row[f"verdict_batch_{b['batch']}"] = (n.get("verdict") or {}).get("word")
            rows.append(row)
            print(json.dumps(row), flush=True)
    with OUT.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    for key in [k for k in rows[0] if k.startswith("ratio_")]:
        values = [r[key] for r in rows]
        median = statistics.median(values)
        worst = max(abs(v / median - 1) for v in values)
        print(f"{key}: median {median:.4f}, runs {', '.join(f'{v:.3f}' for v in values)}, "
              f"largest deviation {worst:.1%} (target ±10%)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
