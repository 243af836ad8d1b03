"""Exports of converted subclassed and keras-hub models: lowered in place (deploy/lower), written
by Keras's exporter, verified in their runtime, and run in a fresh process that can import neither
lightcompress nor the test's model classes."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import lightcompress
from lightcompress.deploy import export
from lightcompress.deploy.lower import light_layers, lower_model
from lightcompress.errors import ExportError
from lightcompress.factorization.candidates import iter_layers

from ..subclassed_models import Net, bert_classifier, images, net, token_inputs

pytest.importorskip("tensorflow")


def _standalone(script, folder):
    """Run ``script`` in a new Python whose path holds neither the worktree nor the tests, with
    ``lightcompress`` blocked; its last stdout line is a float."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    code = textwrap.dedent("""
        import sys
        sys.modules["lightcompress"] = None  # any import of lightcompress fails
        sys.path = [p for p in sys.path if p not in ("", ".") and "wt" not in p and "tests" not in p]
        import numpy as np, tensorflow as tf
        for name in ("lightcompress", "tests.subclassed_models", "subclassed_models"):
            try:
                __import__(name)
                raise SystemExit(name + " was importable")
            except ImportError:
                pass
        d = {folder!r}
    """).format(folder=str(folder)) + textwrap.dedent(script)
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return float(done.stdout.split()[-1])


@pytest.fixture(scope="module")
def light_net():
    """A converted ``Net`` (every kernel planted at rank 2, so the rank-2 twins are exact)."""
    model = net(plant_rank=2)
    return lightcompress.convert(model, energy=0.99999, min_params=0, x=images(8)).model


def test_a_converted_subclass_lowers_in_place_keeping_its_class(light_net):
    x = images(6)
    before = [np.array(w) for w in light_net.get_weights()]
    lowered = lower_model(light_net)
    assert type(lowered) is Net and lowered is not light_net
    assert len(light_layers(light_net)) == 5 and light_layers(lowered) == []
    assert isinstance(lowered.fc, keras.Sequential) and isinstance(lowered.heads[1], keras.Sequential)
    assert isinstance(lowered.block.inner, keras.Sequential)
    assert all(type(layer).__module__.startswith("keras.") for _, layer in iter_layers(lowered))
    np.testing.assert_allclose(lowered.predict(x, verbose=0), light_net.predict(x, verbose=0), atol=1e-6)
    # The input model is unchanged: its twins, its weights, no shared variables.
    assert type(light_net.fc).__name__ == "LightDense"
    for a, b in zip(before, light_net.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not set(map(id, lowered.weights)) & set(map(id, light_net.weights))


@pytest.mark.slow  # a fresh process per format (~9 s); .ci/run runs -m slow
def test_a_converted_subclass_exports_and_runs_without_lightcompress_or_its_class(light_net, tmp_path):
    x = images(5, seed=3)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", light_net.predict(x, verbose=0))
    litert = export.export_model(light_net, tmp_path / "net.tflite", "litert", x=x, repeats=3)
    saved = export.export_model(light_net, tmp_path / "net_sm", "saved_model", x=x, repeats=3)
    assert litert.lowered_layers == saved.lowered_layers == 5
    assert litert.verification.max_abs_diff < 1e-4 and saved.verification.max_abs_diff < 1e-4
    diff = _standalone("""
        x, y = np.load(d + "/x.npy"), np.load(d + "/y.npy")
        saved = tf.saved_model.load(d + "/net_sm")
        out = [saved.serve(x).numpy()]
        runner = tf.lite.Interpreter(d + "/net.tflite").get_signature_runner("serving_default")
        (name,) = runner.get_input_details()
        out += list(runner(**{name: x}).values())
        print(max(float(np.abs(o - y).max()) for o in out))
    """, tmp_path)
    assert diff < 1e-4


def test_keras_format_of_a_converted_subclass_is_refused_in_one_line(light_net, tmp_path):
    with pytest.raises(ExportError, match=r"litert") as err:
        export.export_model(light_net, tmp_path / "net.lowered.keras", "keras", x=images(2), repeats=3)
    assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow  # ~25 s of CPU: converting, lowering, exporting and running a hub model end to end; its parts
# are in the default suite: hub models convert in place (tests/factorization/test_subclassed.py), attention
# lowers (tests/layers/test_reach.py), a converted subclass exports and runs standalone (above)
def test_keras_hub_bert_exports_to_saved_model_and_litert_and_runs_without_lightcompress(tmp_path):
    pytest.importorskip("keras_hub")
    x = token_inputs(n=3, seed=1)
    light = lightcompress.convert(bert_classifier(), rank=4, min_params=0, x=token_inputs()).model
    lowered = lower_model(light)
    assert light_layers(lowered) == [] and type(lowered).__name__ == "BertTextClassifier"
    assert [type(layer).__name__ for layer in light_layers(light)].count("LightMultiHeadAttention") == 2
    for key, value in x.items():
        np.save(tmp_path / f"{key}.npy", value)
    np.save(tmp_path / "y.npy", light.predict(x, verbose=0))
    saved = export.export_model(light, tmp_path / "bert_sm", "saved_model", x=x, repeats=3)
    litert = export.export_model(light, tmp_path / "bert.tflite", "litert", x=x, repeats=3)
    assert saved.verification.max_abs_diff < 1e-4 and litert.verification.max_abs_diff < 1e-4
    diff = _standalone("""
        x = {k: np.load(f"{d}/{k}.npy") for k in ("token_ids", "segment_ids", "padding_mask")}
        y = np.load(d + "/y.npy")
        saved = tf.saved_model.load(d + "/bert_sm")  # kept: its variables die with it
        out = [saved.serve(x).numpy()]
        runner = tf.lite.Interpreter(d + "/bert.tflite").get_signature_runner("serving_default")
        out += list(runner(**x).values())
        print(max(float(np.abs(o - y).max()) for o in out))
    """, tmp_path)
    assert diff < 1e-4


def test_the_python_verb_exports_a_converted_subclass_on_random_inputs(light_net, tmp_path):
    """No data: verification runs on random inputs shaped as the model was built (it has no graph inputs)."""
    result = lightcompress.export(light_net, tmp_path / "net.tflite", format="litert")
    assert result.verification.source == "random inputs" and result.verification.examples == export.VERIFY_RANDOM_EXAMPLES
    assert result.verification.max_abs_diff < 1e-4 and result.lowered_layers == 5
