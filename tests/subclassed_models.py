"""Small models that are not Sequential/Functional graphs, for tests/factorization/test_subclassed.py: a
registered ``keras.Model`` subclass with Dense/Conv2D attributes, a nested composite layer and a
list of layers; a tiny keras-hub BERT classifier."""

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="lightcompress_tests")
class Block(keras.layers.Layer):
    """A composite layer holding a Dense as an attribute."""

    def __init__(self, units=32, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.inner = keras.layers.Dense(units, activation="relu")

    def call(self, x):
        return self.inner(x) + x

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="lightcompress_tests")
class Net(keras.Model):
    def __init__(self, classes=4, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.conv = keras.layers.Conv2D(8, 3, activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.fc = keras.layers.Dense(32, activation="tanh")
        self.block = Block(32)
        self.heads = [keras.layers.Dense(classes), keras.layers.Dense(classes)]

    def call(self, x):
        h = self.block(self.fc(self.pool(self.conv(x))))
        return self.heads[0](h) + self.heads[1](h)

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}


def images(n=16, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, 8, 8, 3)).astype("float32")


def net(plant_rank=None, seed=0):
    """A built ``Net``; with ``plant_rank`` every kernel is set to a product of that rank."""
    model = Net()
    model(images(2))
    if plant_rank is not None:
        rng = np.random.default_rng(seed)
        for layer in (model.conv, model.fc, model.block.inner, *model.heads):
            shape = tuple(layer.kernel.shape)
            n, m = int(np.prod(shape[:-1])), shape[-1]
            a = rng.normal(0, 1 / np.sqrt(n), (n, plant_rank))
            b = rng.normal(0, 1, (plant_rank, m))
            layer.kernel.assign((a @ b).reshape(shape).astype("float32"))
    return model


def bert_classifier():
    import keras_hub

    backbone = keras_hub.models.BertBackbone(vocabulary_size=200, num_layers=2, num_heads=2, hidden_dim=32,
                                             intermediate_dim=64, max_sequence_length=16)
    return keras_hub.models.BertTextClassifier(backbone=backbone, num_classes=3, preprocessor=None)


def token_inputs(n=4, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((n, 16), "int32")
    mask[:, 12:] = 0
    return {"token_ids": rng.integers(1, 200, (n, 16)).astype("int32"),
            "segment_ids": np.concatenate([np.zeros((n, 8)), np.ones((n, 8))], axis=1).astype("int32"),
            "padding_mask": mask}
