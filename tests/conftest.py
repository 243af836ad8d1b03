import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REAL_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "real_models"


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def real_model_path(name: str) -> Path:
    path = REAL_MODELS / name
    if not path.exists():
        pytest.skip(f"{path} is not here (../shared/real_models sits beside the checkout)")
    return path
