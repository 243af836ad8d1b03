"""A subclassed Keras CNN for Fashion-MNIST: the classes, and the script that trains the sample.

The classes are what ``--custom-objects`` imports so that lightcompress can load a model made of
them (importing this file defines and registers them, nothing else)::

    lightcompress compress sample_models/fmnist_subclassed_cnn.keras --target-params 0.2 \\
        --dataset fashion_mnist --custom-objects sample_models/fmnist_subclassed.py

Trained deterministically (fixed seeds, TensorFlow op determinism on CPU) by::

    python sample_models/fmnist_subclassed.py          # 10 epochs on all 60,000 training images

``FashionNet`` is a ``keras.Model`` subclass whose ``call`` runs two ``ConvBlock`` layers (a custom
layer holding a Conv2D and a pooling layer as attributes), then Dense layers held as attributes:
the layers lightcompress replaces in place are attributes at two depths.
"""

import keras


@keras.saving.register_keras_serializable(package="fmnist_samples")
class ConvBlock(keras.layers.Layer):
    """3×3 convolution (ReLU, same padding), then 2×2 max pooling."""

    def __init__(self, filters=32, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")
        self.pool = keras.layers.MaxPooling2D()

    def call(self, x):
        return self.pool(self.conv(x))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="fmnist_samples")
class FashionNet(keras.Model):
    """ConvBlock 32, ConvBlock 64, Flatten, Dense 128 (ReLU), dropout 0.3, Dense softmax."""

    def __init__(self, classes=10, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.block1 = ConvBlock(32)
        self.block2 = ConvBlock(64)
        self.flatten = keras.layers.Flatten()
        self.hidden = keras.layers.Dense(128, activation="relu")
        self.dropout = keras.layers.Dropout(0.3)
        self.head = keras.layers.Dense(classes, activation="softmax")

    def call(self, x, training=False):
        x = self.flatten(self.block2(self.block1(x)))
        return self.head(self.dropout(self.hidden(x), training=training))

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}


NAME = "fmnist_subclassed_cnn.keras"


def main(argv=None):
    import argparse
    import time
    from pathlib import Path

    import lightcompress  # noqa: F401  (quiet Keras import; registers the twins)
    from lightcompress.data import sets as data
    from lightcompress.flows import zoo
    from lightcompress.io import models as model_io
    from lightcompress.training.evaluation import evaluate

    parser = argparse.ArgumentParser(description="Train the subclassed Fashion-MNIST CNN sample.")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / NAME)
    args = parser.parse_args(argv)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(0)
    start = time.time()
    model = FashionNet()
    model(keras.ops.zeros((1, 28, 28, 1)))
    prepared = data.prepare(data.load_dataset("fashion_mnist"), model)
    zoo.train(model, prepared, args.epochs, batch_size=128, learning_rate=1e-3, seed=0)
    ev = evaluate(model, prepared)
    model_io.save_model(model, args.out, force=True)
    print(f"{args.out.name}: {model.count_params():,} params, {args.epochs} epochs on 60,000 training images, test "
          f"accuracy {ev.accuracy:.4f} ({ev.examples:,} test images), {time.time() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
