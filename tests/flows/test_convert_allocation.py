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
KEPT = re.compile(r"allocation: by (error|sensitivity) kept, closer to the original on ([\d,]+) held-out training "
                  r"images: KL ([\d.]+) against ([\d.]+) by (error|sensitivity) \(loss ([\d.]+) against ([\d.]+)\)")


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


def test_both_allocations_are_built_and_the_one_closer_to_the_original_is_kept(files, tmp_path, monkeypatch):
    path, data = files
    apart, losses = [], []
    real_divergence, real_evaluate = best_allocation.divergence, best_allocation.evaluate

    def divergence_spy(reference, model, judge, *args, **kwargs):
        apart.append(real_divergence(reference, model, judge, *args, **kwargs))
        return apart[-1]

    def evaluate_spy(model, judge, *args, **kwargs):
        losses.append(real_evaluate(model, judge, *args, **kwargs).loss)
        return real_evaluate(model, judge, *args, **kwargs)

    monkeypatch.setattr(best_allocation, "divergence", divergence_spy)
    monkeypatch.setattr(best_allocation, "evaluate", evaluate_spy)
    report = _convert(path, data, tmp_path / "a.keras")
    note = next(n for n in report["notes"] if n.startswith("allocation:"))
    kept, held, low, high, other, kept_loss, other_loss = KEPT.fullmatch(note).groups()
    assert {kept, other} == {"error", "sensitivity"} and held == "120"  # a fifth of 600 training images
    assert len(apart) == 2 and min(apart) > 0  # neither plan is the original
    assert float(low) == pytest.approx(min(apart), abs=1e-4) and float(high) == pytest.approx(max(apart), abs=1e-4)
    by_name = dict(zip(("error", "sensitivity"), losses))
    assert float(kept_loss) == pytest.approx(by_name[kept], abs=1e-4)
    assert float(other_loss) == pytest.approx(by_name[other], abs=1e-4)
    # the kept plan is the one named: a sensitivity plan says so in its policy
    assert report["policy"].startswith("sensitivity") == (kept == "sensitivity")
    assert report["totals"]["params_ratio"] <= 0.4


@pytest.mark.parametrize("apart, kept", [((0.2, 0.1), "sensitivity"), ((0.1, 0.2), "error")])
def test_the_plan_closer_to_the_original_is_kept(files, monkeypatch, apart, kept):
    """Whichever plan's divergence is lower is kept, whatever the losses say."""
    from lightcompress.data import DataSpec, open_for_model
    from lightcompress.factorization.methods import get_method
    from lightcompress.planning import LayerFilter, TargetParams

    path, data = files
    model = keras.models.load_model(path)
    judge = open_for_model(model, DataSpec(str(data)), in_memory=True).holdout(100)[0]
    values = iter(apart)
    monkeypatch.setattr(best_allocation, "divergence", lambda *a, **k: next(values))
    built = []

    def build(plan, sources=None):
        built.append(plan)
        return model, plan

    _, plan = best_allocation.best_allocation(model, TargetParams(0.4), LayerFilter(min_params=0), get_method("svd"),
                                              None, judge, build)
    assert len(built) == 2 and plan is built[0 if kept == "error" else 1]  # built: error, then sensitivity
    assert plan.notes[-1].startswith(f"allocation: by {kept} kept, closer to the original on 100 held-out")
    assert f"KL {min(apart):.4f} against {max(apart):.4f}" in plan.notes[-1]


def test_divergence_is_zero_for_the_same_model_and_grows_with_the_difference(files):
    from lightcompress.data.memory import Prepared
    from lightcompress.training.evaluation import divergence

    path, data = files
    model = keras.models.load_model(path)
    with np.load(data) as d:
        held = Prepared("held", d["x_train"][:50], d["y_train"][:50], d["x_train"][:50], d["y_train"][:50], 4)
    assert divergence(model, model, held) == pytest.approx(0.0, abs=1e-7)
    nudged = keras.models.clone_model(model)
    nudged.set_weights([w + 0.05 for w in model.get_weights()])
    pushed = keras.models.clone_model(model)
    pushed.set_weights([w + 0.2 for w in model.get_weights()])
    assert 0 < divergence(model, nudged, held) < divergence(model, pushed, held)


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


def test_auto_measures_sensitivity_only_where_affordable(files, tmp_path, monkeypatch):
    path, data = files
    assert KEPT.fullmatch(next(n for n in _convert(path, data, tmp_path / "a.keras")["notes"]
                               if n.startswith("allocation:")))  # small: both plans built
    monkeypatch.setattr(defaults, "AFFORDABLE_MACS", 1000)
    measured = []
    monkeypatch.setattr(best_allocation, "analyse", lambda *a, **k: measured.append(a))
    report = _convert(path, data, tmp_path / "b.keras")
    note = next(n for n in report["notes"] if n.startswith("allocation:"))
    assert re.fullmatch(r"allocation: by error only: measuring each layer's sensitivity \(39 evaluations of 120 "
                        r"held-out images\) would cost about [\d.]+e\+\d\d multiply-accumulates, over 1e\+03; "
                        r"asking for both allocations measures it anyway", note), note
    assert measured == [] and report["policy"] == "target params 0.4"
    assert report["calibration"]["samples"] == 600  # nothing held out


