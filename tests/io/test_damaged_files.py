"""Damaged model files and long output names: one line naming the problem, the file unchanged,
nothing left behind. Random JSON values as a `.keras` config come from hypothesis."""

import hashlib
import json
import zipfile

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lightcompress.cli import app
from lightcompress.errors import LightCompressError, ModelLoadError
from lightcompress.io.models import atomic_write, load_model, read_config, temporary_beside


def _keras_with_config(path, raw: bytes):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", raw)
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
    return path


@pytest.mark.parametrize("raw, says", [
    (b"[1, 2]", "holds a model config that is a list, not a Keras model config"),
    (b"null", "holds a model config that is a NoneType, not a Keras model config"),
    (b'"a string"', "holds a model config that is a str, not a Keras model config"),
    (b'{"config": {}}', "holds a model config that is an object without a model class"),
    (b"[" * 5000 + b"]" * 5000, "nested"),
    (b'{"class_name": "Sequential", "config": ' + b'{"a": ' * 300 + b"1" + b"}" * 300 + b"}", "nested deeper than"),
    ("{\"class_name\": \"Sequential\"}".encode("utf-16"), "is not UTF-8 text"),
], ids=["list", "null", "string", "no-class", "deep-list", "deep-object", "utf16"])
def test_a_damaged_keras_config_is_one_line(tmp_path, raw, says):
    path = _keras_with_config(tmp_path / "m.keras", raw)
    before = path.read_bytes()
    with pytest.raises(ModelLoadError) as err:
        load_model(path)
    assert says in str(err.value) and "\n" not in str(err.value) and str(path) in str(err.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("value", [np.int64(7), np.arange(3)], ids=["integer", "array"])
def test_an_h5_model_config_attribute_of_another_type_is_one_line(tmp_path, value):
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = value
        f.create_group("model_weights")
    with pytest.raises(ModelLoadError, match=f"model_config attribute of type {type(value).__name__}, not JSON text"):
        load_model(path)


def test_the_cli_says_the_same_line_and_exits_1(tmp_path):
    path = _keras_with_config(tmp_path / "m.keras", b"[]")
    result = CliRunner().invoke(app, ["inspect", str(path)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {path} holds a model config that is a list, not a Keras model config; the file is damaged: "
        f"save the model again."]


JSON = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=8) | st.integers(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON | st.fixed_dictionaries({"class_name": st.sampled_from(["Sequential", "Functional", "Net"]),
                                           "config": JSON}))
def test_any_json_value_as_a_keras_config_ends_cleanly(tmp_path, value):
    path = _keras_with_config(tmp_path / "h.keras", json.dumps(value).encode())
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        load_model(path)
    except LightCompressError as err:  # the project's own error, in one line; nothing else escapes
        assert "\n" not in str(err)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_temporary_names_fit_name_max_for_any_output_name_that_fits(tmp_path):
    for length in (1, 200, 240, 249):
        target = tmp_path / ("m" * length + ".keras")
        tmp = temporary_beside(target)
        assert len(tmp.name.encode()) <= 255 and tmp.suffix == ".keras" and tmp.parent == tmp_path
        atomic_write(target, lambda t: t.write_bytes(b"x"))
        assert target.read_bytes() == b"x"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".lightcompress-tmp-")) == []


def test_read_config_of_a_good_file_is_unchanged(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.save(tmp_path / "ok.keras")
    assert read_config(tmp_path / "ok.keras")["class_name"] == "Sequential"
