"""Run by tests/training/test_distribute.py in a fresh process (a process fixes its devices when the backend
starts): make 2 virtual CPU devices, then fine-tune the same small digits model through the CLI
with --devices 1 and --devices 2 (and the model converted, on 2 devices, distilled from the original). Prints one JSON line: per device count, the loss curve, the
engine, the count and the report text.

JAX gets its 2 devices from XLA_FLAGS=--xla_force_host_platform_device_count=2 (set by the
caller); TensorFlow from two logical CPU devices, made here before TensorFlow starts.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

if os.environ["KERAS_BACKEND"] == "tensorflow":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from lightcompress.cli import app  # noqa: E402
from lightcompress._keras_private import set_random_seed  # noqa: E402

EPOCHS = os.environ.get("DISTRIBUTED_RUN_EPOCHS", "3")

work = Path(tempfile.mkdtemp())
set_random_seed(0)  # what lightcompress does: no TensorFlow import on JAX
model = keras.Sequential([
    keras.Input((8, 8, 1)),
    keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
    keras.layers.Flatten(),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
model.save(work / "digits.keras")
out = {}
converted = CliRunner().invoke(app, ["convert", str(work / "digits.keras"), "--rank", "4", "--min-params", "0",
                                     "-o", str(work / "light.keras")])
assert converted.exit_code == 0, converted.output
# 1 device, 2 devices, then the converted model on 2 devices distilled from the original: a second
# model of other shapes on the same engine in one process, as compress and its trials do
for run, devices, extra in (("1", "1", []), ("2", "2", []), ("distilled", "2", ["--teacher", str(work / "digits.keras")])):
    target = work / f"tuned{run}.keras"
    source = work / ("light.keras" if run == "distilled" else "digits.keras")
    result = CliRunner().invoke(app, ["finetune", str(source), "--dataset", "digits", "--epochs", EPOCHS, "--batch-size", "64",
                                      "--lr", "3e-3", "--devices", devices, "-o", str(target), *extra,
                                      *os.environ.get("DISTRIBUTED_RUN_ARGS", "").split()])
    if result.exit_code != 0:
        sys.exit(f"--devices {devices} {' '.join(extra)} failed: {result.output}")
    history = json.loads((work / f"tuned{run}.history.json").read_text())
    out[run] = {"loss": history["history"]["loss"], "val_loss": history["history"].get("val_loss"),
                    "devices": history["devices"], "engine": history["engine"], "device": history["device"],
                    "seconds": sum(history["epoch_seconds"]), "report": result.stdout,
                    "tensorflow_imported": "tensorflow" in sys.modules}
print(json.dumps(out))
