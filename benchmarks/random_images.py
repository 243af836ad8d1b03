"""Random 224x224 RGB images with random labels, for `--dataset benchmarks/random_images.py:load`:
int8 calibration and latency of the 224x224 benchmark models (benchmarks/deploy_latency.py), whose
weights are random too. Their accuracy means nothing."""

import numpy as np
import tensorflow as tf


def load(split):
    rng = np.random.default_rng(0 if split == "train" else 1)
    n = 64 if split == "train" else 16
    images = rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)
    labels = rng.integers(0, 1000, n).astype("int64")
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
