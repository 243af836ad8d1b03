"""How well does each way of summarising a whole-model timing hold on this machine? (issue 23)

    python benchmarks/timing_windows.py [BLOCKS] [BATCH]   # default 240 half-second blocks, batch 1

Times the pair of benchmarks/latency_stability.py (../shared/real_models/fmnist_cnn_keras3.h5 and
its `convert --target-params 0.2`, as LiteRT files, 2 threads) in turns for BLOCKS blocks of
``timing.BLOCK_SECONDS``, keeps each block's per-model medians, then slides a window of 12 blocks
(one 6-s timing, ``timing.WHOLE_MODEL_SECONDS``) over them and reports, for each summary, the
compressed/original ratio's median over the windows and its largest and 95th-percentile
deviation from it:

- "median of block medians": each model's median over the window's block medians;
- "quietest third": the median of the calls in the quietest third of the window's blocks, the
  same blocks for both models (``timing.quiet_blocks``);
- "fastest 1%": the 1st percentile of each model's calls in the window (``Latency.floor_ms``).

Blocks are appended to benchmarks/timing_windows.jsonl. Run it on a quiet machine.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "timing_windows.jsonl"
ORIGINAL = HERE.parents[1] / "shared" / "real_models" / "fmnist_cnn_keras3.h5"
WINDOW = 12


def _cli(*args):
    done = subprocess.run([sys.executable, "-m", "lightcompress", *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr)


def _collect(files, blocks, batch):
    """Per block: [[the calls' ms] per model], timed in turns like `compare` times them."""
    from lightcompress.deploy import timing
    from lightcompress.deploy.runtimes import load_artifact

    timers = [load_artifact(f).timer(batch) for f in files]
    for timer in timers:
        for _ in range(5):
            timer()
    out = []
    for _ in range(blocks):
        samples = [[] for _ in timers]
        start = timing.time.perf_counter()
        while timing.time.perf_counter() - start < timing.BLOCK_SECONDS:
            for timer, times in zip(timers, samples):
                timer()
                for _ in range(timing.CHUNK):
                    t0 = timing.time.perf_counter()
                    timer()
                    times.append((timing.time.perf_counter() - t0) * 1000)
        out.append(samples)
    return out


def _summaries(window):
    from lightcompress.deploy import timing

    plain = [statistics.median(statistics.median(block[m]) for block in window) for m in (0, 1)]
    keep = timing.quiet_blocks([[statistics.median(block[m]) for block in window] for m in (0, 1)])
    quiet = [statistics.median([v for i in keep for v in window[i][m]]) for m in (0, 1)]
    floor = [_percentile([v for block in window for v in block[m]], 1) for m in (0, 1)]
    return {"median of block medians": plain[1] / plain[0], "quietest third": quiet[1] / quiet[0],
            "fastest 1%": floor[1] / floor[0]}


def _percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q / 100))]


def main(blocks=240, batch=1):
    with tempfile.TemporaryDirectory() as folder:
        light = Path(folder) / "k3.light.keras"
        files = [Path(folder) / "original.tflite", Path(folder) / "light.tflite"]
        # no fine-tuning and no data: the floor (about accuracy) off, as the rows were measured
        _cli("convert", ORIGINAL, "--target-params", "0.2", "--no-data-floor", "0", "-o", light)
        for model, file in zip((ORIGINAL, light), files):
            _cli("export", model, "--format", "litert", "-o", file)
        data = _collect(files, blocks, batch)
    with OUT.open("a") as f:
        f.write(json.dumps({"batch": batch, "block_medians_ms": [[statistics.median(m) for m in b] for b in data],
                            "block_p1_ms": [[_percentile(m, 1) for m in b] for b in data]}) + "\n")
    ratios = {}
    for start in range(len(data) - WINDOW + 1):
        for name, ratio in _summaries(data[start:start + WINDOW]).items():
            ratios.setdefault(name, []).append(ratio)
    print(f"batch {batch}: {len(data)} blocks, {len(data) - WINDOW + 1} windows of {WINDOW}")
    for name, values in ratios.items():
        median = statistics.median(values)
        devs = sorted(abs(v / median - 1) for v in values)
        print(f"  {name}: ratio {median:.3f}, largest deviation {devs[-1]:.1%}, "
              f"95th percentile {devs[int(0.95 * (len(devs) - 1))]:.1%}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
