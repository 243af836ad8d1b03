"""Unlabelled samples (issue 39): ``convert --samples PATH`` with a folder of images, a .npy or a
.npz calibrates on four fifths of them and compares outputs on the rest, instead of random inputs."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from lightcompress.cli import app
from lightcompress.data.samples import read_samples, split
from lightcompress.errors import DataError

from ..cli_checks import fails, runner


@pytest.fixture
def cnn(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(16, 3, activation="relu", name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(64, activation="relu", name="fc"),
                              keras.layers.Dense(10, name="head")])
    path = tmp_path / "m.keras"
    model.save(path)
    return model, path


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    return (rng.random((30, 8, 8, 1)) * 255).astype(np.uint8)


def _folder(tmp_path, images):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image[..., 0]).resize((16, 16)).save(folder / f"{i:03d}.png")  # resized back to 8x8
    return folder


def test_each_kind_reads_as_the_model_takes_it(cnn, images, tmp_path):
    model, _ = cnn
    np.save(tmp_path / "x.npy", images)
    np.savez(tmp_path / "x.npz", inputs=images)
    for path in (tmp_path / "x.npy", tmp_path / "x.npz", _folder(tmp_path, images)):
        x = read_samples(path, model)
        assert x.shape == (30, 8, 8, 1) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    np.testing.assert_allclose(read_samples(tmp_path / "x.npy", model), images / 255.0, atol=1e-7)
    calibration, held = split(read_samples(tmp_path / "x.npy", model))
    assert (len(calibration), len(held)) == (24, 6)


@pytest.mark.parametrize("make, message", [
    (lambda d: np.save(d / "s.npy", np.zeros((10, 5), np.float32)) or d / "s.npy",
     "holds inputs of shape (5,) (one per row of (10, 5)); model 'sequential' takes (8, 8, 1)"),
    (lambda d: np.save(d / "s.npy", np.zeros((3, 8, 8, 1), np.float32)) or d / "s.npy", "holds 3 sample(s); give at least 5"),
    (lambda d: np.save(d / "s.npy", np.full((6, 8, 8, 1), np.nan, np.float32)) or d / "s.npy", "not finite"),
    (lambda d: np.savez(d / "s.npz", a=np.zeros(2), b=np.zeros(2)) or d / "s.npz", "holds 2 arrays (a, b); name the inputs x or inputs"),
    (lambda d: (d / "s.txt").write_text("1 2 3") and d / "s.txt", "is not a sample file"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "holds no images"),
    (lambda d: d / "missing.npy", "no such file or folder"),
])
def test_bad_samples_are_one_line(cnn, tmp_path, make, message):
    model, _ = cnn
    with pytest.raises(DataError, match=None) as err:
        read_samples(make(tmp_path), model)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_convert_calibrates_on_samples_and_compares_on_the_held_out_fifth(cnn, images, tmp_path):
    _, path = cnn
    np.save(tmp_path / "x.npy", images)
    result = runner.invoke(app, ["convert", str(path), "--target-params", "0.3", "--samples", str(tmp_path / "x.npy"),
                                 "-o", str(tmp_path / "c.keras"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["method"] == "data-aware" and report["calibration"]["samples"] == 24
    assert report["calibration"]["source"] == f"samples of {tmp_path / 'x.npy'}"
    assert report["output_difference"]["examples"] == 6 and "held out from the calibration" in \
        report["output_difference"]["source"]
    assert not any(n.startswith("floor:") for n in report["notes"])  # measured output errors: no floor


def test_samples_and_a_data_set_together_are_refused(cnn, images, tmp_path):
    _, path = cnn
    np.save(tmp_path / "x.npy", images)
    fails(["convert", path, "--rank", "2", "--samples", tmp_path / "x.npy", "-d", "digits", "-o", tmp_path / "c.keras"],
          "--samples ... are unlabelled inputs for when there is no data set, and --dataset ... was given too; give one "
          "of them.", [path], tmp_path)
