"""lightcompress runs on Keras backends other than TensorFlow, on machines without TensorFlow.

GPU machines often have JAX but not TensorFlow. A fresh process runs the core verbs under
KERAS_BACKEND=jax with TensorFlow made unimportable (as where it is not installed): any
``import tensorflow`` in lightcompress on those paths fails the test. (Where TensorFlow *is*
installed, Keras itself imports it while serialising a layer config, to ask whether it is
there; that import is Keras's probe, not a need, so the test blocks it rather than looking
at ``sys.modules``.) TensorFlow-only paths say so in one line: LiteRT/SavedModel export.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys, tempfile
from pathlib import Path


class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError("No module named 'tensorflow' (blocked by the test)")


sys.meta_path.insert(0, NoTensorFlow())
import keras
import lightcompress
from lightcompress.data.sets import Prepared, load_dataset, prepare
from lightcompress.training.evaluation import evaluate
from typer.testing import CliRunner
from lightcompress.cli import app

assert keras.backend.backend() == "jax"
out = {}
work = Path(tempfile.mkdtemp())
from lightcompress._keras_private import set_random_seed
set_random_seed(0)
model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
                          keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
model.save(work / "m.keras")
model.save(work / "m.h5")

# the Python verbs, in memory
loaded = lightcompress.load_model(work / "m.h5")
out["inspect_layers"] = len(lightcompress.inspect(loaded)["layers"])
conversion = lightcompress.convert(loaded, rank=4, min_params=0)
fit = lightcompress.finetune(conversion.model, data="digits", epochs=2, devices="all")
prepared = prepare(load_dataset("digits"), conversion.model)
out["fit"] = {"loss": fit.history["loss"], "engine": fit.engine, "devices": fit.devices, "device": fit.device}
out["accuracy"] = evaluate(conversion.model, prepared).accuracy
import numpy as np
predicted = np.argmax(np.asarray(conversion.model.predict(prepared.x_test, verbose=0)), axis=-1)
out["accuracy_by_hand"] = float(np.mean(predicted == np.asarray(prepared.y_test)))

# the commands, on files
runner = CliRunner()
commands = {
    "inspect": ["inspect", str(work / "m.keras")],
    "convert": ["convert", str(work / "m.keras"), "--rank", "4", "--min-params", "0", "--dataset", "digits",
                "-o", str(work / "c.keras")],
    "finetune": ["finetune", str(work / "c.keras"), "--dataset", "digits", "--epochs", "1", "-o", str(work / "t.keras")],
    "evaluate": ["evaluate", str(work / "t.keras"), "--dataset", "digits"],
    "export_keras": ["export", str(work / "t.keras"), "--format", "keras", "-o", str(work / "e.keras")],
    "export_litert": ["export", str(work / "t.keras"), "--format", "litert"],
}
out["cli"] = {}
for name, args in commands.items():
    result = runner.invoke(app, args)
    out["cli"][name] = {"code": result.exit_code, "output": result.output[-2000:]}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def without_tensorflow():
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "COLUMNS": "200",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# The three tests below share one JAX subprocess with TensorFlow blocked (~30 s): slow, all three,
# so the quick suite does not start it; .ci/run runs -m slow.
@pytest.mark.slow
def test_python_verbs_run_on_jax_without_tensorflow(without_tensorflow):
    out = without_tensorflow
    assert out["inspect_layers"] >= 2
    assert out["fit"]["devices"] == 1 and out["fit"]["engine"] == "keras"  # one CPU: no strategy
    assert out["fit"]["device"].endswith("(jax)")
    assert out["fit"]["loss"][-1] < out["fit"]["loss"][0]
    assert out["accuracy"] == pytest.approx(out["accuracy_by_hand"])  # evaluate agrees with a count by hand
    assert out["accuracy"] > 0.2  # two epochs on digits: well above chance (0.1)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["inspect", "convert", "finetune", "evaluate", "export_keras"])
def test_commands_run_on_jax_without_tensorflow(without_tensorflow, command):
    result = without_tensorflow["cli"][command]
    assert result["code"] == 0, result["output"]


@pytest.mark.slow
def test_tensorflow_only_export_says_so_in_one_line(without_tensorflow):
    result = without_tensorflow["cli"]["export_litert"]
    assert result["code"] == 1
    lines = result["output"].strip().splitlines()
    assert len(lines) == 1 and "needs TensorFlow, which is not installed here" in lines[0], result["output"]
