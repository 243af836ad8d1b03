"""Issue 17 benchmark: peak memory of fine-tuning on an image folder, as the folder grows 10x.

    python benchmarks/streaming_memory.py write 6000 60000   # Fashion-MNIST PNGs under /tmp
    python benchmarks/streaming_memory.py run 6000 60000     # one finetune process per folder

``write N`` puts the first N Fashion-MNIST training images (the real ones, from
/usr/share/datasets/fashion-mnist) as PNGs in ROOT/fmnist-N/<class>/<i>.png (ROOT defaults to
/tmp/lightcompress-stream; never inside the repository). ``run N`` fine-tunes the LightLayers
paper's CNN (18,818 parameters, seed-0 initialisation, saved once to ROOT) for one epoch on the
whole folder with the command line tool, in its own process under ``/usr/bin/time -v``, and
appends {images, peak RSS, wall time, load average} to benchmarks/streaming_memory.jsonl.
The folder's 20% test split is evaluated before and after, as ``finetune`` always does.
Run it from the checkout to measure: ``python -m lightcompress`` imports the package from the
current folder (the row's "lightcompress" field says which one ran).
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("LIGHTCOMPRESS_STREAM_ROOT", "/tmp/lightcompress-stream"))
OUT = Path(__file__).with_name("streaming_memory.jsonl")


def write(n):
    import numpy as np
    import tensorflow as tf

    from lightcompress.data.sets import load_dataset

    folder = ROOT / f"fmnist-{n}"
    if folder.exists():
        print(f"{folder} exists; remove it to write it again")
        return
    ds = load_dataset("fashion_mnist")
    x, y = ds.x_train[:n], ds.y_train[:n]
    tmp = folder.with_name(folder.name + ".partial")
    for c in np.unique(y):
        (tmp / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(len(x)):
        tf.io.write_file(str(tmp / f"class{y[i]}" / f"{i:05d}.png"), tf.io.encode_png(x[i][..., None]))
    tmp.rename(folder)
    print(f"wrote {len(x)} PNGs to {folder}")


def model_file():
    path = ROOT / "paper_cnn.keras"
    if not path.exists():
        import keras

        from lightcompress.flows.zoo import paper_cnn

        keras.utils.set_random_seed(0)
        ROOT.mkdir(parents=True, exist_ok=True)
        paper_cnn((28, 28, 1)).save(path)
    return path


def _package_dir():
    """The lightcompress the child imports (PYTHONPATH decides: the checkout under test)."""
    code = "import lightcompress, os; print(os.path.dirname(lightcompress.__file__))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()


def run(n):
    folder = ROOT / f"fmnist-{n}"
    if not folder.exists():
        sys.exit(f"{folder} is missing; run 'write {n}' first")
    out = ROOT / f"tuned-{n}.keras"
    command = [sys.executable, "-m", "lightcompress", "finetune", str(model_file()), "--dataset", str(folder),
               "--epochs", "1", "--batch-size", "64", "-o", str(out), "--force", "--json"]
    load = os.getloadavg()
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(done.stderr[-2000:])
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    report = json.loads(done.stdout)
    row = {"images": n, "train_images": report["train_images"], "peak_rss_mib": round(peak_kb / 1024, 1),
           "wall_s": round(wall, 1), "epoch_s": report["epoch_seconds"], "accuracy": report["accuracy"],
           "load_average_before": [round(v, 2) for v in load], "command": " ".join(command),
           "lightcompress": _package_dir()}
    with OUT.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    action, *sizes = sys.argv[1:]
    for size in sizes:
        {"write": write, "run": run}[action](int(size))