def test_an_unknown_allocation_is_refused_before_any_work(files, tmp_path):
    path, data = files
    out = tmp_path / "x.keras"
    result = runner.invoke(app, ["convert", str(path), "--target-params", "0.4", "--dataset", str(data),
                                 "--allocation", "greedy", "-o", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == "error: --allocation greedy is unknown; use one of auto, both, error, sensitivity."
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
    monkeypatch.setattr(convert_flow, "calibration_images", images_spy)  # where convert_file calls it
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
    assert defaults.convert_method(2000, 5e6, 2, 1600) == "data-aware"  # 1.25 images per input of a Dense: overfits
    assert defaults.convert_method(10_000, 5e6, 2, 1600) == "data-aware+sequential"
    assert convert_flow.calibration_default(keras.Sequential([keras.Input((None, 8)), keras.layers.Dense(2)])) == 2000
    assert convert_flow.calibration_default(keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Dense(2)])) == 10_000
    path, data = files
    asked = []
    real_images = statistics.calibration_images
    monkeypatch.setattr(convert_flow, "calibration_images", lambda d, count, seed=0: asked.append(count) or
                        real_images(d, count, seed))
    report = _convert(path, data, tmp_path / "a.keras", "--allocation", "error")
    assert report["method"] == "data-aware+sequential" and report["calibration"]["samples"] == 600  # all there are
    assert asked == [10_000]
    monkeypatch.setattr(defaults, "AFFORDABLE_MACS", 0)  # too costly to go layer by layer: one pass on 2,000
    report = _convert(path, data, tmp_path / "b.keras", "--allocation", "error")
    assert report["method"] == "data-aware" and asked[-1] == 2000
    report = _convert(path, data, tmp_path / "c.keras", "--allocation", "error", "--calibration", "50")
    assert report["method"] == "data-aware" and report["calibration"]["samples"] == 50 and asked[-1] == 50
    monkeypatch.setattr(defaults, "AFFORDABLE_MACS", 1e12)
    report = _convert(path, data, tmp_path / "d.keras", "--allocation", "error", "--calibration", "200")
    assert report["method"] == "data-aware"  # 200 images for a 96-wide Dense: fewer than 3 per input
    report = _convert(path, data, tmp_path / "e.keras", "--allocation", "error", "--calibration", "300")
    assert report["method"] == "data-aware+sequential"


@pytest.mark.parametrize("extra, message", [
    (["--allocation", "both", "--rank", "4", "-d", "{data}"],
     "error: --allocation both chooses how a --target-params or --target-macs budget is planned with a data set "
     "(--dataset NAME); give both, or drop it."),
    (["--allocation", "sensitivity", "--target-params", "0.4"],
     "error: --allocation sensitivity chooses how a --target-params or --target-macs budget is planned with a data "
     "set (--dataset NAME); give both, or drop it."),
    (["--calibration", "50", "--rank", "4"],
     "error: --calibration 50 counts the training images a data-aware method calibrates on; give a data set "
     "(--dataset NAME) and no --method svd, or drop it."),
    (["--calibration", "50", "--method", "svd", "--rank", "4", "-d", "{data}"],
     "error: --calibration 50 counts the training images a data-aware method calibrates on; give a data set "
     "(--dataset NAME) and no --method svd, or drop it."),
])
def test_options_that_would_be_ignored_are_refused(files, tmp_path, extra, message):
    path, data = files
    out = tmp_path / "o.keras"
    result = runner.invoke(app, ["convert", str(path), "--min-params", "0", "-o", str(out),
                                 *[a.format(data=data) for a in extra]])
    assert result.exit_code == 1 and " ".join(result.output.split()) == message and not out.exists()


def test_svd_factors_with_a_data_set_still_plan_from_held_out_images(files, tmp_path):
    path, data = files
    report = _convert(path, data, tmp_path / "s.keras", "--method", "svd")
    assert report["method"] == "svd" and report["calibration"] is None
    assert KEPT.fullmatch(next(n for n in report["notes"] if n.startswith("allocation:")))  # 120 of 600 held out


def test_a_budget_only_the_error_plan_meets_keeps_it(files, tmp_path, monkeypatch):
    from lightcompress.errors import RankError

    def cannot(*args, **kwargs):
        raise RankError("the params budget of 9 cannot be met")

    monkeypatch.setattr(best_allocation, "allocate", cannot)
    report = _convert(path := files[0], files[1], tmp_path / "a.keras")
    assert path.exists() and report["policy"] == "target params 0.4"
    assert "allocation: by error only: the sensitivity allocation cannot meet it (the params budget of 9 cannot be " \
           "met)" in report["notes"]


def test_a_sensitivity_plan_reports_its_budget_like_an_error_plan(files, tmp_path):
    path, data = files
    report = _convert(path, data, tmp_path / "s.keras", "--allocation", "sensitivity")
    assert report["budget"] == {"metric": "params", "target": 0.4,
                                "planned": pytest.approx(report["totals"]["params_ratio"], abs=1e-3)}


def test_a_subclassed_model_gets_a_calibration_count():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.flat, self.fc = keras.layers.Flatten(), keras.layers.Dense(4)

        def call(self, x):
            return self.fc(self.flat(x))

    net = Net()
    net.build((None, 28, 28, 1))
    assert convert_flow.calibration_default(net) == 10_000
    assert convert_flow.calibration_default(Net()) == 2000  # never built: no declared size
