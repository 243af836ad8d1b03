"""The sample architectures: the LightLayers paper's CNN and its variants, an MLP, and a CNN whose
Dense layers hold most of its parameters. Built deterministically for a given input shape.

The paper's CNN (arXiv:2101.02268, Fashion-MNIST): three blocks of two 3×3 convs with
BatchNorm and ReLU, 2×2 max-pooling after each block, filters 8/16/32, global average pooling,
Dense softmax: 18,818 parameters on 28×28×1 inputs.

>>> paper_cnn((28, 28, 1)).count_params()
18818
"""

from __future__ import annotations

import keras
from keras import layers

from ..layers import LightConv2D, LightDense

PAPER_FILTERS = (8, 16, 32)


def _paper_body(input_shape, conv, name, classes=10, head_rank=None):
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for block, filters in enumerate(PAPER_FILTERS, start=1):
        for i in (1, 2):
            x = conv(filters, f"block{block}_conv{i}")(x)
            x = layers.BatchNormalization(name=f"block{block}_bn{i}")(x)
            x = layers.ReLU(name=f"block{block}_relu{i}")(x)
        x = layers.MaxPooling2D(2, padding="same", name=f"block{block}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if head_rank is None:
        outputs = layers.Dense(classes, activation="softmax", name="classifier")(x)
    else:
        outputs = LightDense(classes, rank=head_rank, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


def paper_cnn(input_shape=(28, 28, 1), classes=10):
    """The paper's Conv2D baseline."""
    return _paper_body(input_shape, lambda f, n: layers.Conv2D(f, 3, padding="same", name=n),
                       "paper_conv2d", classes)


def paper_separable_cnn(input_shape=(28, 28, 1), classes=10):
    """The paper's SeparableConv2D row: every conv a depthwise-separable one."""
    return _paper_body(input_shape, lambda f, n: layers.SeparableConv2D(f, 3, padding="same", name=n),
                       "paper_separable", classes)


def paper_light_cnn(k, input_shape=(28, 28, 1), classes=10, head_rank=None):
    """The paper's LightLayers row: every conv a LightConv2D(factorization="paper") with K = ``k``
    (with the L2(1e-4) kernel regulariser the authors' public code uses by default).

    The paper's counts (2,649 for K=1 ... 11,364 for K=6) are 16 more than this model's: the
    authors' public LightDense defaults to k=8, and a LightDense(10, rank 8) head holds
    8·(32+10)+10 = 346 params against Dense's 330. ``head_rank=8`` reproduces their counts.
    """
    return _paper_body(
        input_shape,
        lambda f, n: LightConv2D(f, 3, rank=k, padding="same", factorization="paper", name=n,
                                 kernel_regularizer=keras.regularizers.L2(1e-4)),
        f"paper_light_k{k}",
        classes,
        head_rank,
    )


def mlp(input_shape=(8, 8), classes=10):
    """A plain MLP: flatten, 128, 64, softmax."""
    return keras.Sequential([
        keras.Input(input_shape, name="image"),
        layers.Flatten(name="flatten"),
        layers.Dense(128, activation="relu", name="fc1"),
        layers.Dense(64, activation="relu", name="fc2"),
        layers.Dense(classes, activation="softmax", name="classifier"),
    ], name="mlp")


def dense_heavy_cnn(input_shape=(8, 8, 1), classes=10):
    """Two 3×3 convs, then Dense layers that hold most of the parameters."""
    return keras.Sequential([
        keras.Input(input_shape, name="image"),
        layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
        layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
        layers.MaxPooling2D(2, name="pool"),
        layers.Flatten(name="flatten"),
        layers.Dropout(0.2, name="dropout"),
        layers.Dense(128, activation="relu", name="fc1"),
        layers.Dense(64, activation="relu", name="fc2"),
        layers.Dense(classes, activation="softmax", name="classifier"),
    ], name="dense_heavy_cnn")


def train(model, data, epochs, batch_size=64, learning_rate=1e-3, seed=0, verbose=0):
    """Train from scratch with Adam on prepared data (no validation split); returns the history."""
    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = data.arrays("train")
    return model.fit(x, y, epochs=epochs, batch_size=batch_size,
                     shuffle=True, verbose=verbose)


def small_vit(input_shape=(28, 28, 1), classes=10, dim=64, depth=2, heads=4, mlp=128, patch=4):
    """A small Vision Transformer: 4×4 patches embedded by a strided conv, a depthwise 3×3 conv
    added as position encoding (as in CPVT), ``depth`` pre-norm blocks of MultiHeadAttention and
    a GELU MLP, layer norm, average pooling over the patches, Dense softmax."""
    inputs = keras.Input(input_shape, name="image")
    x = layers.Conv2D(dim, patch, strides=patch, name="patch_embed")(inputs)
    x = layers.Add(name="pos_add")([x, layers.DepthwiseConv2D(3, padding="same", name="pos_conv")(x)])
    tokens = (input_shape[0] // patch) * (input_shape[1] // patch)
    x = layers.Reshape((tokens, dim), name="tokens")(x)
    for i in range(1, depth + 1):
        h = layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_ln1")(x)
        h = layers.MultiHeadAttention(heads, dim // heads, name=f"block{i}_attn")(h, h)
        x = layers.Add(name=f"block{i}_add1")([x, h])
        h = layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_ln2")(x)
        h = layers.Dense(mlp, activation="gelu", name=f"block{i}_mlp1")(h)
        h = layers.Dense(dim, name=f"block{i}_mlp2")(h)
        x = layers.Add(name=f"block{i}_add2")([x, h])
    x = layers.LayerNormalization(epsilon=1e-6, name="final_ln")(x)
    x = layers.GlobalAveragePooling1D(name="gap")(x)
    outputs = layers.Dense(classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="small_vit")


def conv1d_rows(input_shape=(28, 28), classes=10):
    """A Conv1D model reading an image as a sequence of rows (28 steps × 28 features): three
    Conv1D layers (64, 96, 128 filters, kernel 3) with max-pooling, global average pooling,
    Dense 96, Dense softmax."""
    inputs = keras.Input(input_shape, name="rows")
    x = inputs
    for i, filters in enumerate((64, 96, 128), start=1):
        x = layers.Conv1D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        if i < 3:
            x = layers.MaxPooling1D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling1D(name="gap")(x)
    x = layers.Dense(96, activation="relu", name="fc")(x)
    outputs = layers.Dense(classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="conv1d_rows")
