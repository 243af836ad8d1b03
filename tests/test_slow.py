"""Long end-to-end runs on the full Fashion-MNIST: `python -m pytest -m slow`.

Needs Debian's dataset-fashion-mnist (or the files in the Keras cache).
"""

import pytest

from lightcompress.data import sets as data
from lightcompress.io import models as model_io
from lightcompress.training import evaluation
from lightcompress.training import finetune
from lightcompress.flows.convert import convert
from tests.models import policy

from .conftest import real_model_path

ORIGINAL_ACCURACY = 0.9116  # fmnist_cnn_keras2.h5 on the 10,000 test images (shared/real_models/README.md)
MARGIN = 0.03


@pytest.mark.slow
def test_rank8_recovers_within_three_points_after_one_epoch():
    original = model_io.load_model(real_model_path("fmnist_cnn_keras2.h5"))
    prepared = data.prepare(data.load_dataset("fashion_mnist"), original)
    assert evaluation.evaluate(original, prepared).accuracy == pytest.approx(ORIGINAL_ACCURACY, abs=1e-4)
    converted = convert(original, *policy(rank=8), prepared.x_test[:1000]).model
    start = evaluation.evaluate(converted, prepared).accuracy
    assert start < ORIGINAL_ACCURACY - 0.1  # rank 8 really costs accuracy before fine-tuning
    finetune.finetune(converted, prepared, finetune.FitSettings(epochs=1))
    assert evaluation.evaluate(converted, prepared).accuracy >= ORIGINAL_ACCURACY - MARGIN
