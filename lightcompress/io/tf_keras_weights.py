"""The weights of a Keras 2 model file, read by tf_keras: ``python path/to/tf_keras_weights.py MODEL FOLDER``.

Runs in its own process (``TF_USE_LEGACY_KERAS=1``: ``tf.keras`` is tf_keras there, and Keras 3
is never imported beside it) and imports nothing from lightcompress (it is run by its file path).
It loads MODEL (uncompiled) and writes to FOLDER:

- ``weights.npz``: ``{layer path}|{i}``, the i-th weight of each layer that holds any, in the legacy
  order (trainable, then non-trainable), a nested model's layers under ``outer/inner``;
- ``layers.json``: ``{"layers": [{"path", "class", "weights": [[name, shape], ...]}], "inputs":
  [shape, ...]}``;

or ``{"error": "..."}`` (one line) in ``layers.json`` when tf_keras cannot load the file. The
caller runs it only on a file it may load: one holding Lambda layers (code) only when trusted.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow: tf.keras is tf_keras in this process
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def leaf_layers(model, prefix=""):
    """(path, layer) of every layer holding weights, nested models entered."""
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if hasattr(layer, "layers") and type(layer).__name__ in ("Sequential", "Functional", "Model"):
            yield from leaf_layers(layer, f"{path}/")
        elif layer.weights:
            yield path, layer


def short_name(name: str) -> str:
    """'model/dense/kernel:0' -> 'kernel'."""
    return name.split(":")[0].rsplit("/", 1)[-1]


def main(argv):
    model_path, folder = Path(argv[0]), Path(argv[1])
    try:
        import numpy as np
        import tensorflow as tf
        import tf_keras

        tf.get_logger().setLevel("ERROR")
        model = tf_keras.models.load_model(model_path, compile=False)
    except Exception as err:  # noqa: BLE001 - tf_keras raises many types; the caller reports one line
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        (folder / "layers.json").write_text(json.dumps({"error": f"{type(err).__name__}: {(lines or [''])[0]}"}))
        return
    arrays, layers = {}, []
    for path, layer in leaf_layers(model):
        weights = layer.trainable_weights + layer.non_trainable_weights
        for i, weight in enumerate(weights):
            arrays[f"{path}|{i}"] = np.asarray(weight.numpy())
        layers.append({"path": path, "class": type(layer).__name__,
                       "weights": [[short_name(w.name), list(w.shape)] for w in weights]})
    np.savez(folder / "weights.npz", **arrays)
    inputs = [[None if d is None else int(d) for d in t.shape] for t in model.inputs]
    (folder / "layers.json").write_text(json.dumps({"layers": layers, "inputs": inputs}))


if __name__ == "__main__":
    main(sys.argv[1:])
