"""Files from elsewhere given to `evaluate` and `compare` (issue 34): a SavedModel's graph runs only
with --trust-model; a damaged .tflite that crashes the LiteRT interpreter is one line, not a
segmentation fault of this process."""

import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from lightcompress.cli import app
from lightcompress.deploy import runtimes
from lightcompress.errors import LightCompressError, ModelLoadError

from ..cli_checks import fails as _fails, runner


def _model():
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(20, activation="relu", name="fc"),
                             keras.layers.Dense(10, activation="softmax", name="head")])


# -- a SavedModel runs its graph: only with trust ------------------------------------------------

@pytest.fixture
def hostile_saved_model(tmp_path):
    """A SavedModel whose serving graph writes a marker file each time it runs, and the marker's path."""
    import tensorflow as tf

    marker = tmp_path / "written_by_the_graph.txt"

    class Hostile(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.ones((64, 10)) / 64)

        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32, name="x")])
        def serve(self, x):
            wrote = tf.io.write_file(str(marker), "the graph ran")
            with tf.control_dependencies([wrote]):
                return {"output_0": tf.nn.softmax(tf.reshape(x, (-1, 64)) @ self.w)}

    module = Hostile()
    folder = tmp_path / "hostile_saved_model"
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    assert not marker.exists()
    return folder, marker


def test_a_saved_model_is_refused_without_trust(hostile_saved_model):
    folder, marker = hostile_saved_model
    with pytest.raises(ModelLoadError) as err:
        runtimes.load_artifact(folder)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and message.startswith(f"{folder} is a TensorFlow SavedModel")
    assert "runs the graph it holds" in message and message.endswith("pass trust=True if you trust this file.")
    with pytest.raises(ModelLoadError, match="pass trust=True"):
        runtimes.evaluate_artifact(folder, None)
    assert not marker.exists()


def test_the_hostile_saved_model_is_real(hostile_saved_model):
    folder, marker = hostile_saved_model
    artifact = runtimes.load_artifact(folder, trust=True)
    y = artifact.predict(np.zeros((2, 8, 8, 1), np.float32))
    assert y.shape == (2, 10) and marker.read_text() == "the graph ran"


def test_evaluate_and_compare_refuse_a_saved_model_without_trust_model(hostile_saved_model, small):
    folder, marker = hostile_saved_model
    model, data = small
    line = _fails(["evaluate", folder, "-d", data], "is a TensorFlow SavedModel", [folder, data])
    assert line.endswith("pass --trust-model if you trust this file.")
    line = _fails(["compare", model, folder, "-d", data], "is a TensorFlow SavedModel", [model, folder, data])
    assert "--trust-model" in line and "trust=True" not in line
    assert not marker.exists()


def test_evaluate_and_compare_run_a_saved_model_with_trust_model(hostile_saved_model, small):
    folder, marker = hostile_saved_model
    model, data = small
    result = runner.invoke(app, ["evaluate", str(folder), "-d", str(data), "--trust-model", "--json"])
    assert result.exit_code == 0, result.output
    assert marker.read_text() == "the graph ran"
    marker.unlink()
    result = runner.invoke(app, ["compare", str(model), str(folder), "-d", str(data), "--trust-model", "--json",
                                 "--repeats", "1", "--warmup", "0", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert marker.exists()


# -- a damaged .tflite: one line, not a crash of this process --------------------------------------

_LOAD_IN_THIS_PROCESS = """
import sys, numpy as np
from lightcompress.deploy.runtimes import LiteRTArtifact
LiteRTArtifact(sys.argv[1]).predict(np.zeros((2, 8, 8, 1), np.float32))
"""


@pytest.fixture(scope="module")
def damaged_tflite(tmp_path_factory):
    """A small exported .tflite whose signature names a subgraph the file does not have (index 7 of
    1): the flatbuffer verifier passes it and the interpreter segfaults on it. The crash is checked
    in a child process first, so the tests below meet a real one."""
    from tensorflow.lite.tools import flatbuffer_utils

    folder = tmp_path_factory.mktemp("damaged")
    good = folder / "good.tflite"
    _model().export(str(good), format="litert", verbose=False)
    model = flatbuffer_utils.read_model(str(good))
    assert len(model.subgraphs) == 1 and model.signatureDefs
    model.signatureDefs[0].subgraphIndex = 7
    bad = folder / "damaged.tflite"
    bad.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    crashed = subprocess.run([sys.executable, "-c", _LOAD_IN_THIS_PROCESS, str(bad)], capture_output=True,
                             timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert crashed.returncode == -signal.SIGSEGV, (crashed.returncode, crashed.stderr[-2000:])
    return good, bad


@pytest.mark.slow  # ~21 s: two commands, each probing in a child; kept out of the quick suite (.ci/run runs -m slow)
def test_a_damaged_tflite_is_one_line_from_compare_and_evaluate(damaged_tflite, small):
    _, bad = damaged_tflite
    model, data = small
    expected = (f"error: {bad} is not a usable .tflite file: the LiteRT interpreter crashed on it (SIGSEGV); "
                f"the file is damaged: export it again.")
    assert _fails(["evaluate", bad, "-d", data], "is not a usable .tflite file", [bad, data]) == expected
    assert _fails(["compare", model, bad, "--repeats", "1", "--warmup", "0"], "crashed on it (SIGSEGV)",
                  [model, bad]) == expected
    # this process survived both, and a good export still loads and runs
    good, _ = damaged_tflite
    assert runtimes.load_artifact(good).predict(np.zeros((1, 8, 8, 1), np.float32)).shape == (1, 10)


def test_a_probe_that_runs_too_long_is_one_line(damaged_tflite, monkeypatch):
    good, _ = damaged_tflite
    monkeypatch.setenv("LIGHTCOMPRESS_PROBE_SECONDS", "0.001")
    monkeypatch.setattr(runtimes, "_PROBED", set())
    with pytest.raises(LightCompressError) as err:
        runtimes.load_artifact(good)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and "did not open and run it once within 0.001 s" in message
    assert "LIGHTCOMPRESS_PROBE_SECONDS=600" in message


@pytest.mark.slow  # ~8 s: a probe child; kept out of the quick suite (.ci/run runs -m slow)
def test_a_file_that_is_not_a_model_is_one_line(tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all" * 10)
    with pytest.raises(ModelLoadError) as err:
        runtimes.load_artifact(junk)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and message.startswith(f"{junk} could not be loaded as litert: ")
    assert message.endswith("the file is damaged or not a .tflite file: export it again.")
