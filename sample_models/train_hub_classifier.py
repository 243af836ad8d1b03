"""Train a tiny keras-hub image classifier on Fashion-MNIST (no download: the backbone is built from
a config; deterministic: fixed seeds, TensorFlow op determinism on CPU):

    python sample_models/train_hub_classifier.py                    # 8 epochs on all 60,000 images
    python sample_models/train_hub_classifier.py --epochs 2 --train-limit 20000   # a quick one

writes ``sample_models/fmnist_hub_vit.keras`` only when the file is under ``--max-bytes`` (2 MB).

The model is ``keras_hub.models.ViTImageClassifier`` (a ``keras_hub.models.ImageClassifier``) over
a ``ViTBackbone``: 28×28×1 images cut in 7×7 patches (16 patches and a class token), 2 encoder
layers of hidden size 64, 4 heads, MLP 128; the class token's output goes to a softmax Dense.
It is the issue's target for "the models users bring": converted in place by lightcompress
(``lightcompress convert fmnist_hub_vit.keras --target-params 0.3 --dataset fashion_mnist``), saved
and reloaded as a ``ViTImageClassifier``, exported to LiteRT without lightcompress.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import lightcompress  # noqa: F401  (quiet Keras import; registers the twins)
from lightcompress.data import sets as data
from lightcompress.io import models as model_io
from lightcompress.flows import zoo
from lightcompress.training.evaluation import evaluate

HERE = Path(__file__).resolve().parent
NAME = "fmnist_hub_vit.keras"
CONFIG = dict(image_shape=(28, 28, 1), patch_size=7, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128)


def build(classes=10):
    import keras_hub

    backbone = keras_hub.models.ViTBackbone(**CONFIG)
    return keras_hub.models.ViTImageClassifier(backbone=backbone, num_classes=classes, preprocessor=None,
                                               activation="softmax", name="fmnist_hub_vit")


class _Limited:
    """The prepared data set with its first ``limit`` training images (the files' own order)."""

    def __init__(self, prepared, limit):
        self.prepared, self.limit = prepared, limit

    def arrays(self, split):
        x, y = self.prepared.arrays(split)
        return (x[:self.limit], y[:self.limit]) if self.limit else (x, y)


def train(epochs=8, train_limit=0, batch_size=128, rate=1e-3):
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()  # same file on every run (CPU)
    keras.utils.set_random_seed(0)
    model = build()
    prepared = data.prepare(data.load_dataset("fashion_mnist"), model)
    zoo.train(model, _Limited(prepared, train_limit), epochs, batch_size=batch_size, learning_rate=rate, seed=0)
    return model, evaluate(model, prepared)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--train-limit", type=int, default=0, help="first N training images (0: all 60,000)")
    parser.add_argument("--out", type=Path, default=HERE / NAME)
    parser.add_argument("--max-bytes", type=int, default=2_000_000)
    args = parser.parse_args(argv)
    start = time.time()
    model, ev = train(args.epochs, args.train_limit)
    with tempfile.TemporaryDirectory() as tmp:
        path = model_io.save_model(model, Path(tmp) / NAME)
        size = path.stat().st_size
        kept = size < args.max_bytes
        if kept:
            model_io.save_model(model, args.out, force=True)
    print(f"{NAME}: {model.count_params():,} params, {args.epochs} epoch(s) on "
          f"{args.train_limit or 60000:,} training images, test accuracy {ev.accuracy:.4f} "
          f"({ev.examples:,} Fashion-MNIST test images), {time.time() - start:.0f} s; file {size:,} bytes"
          f"{f', written to {args.out}' if kept else f', NOT written (over {args.max_bytes:,} bytes)'}",
          flush=True)
    return 0 if kept else 1


if __name__ == "__main__":
    sys.exit(main())
