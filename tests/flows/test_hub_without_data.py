"""A data-free fixed rank needs no data set and no input size (issue 36): a keras-hub BERT
classifier, whose inputs leave the sequence length open, converts with ``--rank 8`` alone; the
outputs are compared on random inputs sized as the backbone declares (or as ``--input-shape``
says), and a model that declares no size is still converted, its comparison left out."""

import json
import subprocess
import sys

import keras
import pytest
from typer.testing import CliRunner

from lightcompress.cli import app

from ..cli_checks import fails

keras_hub = pytest.importorskip("keras_hub")
runner = CliRunner()


@pytest.fixture(scope="module")
def bert_file(tmp_path_factory):
    backbone = keras_hub.models.BertBackbone(vocabulary_size=2000, num_layers=2, num_heads=4, hidden_dim=128,
                                             intermediate_dim=512, max_sequence_length=64)
    model = keras_hub.models.BertTextClassifier(backbone=backbone, num_classes=4, preprocessor=None)
    path = tmp_path_factory.mktemp("hub") / "bert.keras"
    model.save(path)
    return path


LOAD_AND_PREDICT = """
import sys
import numpy as np
import lightcompress, keras
model = keras.models.load_model(sys.argv[1])
x = {"token_ids": np.arange(128, dtype="int32").reshape(2, 64) % 2000,
     "segment_ids": np.zeros((2, 64), "int32"), "padding_mask": np.ones((2, 64), "int32")}
y = np.asarray(model.predict(x, verbose=0))
assert y.shape == (2, 4) and np.isfinite(y).all(), y
print("light layers:", sum(type(layer).__name__.startswith("Light") for layer in model._flatten_layers()))
"""


@pytest.mark.slow  # ~13 s; kept out of the quick suite (.ci/run runs -m slow)
def test_bert_converts_at_a_fixed_rank_without_data(bert_file, tmp_path):
    out = tmp_path / "bert.light.keras"
    result = runner.invoke(app, ["convert", str(bert_file), "--rank", "8", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "random inputs sized from the backbone's max_sequence_length (64)" in result.stdout
    assert "outputs vs original on 32 random inputs" in result.stdout
    done = subprocess.run([sys.executable, "-c", LOAD_AND_PREDICT, str(out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split("light layers:")[1]) > 0  # converted, not merely copied


def test_input_shape_sizes_the_check_and_budgets_plan_without_data(bert_file, tmp_path):
    out = tmp_path / "bert.ratio.keras"
    result = runner.invoke(app, ["convert", str(bert_file), "--ratio", "0.3", "--input-shape", "16", "-o", str(out),
                                 "--no-data-floor", "0", "--json"])  # random weights: no floor
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["input_sizes"] == "inputs sized from the input shape given (16)"
    assert report["output_difference"]["examples"] == 32 and report["not_compared"] is None
    assert report["totals"]["layers_converted"] > 0


def test_input_shape_that_does_not_fit_is_one_line(bert_file, tmp_path):
    fails(["convert", bert_file, "--rank", "8", "-o", tmp_path / "x.keras", "--input-shape", "16,3"],
          "--input-shape 16,3 does not fit input 'padding_mask' of shape (None, None); give one example's size "
          "(--input-shape N), or drop it.", inputs=[bert_file], folder=tmp_path)
    fails(["convert", bert_file, "--rank", "8", "-o", tmp_path / "x.keras", "--input-shape", "0"],
          "--input-shape 0 is not the size of one example; use positive whole numbers separated by commas, "
          "e.g. --input-shape 128", inputs=[bert_file], folder=tmp_path)
    fails(["convert", bert_file, "--rank", "8", "-o", tmp_path / "x.keras", "--input-shape", "16", "--dataset",
           "digits"], "--input-shape 16 sizes the random inputs used without a data set", inputs=[bert_file],
          folder=tmp_path)


def test_a_model_that_declares_no_size_converts_uncompared(tmp_path):
    path = tmp_path / "open.keras"
    keras.Sequential([keras.Input((None, 64)), keras.layers.Dense(128), keras.layers.GlobalAveragePooling1D(),
                      keras.layers.Dense(10)]).save(path)
    result = runner.invoke(app, ["convert", str(path), "--rank", "8", "-o", str(tmp_path / "out.keras")])
    assert result.exit_code == 0, result.output
    assert "outputs not compared: input" in result.stdout and "has an unknown size (None, None, 64)" in result.stdout
    assert "pass --input-shape" in result.stdout
    assert keras.models.load_model(tmp_path / "out.keras").count_params() < keras.models.load_model(path).count_params()

    result = runner.invoke(app, ["convert", str(path), "--rank", "8", "-o", str(tmp_path / "sized.keras"),
                                 "--input-shape", "12", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["input_sizes"] == "inputs sized from the input shape given (12)"
    assert report["output_difference"]["relative"] >= 0


def test_declared_sizes_fill_only_what_the_inputs_leave_open(bert_file):
    from lightcompress.data.synthetic import input_sizes, model_inputs_like
    from lightcompress.io.models import load_model

    model = load_model(bert_file)
    sizes = input_sizes(model)
    assert sizes.shapes == ((64,), (64,), (64,)) and sizes.unknown is None
    assert sizes.note == "inputs sized from the backbone's max_sequence_length (64)"
    x = model_inputs_like(model, batch=3, sizes=sizes, named=True)
    assert sorted(x) == ["padding_mask", "segment_ids", "token_ids"] and x["token_ids"].shape == (3, 64)
    fixed = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(4)])
    assert input_sizes(fixed) == input_sizes(fixed, (8, 8, 3)) and input_sizes(fixed).note is None
    images = keras.Sequential([keras.Input((None, None, 3)), keras.layers.GlobalAveragePooling2D()])
    assert input_sizes(images, "32,24").shapes == ((32, 24, 3),)
    assert input_sizes(images, (32, 24, 3)).shapes == ((32, 24, 3),)
