"""Small models of every graph shape the converter must handle, built deterministically."""

import keras
from keras import layers


def residual():
    inputs = keras.Input((12, 12, 3), name="image")
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="stem")(inputs)
    y = layers.Conv2D(16, 3, padding="same", activation="relu", name="branch_a")(x)
    y = layers.Conv2D(16, 3, padding="same", name="branch_b")(y)
    x = layers.Add(name="add")([x, y])
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(64, activation="relu", name="fc")(x)
    outputs = layers.Dense(10, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="residual")


def multi_io():
    image = keras.Input((8, 8, 2), name="image")
    meta = keras.Input((20,), name="meta")
    x = layers.Conv2D(24, 3, activation="relu", name="conv")(image)
    x = layers.Flatten()(x)
    m = layers.Dense(48, activation="relu", name="meta_fc")(meta)
    joined = layers.Concatenate()([x, m])
    cls = layers.Dense(40, activation="relu", name="cls_fc")(joined)
    cls = layers.Dense(5, activation="softmax", name="cls")(cls)
    reg = layers.Dense(3, name="reg")(joined)
    return keras.Model([image, meta], [cls, reg], name="multi_io")


def nested():
    block = keras.Sequential(
        [keras.Input((30,)), layers.Dense(60, activation="relu", name="inner_a"),
         layers.Dense(40, activation="relu", name="inner_b")],
        name="block",
    )
    inputs = keras.Input((30,), name="x")
    x = block(inputs)
    outputs = layers.Dense(4, activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs, name="nested")


def shared():
    shared_fc = layers.Dense(50, activation="relu", name="shared_fc")
    a = keras.Input((50,), name="a")
    b = keras.Input((50,), name="b")
    x = layers.Add()([shared_fc(a), shared_fc(b)])
    outputs = layers.Dense(3, name="out")(x)
    return keras.Model([a, b], outputs, name="shared")


def sequential_mlp():
    return keras.Sequential(
        [keras.Input((32,)), layers.Dense(64, activation="relu", name="h1"),
         layers.Dropout(0.1), layers.Dense(64, activation="relu", name="h2"),
         layers.Dense(10, activation="softmax", name="out")],
        name="mlp",
    )


GRAPHS = {"residual": residual, "multi_io": multi_io, "nested": nested, "shared": shared,
          "sequential": sequential_mlp}


def policy(rank=None, energy=None, ratio=None, target_params=None, **filter_options):
    """(rank rule, layer filter) for ``convert`` and ``make_plan``, from one set of keywords. Conv2D
    layers in channel mode unless ``conv_mode`` is given: the tests that use this check channel
    factorisations (the library's default is ``auto``)."""
    from lightcompress.planning import LayerFilter, rank_rule

    filter_options.setdefault("conv_mode", "channel")
    return rank_rule(rank=rank, energy=energy, ratio=ratio, target_params=target_params), LayerFilter(**filter_options)
