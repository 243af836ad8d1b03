"""One int8 exporter behind ``export`` and ``compare``: ``export --quantize int8`` writes the very
file ``compare --int8`` times (the same calibration draw of training images), so their int8
accuracies agree (issue 38: they differed, 0.9087 against 0.9092)."""

import hashlib
from pathlib import Path

import keras
import pytest

from lightcompress.data.sets import DataSpec
from lightcompress.flows import compare as compare_flow
from lightcompress.flows import export as export_flow
from lightcompress.flows.common import load_inputs, no_progress

pytest.importorskip("tensorflow")


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_export_int8_writes_the_file_compare_int8_times(tmp_path, monkeypatch):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "m.keras")
    int8 = export_flow.ExportSettings.make("litert", quantize="int8", data=DataSpec("digits"))
    export_flow.export_file(tmp_path / "m.keras", int8, tmp_path / "m.int8.tflite", data=DataSpec("digits"))
    written = []
    real = compare_flow.export_model

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        written.append((kwargs.get("calibration") is not None, _sha(result.path)))
        return result

    monkeypatch.setattr(compare_flow, "export_model", spy)  # what the int8 compare calls
    net, prepared = load_inputs(tmp_path / "m.keras", DataSpec("digits"), False, no_progress)
    with compare_flow._int8_files(net, net, [tmp_path / "m.keras"] * 2, prepared, 2):
        pass
    int8_files = [sha for calibrated, sha in written if calibrated]
    assert len(int8_files) == 2 and set(int8_files) == {_sha(tmp_path / "m.int8.tflite")}


def test_the_export_verb_is_the_command_flow_with_accuracy(tmp_path):
    """``lightcompress.export`` runs the ``export`` command's flow: with a data set it verifies on
    its test images with their labels (the accuracy the command reports), int8 on the same draw."""
    import lightcompress

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "m.keras")
    verb = lightcompress.export(model, tmp_path / "verb.tflite", quantize="int8", data="digits")
    int8 = export_flow.ExportSettings.make("litert", quantize="int8", data=DataSpec("digits"))
    command = export_flow.export_file(tmp_path / "m.keras", int8, tmp_path / "command.tflite", data=DataSpec("digits"))
    assert verb.verification.accuracy is not None and verb.verification.examples == command["verification"]["examples"]
    assert verb.verification.accuracy == command["verification"]["accuracy"]
    assert _sha(tmp_path / "verb.tflite") == _sha(tmp_path / "command.tflite")
