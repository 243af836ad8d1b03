import gc
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# NumPy's OpenBLAS on one thread (the processes the tests start inherit it): the tests' matrices are
# small, and on a busy machine OpenBLAS threads spin waiting for each other (a 600x530 QR took 4 s
# of CPU instead of 0.03 s); set OPENBLAS_NUM_THREADS to choose otherwise.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# whole-model timings stop on their notches alone (the 6-second floor is for users; tests assert no speed)
os.environ.setdefault("LIGHTCOMPRESS_TIMING_SECONDS", "0")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Where benchmarks/fetch_real_models.py puts them (git-ignored), then ../shared/real_models.
REAL_MODEL_DIRS = (Path(__file__).resolve().parents[1] / "real_models",
                   Path(__file__).resolve().parents[1].parent / "shared" / "real_models")
REAL_MODELS = REAL_MODEL_DIRS[-1]


def pytest_collection_finish(session):
    """Freeze what importing the tests left on the heap (TensorFlow, Keras, the package: about half
    a million objects) out of the collector's reach: Python's own collections then look only at
    what the tests made."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield
    # Keras's global state reset; the garbage is left to Python's collector, which runs when enough
    # has piled up, not after every test (a forced collection cost 0.1-0.25 s per test).
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def real_model_path(name: str) -> Path:
    for folder in REAL_MODEL_DIRS:
        if (folder / name).exists():
            return folder / name
    pytest.skip(f"{name} is in none of {', '.join(map(str, REAL_MODEL_DIRS))} "
                "(python benchmarks/fetch_real_models.py fetches it)")


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
