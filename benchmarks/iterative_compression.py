"""Iterative compression (issue 24: "compress part of the way, fine-tune, re-measure, continue"), a prototype
against one step with the same epochs:

    python benchmarks/iterative_compression.py MODEL FACTOR MID EPOCHS_1 EPOCHS_2
    # run: ../shared/real_models/fmnist_cnn_keras2.h5 20 0.1 5 10 (10x with 5 epochs, then 20x with 10)

`compress_file` to MID of the params (fine-tuned EPOCHS_1), every LightLayer's factors multiplied
back into a full kernel of the original layer (Dense; Conv2D in channel, spatial or Tucker-2 mode), then
`compress_file` of that model to 1/FACTOR of the original's params (fine-tuned EPOCHS_2). Prints one
JSON row; accuracy on the 10,000 test images (never used for a decision). Compare with
`accuracy_budgets.py run epochs-15` (one step, 15 epochs).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lightcompress.data.sets import DataSpec
from lightcompress.flows.compress import CompressSettings, compress_file
from lightcompress.io import models as model_io
from lightcompress.layers import registry
from lightcompress.layers.base import base_name
from lightcompress.layers.conv2d import matrix_to_conv_kernel
from lightcompress.training.finetune import FitSettings

OUT = Path(__file__).resolve().parent / "iterative_compression.jsonl"


def merged_kernel(twin):
    """The full kernel a LightDense or LightConv2D (channel, spatial, tucker) computes: its factors multiplied."""
    a, b = (np.asarray(twin.kernel_a), np.asarray(twin.kernel_b))
    if a.ndim == 2:
        return a @ b
    mode = twin.factorization
    kh, kw = twin.kernel_size
    c, r = a.shape[2], a.shape[3]
    f = b.shape[3]
    if mode == "channel":
        return (a.reshape(kh * kw * c, r) @ b.reshape(r, f)).reshape(kh, kw, c, f)
    if mode == "spatial":
        m = a.reshape(kh * c, r) @ b.reshape(kw, r, f).transpose(1, 0, 2).reshape(r, kw * f)
        return matrix_to_conv_kernel(m, (kh, kw, c, f), "spatial")
    if mode == "tucker":  # 1x1 to the input rank, the kh x kw core, 1x1 to the filters
        return np.einsum("ci,hwij,jf->hwcf", a[0, 0], np.asarray(twin.kernel_core), b[0, 0])
    raise SystemExit(f"mode {mode} not merged")  # "paper": a ReLU between the factors, no single kernel


def densify(light_path, original_path, out):
    """The original's architecture with the Light model's weights: merged kernels, copied biases."""
    light = model_io.load_model(light_path)
    dense = model_io.load_model(original_path)
    by_name = {base_name(l, None): l for l in light.layers}  # a twin is named <original>_light
    for layer in dense.layers:
        twin = by_name.get(layer.name)
        if twin is None or not layer.weights:
            continue
        if registry.twin_entry(twin) is not None:
            layer.kernel.assign(merged_kernel(twin))
            if layer.use_bias:
                layer.bias.assign(np.asarray(twin.bias))
        else:
            layer.set_weights(twin.get_weights())
    dense.save(out)


def main(model_path, factor, mid, e1, e2):
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        t0 = time.perf_counter()
        first = compress_file(model_path, folder / "mid.keras",
                              CompressSettings.make(target_params=mid, settings=FitSettings(epochs=e1)),
                              data=DataSpec("fashion_mnist"))
        densify(folder / "mid.keras", model_path, folder / "mid_dense.keras")
        # the target is a fraction of the ORIGINAL's params; the densified model has the same count
        second = compress_file(folder / "mid_dense.keras", folder / "final.keras",
                               CompressSettings.make(target_params=1 / factor, settings=FitSettings(epochs=e2)),
                               data=DataSpec("fashion_mnist"))
        wall = time.perf_counter() - t0
        b0 = first["compare"]["models"][0]["evaluation"]["accuracy"]
        a1 = first["compare"]["models"][1]["evaluation"]["accuracy"]
        a2 = second["compare"]["models"][1]["evaluation"]["accuracy"]
        mid_dense_acc = second["compare"]["models"][0]["evaluation"]["accuracy"]
        p = [m["params"] for m in first["compare"]["models"]] + [second["compare"]["models"][1]["params"]]
        row = {"model": Path(model_path).name, "factor": factor, "mid": mid, "epochs": [e1, e2,
              first["finetune"]["epochs_run"], second["finetune"]["epochs_run"]], "original": b0, "after_mid": a1,
              "mid_densified": mid_dense_acc, "final": a2, "drop_points": round(100 * (b0 - a2), 2),
              "params_ratio": round(p[2] / p[0], 4), "wall_s": round(wall, 1)}
    with OUT.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], float(a[1]), float(a[2]), int(a[3]), int(a[4]))
