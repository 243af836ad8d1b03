import json

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from lightcompress.data import sets as data
from lightcompress.io import models as model_io
from lightcompress.training import evaluation
from lightcompress.training import finetune
from lightcompress.cli import app
from lightcompress.flows.convert import convert
from tests.models import policy

from ..conftest import real_model_path
from ..cli.test_convert_command import _fails_with

runner = CliRunner()


@pytest.fixture(scope="module")
def fashion_slice(tmp_path_factory):
    """A few hundred real Fashion-MNIST images when Debian's package is here, else skip."""
    try:
        ds = data.load_dataset("fashion_mnist", datasets_dir=tmp_path_factory.mktemp("none"))
    except Exception as err:  # noqa: BLE001
        pytest.skip(f"Fashion-MNIST not available offline here: {err}")
    return ds.limit(600, 300)


def test_short_finetune_of_converted_real_model_improves_loss(fashion_slice, tmp_path):
    original = model_io.load_model(real_model_path("fmnist_cnn_keras2.h5"))
    prepared = data.prepare(fashion_slice, original)
    converted = convert(original, *policy(rank=4), prepared.x_test).model
    before = evaluation.evaluate(converted, prepared)
    fit = finetune.finetune(converted, prepared, finetune.FitSettings(epochs=3, batch_size=32, learning_rate=1e-3))
    after = evaluation.evaluate(converted, prepared)
    assert after.loss < before.loss
    assert fit.epochs_run >= 1 and len(fit.epoch_seconds) == fit.epochs_run and not fit.interrupted
    path = model_io.save_model(converted, tmp_path / "tuned.keras")
    reloaded = keras.models.load_model(path)
    assert evaluation.evaluate(reloaded, prepared).loss == pytest.approx(after.loss, rel=1e-5)


@pytest.mark.backend
def test_evaluate_matches_keras_metrics():
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    prepared = data.prepare(data.load_dataset("digits"), model)
    mine = evaluation.evaluate(model, prepared)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loss, accuracy = model.evaluate(prepared.x_test, prepared.y_test, verbose=0)
    assert mine.loss == pytest.approx(loss, rel=1e-4) and mine.accuracy == pytest.approx(accuracy)
    assert mine.examples == 360 and mine.top5_accuracy is None and mine.seconds > 0


@pytest.mark.backend
def test_logits_models_get_a_from_logits_loss_and_top5_above_ten_classes():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(12)])
    x = np.random.default_rng(0).normal(size=(50, 4)).astype("float32")
    assert evaluation.output_kind(model, x) == "logits"
    prepared = data.Prepared("t", x, np.arange(50) % 12, x, np.arange(50) % 12, 12)
    result = evaluation.evaluate(model, prepared)
    assert result.top5_accuracy is not None and result.top5_accuracy >= result.accuracy
    y = model.predict(x, verbose=0)
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(prepared.y_test, y)
    assert result.loss == pytest.approx(float(expected), rel=1e-4)


@pytest.mark.backend
def test_interrupt_keeps_best_weights(monkeypatch):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    prepared = data.prepare(data.load_dataset("digits"), model)

    class StopOnSecondEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.saved = [w.copy() for w in self.model.get_weights()]

        def on_train_batch_begin(self, batch, logs=None):
            if hasattr(self, "saved"):
                raise KeyboardInterrupt

    fit = finetune.finetune(model, prepared, finetune.FitSettings(epochs=5), callbacks=[StopOnSecondEpoch()])
    assert fit.interrupted and fit.epochs_run == 2
    assert fit.best_epoch in (1, 2)


def _digits_model(path):
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv"),
        keras.layers.Flatten(),
        keras.layers.Dense(48, activation="relu", name="fc"),
        keras.layers.Dense(10, activation="softmax", name="head"),
    ])
    model.save(path)
    return path


@pytest.mark.backend
def test_cli_finetune_and_evaluate_on_digits(tmp_path):  # named: there is no default data set (issue 38)
    source = _digits_model(tmp_path / "digits.keras")
    out = tmp_path / "tuned.keras"
    result = runner.invoke(app, ["finetune", str(source), "-d", "digits", "--epochs", "2", "--lr", "1e-3",
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "fine-tuned" in result.stdout and "digits" in result.stdout and "CPU" in result.stdout
    history = json.loads((tmp_path / "tuned.history.json").read_text())
    assert history["epochs_run"] == 2 and len(history["history"]["loss"]) == 2
    assert history["accuracy"]["after"]["accuracy"] > history["accuracy"]["before"]["accuracy"]
    assert history["device"].startswith("CPU")
    result = runner.invoke(app, ["evaluate", str(out), "-d", "digits", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["accuracy"] == pytest.approx(history["accuracy"]["after"]["accuracy"])
    assert report["examples"] == 360


@pytest.mark.backend
def test_cli_convert_with_dataset_reports_accuracy(tmp_path):
    source = _digits_model(tmp_path / "digits.keras")
    result = runner.invoke(app, ["convert", str(source), "--rank", "2", "--dataset", "digits", "--json",
                                 "-o", str(tmp_path / "c.keras")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["accuracy"]) == {"before", "after", "accuracy_change"}
    assert report["output_difference"]["source"] == "test images of digits"
    assert report["output_difference"]["examples"] == 360


@pytest.mark.backend
def test_cli_data_errors(tmp_path):
    source = _digits_model(tmp_path / "digits.keras")
    gray = tmp_path / "gray28.keras"
    keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]).save(gray)
    _fails_with(["evaluate", gray], "no data set was given and this needs one; pass --dataset NAME", [gray])
    _fails_with(["evaluate", gray, "-d", "digits"], "images are 8x8 but the model takes 28x28; pass --resize", [gray])
    assert runner.invoke(app, ["evaluate", str(gray), "-d", "digits", "--resize"]).exit_code == 0
    rgb = tmp_path / "rgb.npz"
    x = np.zeros((6, 8, 8, 3), np.uint8)
    np.savez(rgb, x_train=x, y_train=np.arange(6), x_test=x, y_test=np.arange(6))
    _fails_with(["finetune", source, "-d", rgb], "images have 3 channel(s) but the model takes 1", [source])
    many = tmp_path / "many.npz"
    x = np.zeros((200, 8, 8), np.uint8)
    np.savez(many, x_train=x, y_train=np.arange(200) % 100, x_test=x, y_test=np.arange(200) % 100)
    _fails_with(["finetune", source, "-d", many], "has 100 classes but the model has a 10-way output")
    _fails_with(["evaluate", source, "-d", "imagenet"], "unknown data set 'imagenet'")
    _fails_with(["finetune", source, "-d", "digits", "--epochs", "0"], "--epochs 0 is invalid")
    _fails_with(["finetune", source, "-d", "digits", "--val-split", "1.5"], "--val-split 1.5 is invalid")
    _fails_with(["finetune", source, "-d", "digits", "--train-limit", "0"], "--train-limit 0 is invalid")
    _fails_with(["finetune", source, "-d", "digits", "-o", source, "--force"], "never overwrites its input", [source])
    assert not list(tmp_path.glob("*.tuned.keras"))  # nothing written by the failed runs
