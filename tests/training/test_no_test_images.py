"""Early stopping, the sensitivity analysis and the allocation decide on held-out *training*
images: a spy on the test split proves neither fine-tuning nor compress reads it (issue 24)."""

import keras
import pytest

from lightcompress.data import memory
from lightcompress.data import sets as data
from lightcompress.errors import LightCompressError
from lightcompress.flows.compress import CompressSettings, compress
from lightcompress.training import finetune
from lightcompress.training.evaluation import evaluate


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu", name="fc"),
        keras.layers.Dense(10, activation="softmax", name="head"),
    ])


@pytest.fixture
def guarded(monkeypatch):
    """The digits set, prepared, whose test images raise when anything reads them."""
    model = _model()
    prepared = data.prepare(data.load_dataset("digits"), model)
    test_images = prepared.x_test
    real_split = memory.Prepared._split

    def spy(self, split):
        x, y = real_split(self, split)
        if x is test_images:
            raise LightCompressError("the test images were read")
        return x, y

    monkeypatch.setattr(memory.Prepared, "_split", spy)
    return model, prepared


def test_the_spy_sees_a_read_of_the_test_images(guarded):
    model, prepared = guarded
    with pytest.raises(LightCompressError, match="test images were read"):
        evaluate(model, prepared)


def test_early_stopping_never_reads_test_images(guarded):
    model, prepared = guarded
    model.compile("adam", "sparse_categorical_crossentropy")
    fit = finetune.finetune(model, prepared, finetune.FitSettings(epochs=3, patience=1, batch_size=128))
    assert fit.epochs_run >= 1 and "val_loss" in fit.history  # stopped on the held-out training split


@pytest.mark.slow  # a whole compress (~8 s); .ci/run runs -m slow
def test_compress_never_reads_test_images(guarded):
    model, prepared = guarded
    result = compress(model, prepared, CompressSettings.make(target_params=0.5, settings=finetune.FitSettings(epochs=1, batch_size=128), runtime="keras", holdout_size=200, use_cache=False, layer_filter=None))
    assert result.model.count_params() <= 0.5 * model.count_params()
