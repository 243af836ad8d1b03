"""Calibration inputs synthesised from BatchNorm statistics (issue 39): the synthesised inputs give
each BatchNorm layer batch statistics close to its moving ones; models it cannot serve say why;
``convert`` without a data set calibrates on them, compares on a held-out fifth of them, and says so."""

import json

import keras
import numpy as np
import pytest

from lightcompress.cli import app
from lightcompress.errors import UnsupportedModelError
from lightcompress.factorization import synthesis

from ..cli_checks import runner


def _bn_cnn(nested=False):
    """A CNN with two BatchNorm layers whose moving statistics are those of inputs far from the
    standard normal the synthesis starts from (mean 0.3-1.3 per channel), set layer by layer."""
    keras.utils.set_random_seed(3)
    body = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.Conv2D(8, 3, padding="same", name="c1"),
                             keras.layers.BatchNormalization(name="bn1"), keras.layers.ReLU(),
                             keras.layers.Conv2D(16, 3, padding="same", name="c2"),
                             keras.layers.BatchNormalization(name="bn2")], name="body")
    inputs = keras.Input((12, 12, 3))
    h = inputs
    for layer in [body] if nested else body.layers:  # nested: the layers inside a model inside the model
        h = layer(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(10, name="head")(keras.layers.Dense(64, name="fc")(h)))
    x = np.random.default_rng(1).uniform(0, 1, (256, 12, 12, 3)).astype("float32") * [1.0, 0.5, 0.2] + 0.3
    norms = [body.get_layer("bn1"), body.get_layer("bn2")]
    for norm in norms:  # each layer's statistics with the ones before it already set
        seen = keras.Model(body.inputs, norm.input).predict(x, verbose=0)
        norm.moving_mean.assign(seen.mean((0, 1, 2)))
        norm.moving_variance.assign(seen.var((0, 1, 2)))
    return model, norms, body


def _batch_statistics(body, norm, x):
    seen = keras.Model(body.inputs, norm.input).predict(x, verbose=0)
    return seen.mean((0, 1, 2)), seen.std((0, 1, 2))


@pytest.mark.backend  # Keras's fit and add_loss: the JAX run checks it too
@pytest.mark.parametrize("nested", [False, True])
def test_synthesised_inputs_match_every_batchnorm_layers_moving_statistics(nested):
    model, norms, body = _bn_cnn(nested)
    made = synthesis.synthesise(model, 64, 200, seed=0)
    assert made.x.shape == (64, 12, 12, 3) and made.layers == 2
    assert made.loss < made.start_loss / 5
    for norm in norms:
        mean, std = _batch_statistics(body, norm, made.x)
        target_std = np.sqrt(norm.moving_variance.numpy())
        # stated tolerance: each channel's batch mean within 0.15 moving standard deviations of the
        # moving mean, its standard deviation within 15% of the moving one
        assert np.all(np.abs(mean - norm.moving_mean.numpy()) <= 0.15 * target_std), norm.name
        assert np.all(np.abs(std / target_std - 1) <= 0.15), norm.name
    start = np.random.default_rng(0).standard_normal((64, 12, 12, 3)).astype("float32")  # where it began: far off
    mean, _ = _batch_statistics(body, norms[0], start)
    assert np.any(np.abs(mean - norms[0].moving_mean.numpy()) > 0.15 * np.sqrt(norms[0].moving_variance.numpy()))
    assert all(layer.trainable for layer in model.layers)  # the model is given back as it came


def test_models_it_cannot_serve_say_why():
    plain = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    assert synthesis.why_not(plain) == "the model has no BatchNormalization layer to synthesise inputs from"
    tokens = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(20, 8),
                               keras.layers.BatchNormalization(), keras.layers.Flatten(), keras.layers.Dense(3)])
    assert "token ids" in synthesis.why_not(tokens)
    open_size = keras.Sequential([keras.Input((None, 4)), keras.layers.BatchNormalization(), keras.layers.Dense(3)])
    assert "unknown size" in synthesis.why_not(open_size)
    with pytest.raises(UnsupportedModelError, match="cannot synthesise calibration inputs: the model has no "):
        synthesis.synthesise(plain, 8, 2)


def test_the_size_of_a_synthesis_follows_the_models_cost():
    assert synthesis.plan_size(1e5) == (synthesis.MAX_COUNT, synthesis.MAX_STEPS)  # a small model: the most
    assert synthesis.plan_size(4e9) == (synthesis.MIN_COUNT, synthesis.MIN_STEPS)  # ResNet50: the least
    count, steps = synthesis.plan_size(6e7)  # a MobileNetV2 at alpha 0.35: within the work allowed
    assert synthesis.MIN_COUNT < count < synthesis.MAX_COUNT and steps == synthesis.MAX_STEPS
    assert count * steps * 3 * 6e7 <= synthesis.SYNTHESIS_MACS


def test_convert_without_data_calibrates_on_synthesised_inputs_and_compares_on_held_out_ones(tmp_path):
    model, _, _ = _bn_cnn()
    path = tmp_path / "bn.keras"
    model.save(path)
    synthesis_run = runner.invoke(app, ["convert", str(path), "--rank", "2", "--min-params", "100",
                                        "-o", str(tmp_path / "a.keras"), "--json"])
    assert synthesis_run.exit_code == 0, synthesis_run.output
    out = json.loads(synthesis_run.stdout)
    made = out["synthesis"]
    assert made["batchnorm_layers"] == 2 and made["inputs"] == synthesis.MAX_COUNT
    assert made["mismatch_after"] < made["mismatch_before"]
    assert out["calibration"]["source"] == "inputs synthesised from the model's BatchNorm statistics"
    assert out["calibration"]["samples"] == synthesis.MAX_COUNT - synthesis.MAX_COUNT // 5
    assert out["output_difference"]["source"].startswith("inputs synthesised from the model's BatchNorm statistics")
    assert out["output_difference"]["examples"] == synthesis.MAX_COUNT // 5
    assert out["method"] != "svd"  # data-aware factors

    text = runner.invoke(app, ["convert", str(path), "--rank", "2", "--min-params", "100", "-o",
                               str(tmp_path / "b.keras"), "--force"])
    assert "calibration inputs synthesised from the statistics of 2 BatchNorm layer(s) in" in text.stdout

    plain = runner.invoke(app, ["convert", str(path), "--rank", "2", "--min-params", "100", "--no-synthesis",
                                "-o", str(tmp_path / "c.keras"), "--json"])
    assert plain.exit_code == 0, plain.output
    out = json.loads(plain.stdout)
    assert "synthesis" not in out and out["output_difference"]["source"] == "random inputs"
    assert out["method"] == "svd"


@pytest.mark.backend
def test_the_clock_stops_a_synthesis_that_would_run_long():
    model, _, _ = _bn_cnn()
    made = synthesis.synthesise(model, 32, 10_000, seconds=2.0)
    assert made.steps < 10_000 and made.seconds < 30
    assert made.loss < made.start_loss  # what it did in the time still helped
