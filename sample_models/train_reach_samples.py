"""Train the samples beyond CNNs on the real Fashion-MNIST (deterministic: fixed seeds, TensorFlow
op determinism on CPU):

    python sample_models/train_reach_samples.py     # writes sample_models/fmnist_vit.keras and
                                                    # sample_models/fmnist_conv1d.keras

- ``fmnist_vit.keras``: ``zoo.small_vit`` (MultiHeadAttention blocks) on 28×28×1 images;
- ``fmnist_conv1d.keras``: ``zoo.conv1d_rows`` on the images read as 28 steps × 28 features.
"""

import sys
import time
from pathlib import Path

from lightcompress.data import sets as data
from lightcompress.io import models as model_io
from lightcompress.flows import zoo
from lightcompress.training.evaluation import evaluate

HERE = Path(__file__).resolve().parent
SAMPLES = {
    # file: (builder, input shape, epochs, learning rate)
    "fmnist_vit.keras": (zoo.small_vit, (28, 28, 1), 8, 1e-3),
    "fmnist_conv1d.keras": (zoo.conv1d_rows, (28, 28), 8, 1e-3),
}


def train_sample(name, out_dir=HERE, force=True):
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()  # same file on every run (CPU)
    build, shape, epochs, rate = SAMPLES[name]
    model = build(shape)
    prepared = data.prepare(data.load_dataset("fashion_mnist"), model)
    zoo.train(model, prepared, epochs, batch_size=128, learning_rate=rate, seed=0)
    model_io.save_model(model, Path(out_dir) / name, force=force)
    return model, evaluate(model, prepared)


if __name__ == "__main__":
    for name in sys.argv[1:] or SAMPLES:
        start = time.time()
        model, ev = train_sample(name)
        print(f"{name}: {model.count_params():,} params, test accuracy {ev.accuracy:.4f} "
              f"({ev.examples:,} Fashion-MNIST test images), {time.time() - start:.0f} s", flush=True)
