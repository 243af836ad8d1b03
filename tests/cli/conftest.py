import keras
import numpy as np
import pytest


@pytest.fixture
def small(tmp_path):
    """A tiny classifier of 8x8 images (1,290 params in its Dense) and an .npz of 60 images."""
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(20, activation="relu", name="fc"),
                              keras.layers.Dense(10, activation="softmax", name="head")])
    path = tmp_path / "m.keras"
    model.save(path)
    rng = np.random.default_rng(0)
    x = rng.random((60, 8, 8), dtype=np.float32)
    y = np.arange(60) % 10
    data = tmp_path / "d.npz"
    np.savez(data, x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    return path, data
