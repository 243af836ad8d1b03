"""Files saved by older Keras: each rewrite kind on a fixture written in the old config form with
h5py/zipfile (no old Keras needed), checked against what plain Keras 3 does with the same file."""

import hashlib
import json
import shutil
import subprocess
import sys
import warnings

import h5py
import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from lightcompress.errors import LightCompressWarning, ModelLoadError
from lightcompress.io import legacy
from lightcompress.io.models import load_model

X = np.random.default_rng(0).random((5, 6), dtype=np.float32)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small trained-looking model saved by Keras 3 as .h5, and its outputs on X."""
    folder = tmp_path_factory.mktemp("legacy")
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu", name="d1"),
                              keras.layers.Dense(3, activation="softmax", name="d2")])
    model.save(folder / "base.h5")
    return folder, model.predict(X, verbose=0)


def _old_form(saved, name, change):
    """A copy of the base file whose stored config was changed by ``change(config)``."""
    folder, _ = saved
    target = folder / name
    shutil.copyfile(folder / "base.h5", target)
    with h5py.File(target, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        change(config)
        f.attrs["model_config"] = json.dumps(config)
    return target


def _layers(config):
    return config["config"]["layers"]


def _dtype_in_initializers(config):
    for layer in _layers(config):
        for key in ("kernel_initializer", "bias_initializer"):
            if key in layer["config"]:
                layer["config"][key]["config"]["dtype"] = "float32"


def _softmax_v2(config):
    _layers(config)[-1]["config"]["activation"] = "softmax_v2"


def _none_input(config):
    _layers(config)[0]["config"]["batch_shape"] = [None, None]


KINDS = [
    ("dtype.h5", _dtype_in_initializers, "dropped 'dtype' from 4 initializer configs (layers 'd1', 'd2')"),
    ("softmax.h5", _softmax_v2, "activation 'softmax_v2' read as 'softmax' (layer 'd2')"),
    ("none.h5", _none_input, "input shape: batch_shape of 'input_layer' (None, None) -> (None, 6)"),
]


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name, change, note", KINDS, ids=[k[0] for k in KINDS])
def test_each_old_form_fails_in_plain_keras_and_loads_rewritten(saved, name, change, note):
    path = _old_form(saved, name, change)
    with pytest.raises(Exception):  # the fixture really is a form Keras 3 refuses
        keras.models.load_model(path, compile=False)
    before = _sha(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(path)
    notes = [str(w.message) for w in caught if issubclass(w.category, LightCompressWarning)]
    assert len(notes) == 1 and notes[0].startswith(f"{path}: {note}")
    np.testing.assert_allclose(model.predict(X, verbose=0), saved[1], atol=1e-6)
    assert _sha(path) == before  # the user's file is never touched


def test_hdf5_content_under_a_keras_name_is_read_as_h5(saved):
    path = saved[0] / "really_h5.keras"
    shutil.copyfile(saved[0] / "base.h5", path)
    assert legacy.sniff(path) == "h5"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(path)
    assert [str(w.message) for w in caught if w.category is LightCompressWarning] == [
        f"{path}: HDF5 under a '.keras' name: read as .h5"]
    np.testing.assert_allclose(model.predict(X, verbose=0), saved[1], atol=1e-6)


def test_a_current_file_is_loaded_without_any_rewrite(saved):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_model(saved[0] / "base.h5")
    assert not [w for w in caught if w.category is LightCompressWarning]


def test_what_cannot_be_fixed_is_one_line_naming_the_layer(saved):
    def unknown_activation(config):
        _layers(config)[-1]["config"]["activation"] = "not_an_activation"

    path = _old_form(saved, "unknown.h5", unknown_activation)
    with pytest.raises(ModelLoadError) as err:
        load_model(path)
    message = str(err.value)
    assert "\n" not in message and "layer 'd2' (Dense)" in message and "not_an_activation" in message
    assert "kernel_initializer" not in message  # no config dump


def test_the_cli_prints_one_note_per_rewrite_kind(saved):
    from lightcompress.cli import app

    path = _old_form(saved, "both.h5", lambda c: (_dtype_in_initializers(c), _softmax_v2(c)))
    result = CliRunner().invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note: ")]
    assert notes == [f"note: {path}: dropped 'dtype' from 4 initializer configs (layers 'd1', 'd2')",
                     f"note: {path}: activation 'softmax_v2' read as 'softmax' (layer 'd2')"]


@pytest.mark.slow  # 10-25 s on 2 cores; the default suite stays within 5 minutes (.ci/run runs -m slow)
def test_a_rewritten_model_converts_and_reloads_in_a_fresh_process(saved, tmp_path):
    import lightcompress

    path = _old_form(saved, "old_convert.h5", _dtype_in_initializers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = lightcompress.convert(path, rank=3, min_params=0, min_saving=0.99)
    result.model.save(tmp_path / "light.keras")
    expected = result.model.predict(X, verbose=0)
    np.save(tmp_path / "x.npy", X)
    code = ("import lightcompress, keras, numpy as np, sys; "
            f"m = keras.models.load_model({str(tmp_path / 'light.keras')!r}); "
            f"np.save({str(tmp_path / 'y.npy')!r}, m.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0))")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-6)
