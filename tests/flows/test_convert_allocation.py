"""convert with a data set (issue 24, no fine-tuning): a params or MACs budget is planned by error
and by measured sensitivity and the model with the lower held-out loss is kept; the held-out
images are training images, apart from the calibration images; calibration is layer by layer
on more images where that is affordable."""

import importlib
import json
import re

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from lightcompress import defaults
from lightcompress.cli import app
from lightcompress.factorization import statistics
from lightcompress.flows import best_allocation

runner = CliRunner()
convert_flow = importlib.import_module("lightcompress.flows.convert")  # the package exports the function
KEPT = re.compile(r"allocation: by (error|sensitivity) kept, held-out loss ([\d.]+) against ([\d.]+) by "
                  r"(error|sensitivity) \(([\d,]+) training images held out\)")


@pytest.fixture
def files(tmp_path):
    """A small MLP (trained a little, so losses differ between plans) and an npz of unique images."""
    rng = np.random.default_rng(3)
    x = rng.random((700, 12), dtype=np.float32)
    y = (x[:, :6].sum(axis=1) > x[:, 6:].sum(axis=1)).astype(np.int64) + 2 * (x[:, 0] > 0.5)
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(96, activation="relu"),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(4, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:600], y[:600], epochs=3, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    data = tmp_path / "d.npz"
    np.savez(data, x_train=x[:600], y_train=y[:600], x_test=x[600:], y_test=y[600:])
    return path, data


def _convert(path, data, out, *extra):
    result = runner.invoke(app, ["convert", str(path), "--target-params", "0.4", "--min-params", "0",
                                 "--dataset", str(data), "--json", "-o", str(out), *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_both_allocations_are_built_and_the_lower_held_out_loss_is_kept(files, tmp_path, monkeypatch):
    path, data = files
    seen = []
    real_evaluate = best_allocation.evaluate

    def spy(model, judge, *args, **kwargs):
        result = real_evaluate(model, judge, *args, **kwargs)
        seen.append(result.loss)
        return result

    monkeypatch.setattr(best_allocation, "evaluate", spy)
    report = _convert(path, data, tmp_path / "a.keras")
    note = next(n for n in report["notes"] if n.startswith("allocation:"))
    kept, low, high, other, held = KEPT.fullmatch(note).groups()
    assert {kept, other} == {"error", "sensitivity"} and held == "120"  # a fifth of 600 training images
    assert len(seen) == 2 and float(low) == pytest.approx(min(seen), abs=1e-4) and float(low) <= float(high)
    assert float(high) == pytest.approx(max(seen), abs=1e-4)
    # the kept plan is the one named: a sensitivity plan says so in its policy
    assert report["policy"].startswith("sensitivity") == (kept == "sensitivity")
    assert report["totals"]["params_ratio"] <= 0.4


def test_one_allocation_when_asked(files, tmp_path):
    path, data = files
    by_error = _convert(path, data, tmp_path / "e.keras", "--allocation", "error")
    by_sensitivity = _convert(path, data, tmp_path / "s.keras", "--allocation", "sensitivity")
    assert by_error["policy"] == "target params 0.4" and by_sensitivity["policy"].startswith("sensitivity, target params")
    for report in (by_error, by_sensitivity):
        assert not any(n.startswith("allocation:") for n in report["notes"])
        used = next(n for n in report["notes"] if n.startswith("budget: params "))  # both say what they spend
        share, spent, given = re.fullmatch(r"budget: params ([\d.]+)% of the budget used \(([\d,]+) of ([\d,]+)\)",
                                           used).groups()
        assert int(given.replace(",", "")) == round(0.4 * report["totals"]["params_before"])
        assert int(spent.replace(",", "")) == report["totals"]["params_after"] and float(share) <= 100
    assert by_error["calibration"]["samples"] == 600  # "error" holds nothing out
    assert by_sensitivity["calibration"]["samples"] == 480


def test_a_fixed_rank_holds_nothing_out(files, tmp_path):
    path, data = files
    result = runner.invoke(app, ["convert", str(path), "--rank", "4", "--min-params", "0", "--dataset", str(data),
                                 "--json", "-o", str(tmp_path / "f.keras")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["calibration"]["samples"] == 600 and not any(n.startswith("allocation:") for n in report["notes"])


def test_an_unknown_allocation_is_refused_before_any_work(files, tmp_path):
    path, data = files
    out = tmp_path / "x.keras"
    result = runner.invoke(app, ["convert", str(path), "--target-params", "0.4", "--dataset", str(data),
                                 "--allocation", "greedy", "-o", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == "error: --allocation greedy is unknown; use one of both, error, sensitivity."
    assert not out.exists()


def test_held_out_images_are_training_images_apart_from_the_calibration_images(files, tmp_path, monkeypatch):
    path, data = files
    held, calibrated = [], []
    real_analyse, real_images = best_allocation.analyse, statistics.calibration_images

    def analyse_spy(model, judge, *args, **kwargs):
        held.append(judge.arrays("test")[0])
        return real_analyse(model, judge, *args, **kwargs)

    def images_spy(prepared, count, seed=0):
        calibrated.append(real_images(prepared, count, seed))
        return calibrated[-1]

    monkeypatch.setattr(best_allocation, "analyse", analyse_spy)
    monkeypatch.setattr(statistics, "calibration_images", images_spy)  # convert_file imports it when called
    _convert(path, data, tmp_path / "a.keras")
    with np.load(data) as d:
        train, test = {r.tobytes() for r in d["x_train"]}, {r.tobytes() for r in d["x_test"]}
    held_rows, calib_rows = {r.tobytes() for r in held[0]}, {r.tobytes() for r in calibrated[0]}
    assert len(held_rows) == 120 and held_rows <= train and not held_rows & test
    assert len(calib_rows) == 480 and calib_rows <= train and not calib_rows & held_rows  # the other 480


def test_calibration_is_layer_by_layer_on_more_images_where_affordable(files, tmp_path, monkeypatch):
    assert defaults.convert_calibration_samples(28 * 28 * 4) == 10_000
    assert defaults.convert_calibration_samples(224 * 224 * 3 * 4) == 2000  # 256 MB / 602 KB: 445, floor 2,000
    assert defaults.convert_calibration_samples(32 * 32 * 3 * 4) == 10_000
    assert defaults.convert_calibration_samples(256 * 256 * 3 * 4) == 2000
    assert defaults.convert_method(10_000, 5e6, 2) == "data-aware+sequential"
    assert defaults.convert_method(2000, 4e9, 53) == "data-aware"
    assert convert_flow.calibration_default(keras.Sequential([keras.Input((None, 8)), keras.layers.Dense(2)])) == 2000
    assert convert_flow.calibration_default(keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Dense(2)])) == 10_000
    path, data = files
    report = _convert(path, data, tmp_path / "a.keras", "--allocation", "error")
    assert report["method"] == "data-aware+sequential" and report["calibration"]["samples"] == 600  # all there are
    monkeypatch.setattr(defaults, "SEQUENTIAL_MACS", 0)
    report = _convert(path, data, tmp_path / "b.keras", "--allocation", "error", "--calibration", "50")
    assert report["method"] == "data-aware" and report["calibration"]["samples"] == 50
