"""Files written by tf_keras itself (Keras 2.21, run in a subprocess): what lightcompress loads
predicts what tf_keras predicts, through the rewrite rules and through the tf_keras fallback.

A nested MobileNetV2-like model laid out as Teachable Machine exports are (``groups: 1`` in its
DepthwiseConv2D, nested lists of one, a head whose first Dense carries ``batch_input_shape``) and
a stacked LSTM (``time_major``), saved by tf_keras as ``.h5``. Slow: two TensorFlow start-ups.
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from lightcompress.errors import LightCompressWarning, ModelLoadError
from lightcompress.io import legacy, models

# Looked up, never imported: tf_keras in this process would break test_baseline's check that
# the main process never holds it.
if importlib.util.find_spec("tf_keras") is None:
    pytest.skip("needs tf-keras (the [baseline] extra)", allow_module_level=True)

WRITER = r'''
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
from pathlib import Path
import numpy as np
import tf_keras as k

folder = Path(sys.argv[1])
k.utils.set_random_seed(0)
rng = np.random.default_rng(0)

inputs = k.Input((16, 16, 3), name="input_1")
x = k.layers.ZeroPadding2D(((0, 1), (0, 1)), name="Conv1_pad")(inputs)
x = k.layers.Conv2D(8, 3, strides=2, use_bias=False, name="Conv1")(x)
x = k.layers.BatchNormalization(name="bn_Conv1")(x)
x = k.layers.ReLU(6.0, name="Conv1_relu")(x)
x = k.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="expanded_conv_depthwise")(x)
x = k.layers.BatchNormalization(name="expanded_conv_depthwise_BN")(x)
x = k.layers.ReLU(6.0, name="expanded_conv_depthwise_relu")(x)
x = k.layers.Conv2D(16, 1, use_bias=False, name="Conv_1")(x)
x = k.layers.BatchNormalization(name="Conv_1_bn")(x)
x = k.layers.ReLU(6.0, name="out_relu")(x)
model3 = k.Model(inputs, x, name="model3")
for layer in model3.layers:
    if isinstance(layer, k.layers.BatchNormalization):
        layer.set_weights([rng.random(w.shape).astype("float32") + 0.5 for w in layer.get_weights()])
base = k.Sequential([k.Input((16, 16, 3)), model3, k.layers.GlobalAveragePooling2D(name="pool")], name="sequential_9")
head = k.Sequential([k.layers.Dense(10, activation="relu", input_shape=(16,), name="dense_Dense5"),
                     k.layers.Dense(3, activation="softmax", use_bias=False, name="dense_Dense6")],
                    name="sequential_11")
teachable = k.Sequential([k.Input((16, 16, 3)), base, head], name="sequential_12")

lstm = k.Sequential([k.layers.LSTM(6, input_shape=(7, 3), return_sequences=True, name="lstm"),
                     k.layers.LSTM(4, name="lstm_1"), k.layers.Dense(2, name="dense")], name="sequential")

for name, model in (("keras_model", teachable), ("lstm", lstm)):
    model.save(folder / f"{name}.h5")
    x = rng.random((4, *model.inputs[0].shape[1:]), dtype=np.float32)
    np.savez(folder / f"{name}.npz", x=x, y=model.predict(x, verbose=0))
'''


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tf_keras")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", WRITER, str(folder)], check=True, capture_output=True, env=env, timeout=600)
    return folder


def _notes(caught):
    return [str(w.message).split(": ", 1)[1] for w in caught if issubclass(w.category, LightCompressWarning)]


@pytest.mark.slow
@pytest.mark.parametrize("name, rules", [
    ("keras_model", ["dropped 'groups': 1 from DepthwiseConv2D", "nested model 'model3'",
                     "model 'model3': Keras 2's module"]),
    ("lstm", ["dropped 'time_major': false from recurrent layers 'lstm', 'lstm_1'"]),
])
def test_tf_keras_files_predict_what_tf_keras_predicts(written, name, rules):
    path = written / f"{name}.h5"
    data = np.load(written / f"{name}.npz")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = models.load_model(path)
    notes = _notes(caught)
    for rule in rules:
        assert any(note.startswith(rule) for note in notes), (rule, notes)
    assert not any("carried" in note for note in notes)
    np.testing.assert_allclose(model.predict(data["x"], verbose=0), data["y"], atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["keras_model", "lstm"])
def test_weights_carried_from_tf_keras_predict_what_tf_keras_predicts(written, name):
    """The fallback, forced: the model built from the rewritten config, the weights read by the real
    tf_keras worker and carried layer by layer, nested models included."""
    path = written / f"{name}.h5"
    data = np.load(written / f"{name}.npz")
    config = models.read_config(path)
    fixed, _ = legacy.rewrite_config(config, keras_2=True)
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = models._carried(path, "h5", fixed, False,
                                ModelLoadError(f"{path} could not be loaded by Keras: (forced)"), Path(folder))
    assert any(note.startswith("weights carried from tf_keras layer by layer") for note in _notes(caught))
    np.testing.assert_allclose(model.predict(data["x"], verbose=0), data["y"], atol=1e-5)
