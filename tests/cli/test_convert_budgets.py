"""`convert --target-macs / --target-latency` without a data set, and their bad input: one line naming
the problem and the fix, nothing written (issue 23)."""

import json

import pytest
from typer.testing import CliRunner

from lightcompress.cli import app
from lightcompress.deploy import latency, measure, timing
from lightcompress.factorization.candidates import layer_stats
from lightcompress.io import models as model_io
from lightcompress.layers import registry

from .test_reliability import _fails

runner = CliRunner()


def _macs(model):
    return sum(s.macs or 0 for s in layer_stats(model))


def test_convert_meets_a_macs_budget_without_a_data_set(small, tmp_path):
    path, _ = small
    out = tmp_path / "m.light.keras"
    table = runner.invoke(app, ["convert", str(path), "--target-macs", "0.5", "-o", str(out)])
    assert table.exit_code == 0, table.output
    assert "MACs: 0.476 of the original's (target 0.5)" in table.stdout  # fc at rank 6: 6·84 + 200 of 1,480
    result = runner.invoke(app, ["convert", str(path), "--target-macs", "0.5", "-o", str(out), "--force", "--json"])
    report = json.loads(result.stdout)
    original, converted = model_io.load_model(path), model_io.load_model(out)
    ratio = pytest.approx(_macs(converted) / _macs(original), abs=1e-6)
    assert report["budget"] == {"metric": "macs", "target": 0.5, "planned": ratio}
    assert _macs(converted) <= 0.5 * _macs(original) and report["method"] == "svd"
    assert report["output_difference"]["source"] == "random inputs"


def _timing_by_macs(monkeypatch, tmp_path, whole_extra_ms=0.0):
    """Deterministic, instant "timing" in the keras runtime: 2 us a call plus 10 ns a MAC. A whole
    model (``model_latency``) also pays ``whole_extra_ms`` per LightLayer, which its layers timed
    alone do not (layer times that do not add up to the whole model's). Whole models are timed
    alone (``latency.timed``) or together (``measure.interleaved``)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the latency profile's cache

    def timer(model, batch=1):
        def call():
            pass

        call.ms = 0.002 + 1e-5 * _macs(model)
        call.extra = whole_extra_ms * sum(registry.twin_entry(layer) is not None for layer in model.layers)
        return call

    def measured(ms):
        return timing.Latency(1, ms, ms, 30, 5)

    monkeypatch.setattr(latency, "keras_timer", timer)
    monkeypatch.setattr(latency, "interleaved", lambda calls, *a, **k: [measured(c.ms) for c in calls])
    monkeypatch.setattr(latency, "timed", lambda call, *a, **k: measured(call.ms + call.extra))
    monkeypatch.setattr(measure, "interleaved", lambda calls, *a, **k: [measured(c.ms + c.extra) for c in calls])


def _convert_latency(path, out, target="0.5"):
    result = runner.invoke(app, ["convert", str(path), "--target-latency", target, "--runtime", "keras",
                                 "--no-data-floor", "0", "-o", str(out), "--json"])  # random weights: no floor
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    return report, {layer["name"]: layer["rank"] for layer in report["layers"]}


def test_convert_meets_a_latency_budget_measured_in_the_runtime(small, tmp_path, monkeypatch):
    # The model takes 2 + 14.8 us; fc 12.8 us as it is, 0.84 us per rank; 0.5 leaves fc 4.4 us: rank 5.
    _timing_by_macs(monkeypatch, tmp_path)
    path, _ = small
    report, ranks = _convert_latency(path, tmp_path / "m.light.keras")
    assert ranks == {"fc": 5, "head": None}
    assert report["budget"] == {"metric": "latency", "target": 0.5, "runtime": "keras",
                                "planned": pytest.approx(8.2 / 16.8, abs=1e-6),
                                "measured": pytest.approx(8.2 / 16.8, abs=1e-6)}
    assert list((tmp_path / "cache" / "lightcompress" / "latency").glob("*.json"))
    table = runner.invoke(app, ["convert", str(path), "--target-latency", "0.5", "--runtime", "keras", "--no-data-floor",
                                "0", "-o", str(tmp_path / "m.light.keras"), "--force"], env={"COLUMNS": "400"})
    assert ("latency in keras: 0.488 of the original's planned from each layer's times, 0.488 measured whole "
            "(target 0.5)") in table.stdout


def test_a_latency_plan_measured_slower_whole_is_planned_again(small, tmp_path, monkeypatch):
    # Whole, the converted model pays 1 us more than its layers add up to: rank 5 measures 0.548 of the
    # original, so the plan is re-aimed at 0.5 · 0.5 / 0.548 = 0.457 (rank 4), which measures 0.498.
    _timing_by_macs(monkeypatch, tmp_path, whole_extra_ms=0.001)
    path, _ = small
    report, ranks = _convert_latency(path, tmp_path / "m.light.keras")
    assert ranks == {"fc": 4, "head": None}
    budget = report["budget"]
    assert budget["target"] == 0.5 and budget["aimed"] == pytest.approx(0.25 / (9.2 / 16.8))
    assert budget["measured"] == pytest.approx(8.36 / 16.8, abs=1e-6) and budget["planned"] < budget["measured"]


def test_the_budget_options_explain_themselves():
    convert = runner.invoke(app, ["convert", "--help"], env={"COLUMNS": "200"}).stdout
    for flag in ("--target-macs", "--target-latency", "--runtime", "--threads"):
        assert flag in convert
    assert "MACs per example" in convert and "batch-1 latency" in convert


def test_bad_budgets_are_refused_in_one_line(small, tmp_path):
    path, _ = small
    out = tmp_path / "out"
    out.mkdir()
    o = ["-o", out / "c.keras"]
    _fails(["convert", path, "--target-macs", "1.5", *o], "--target-macs 1.5 is not a fraction; use a number in (0, 1).",
           [path], out)
    _fails(["convert", path, "--target-latency", "0", *o], "--target-latency 0.0 is not a fraction", [path], out)
    _fails(["convert", path, "--rank", "4", "--target-macs", "0.5", *o],
           "choose exactly one rank rule: --rank N, --energy F, --ratio F, --target-params F, --target-macs F or "
           "--target-latency F (got --rank 4, --target-macs 0.5).", [path], out)
    _fails(["convert", path, "--target-latency", "0.5", "--runtime", "tpu", *o],
           "--runtime tpu is unknown; use one of keras, litert, litert-int8, onnxruntime.", [path], out)
    _fails(["convert", path, "--rank", "2", "--runtime", "keras", *o],
           "--runtime keras and --threads 2 say where --target-latency is timed, and no latency target was given; "
           "give --target-latency F too, or drop them.", [path], out)
    line = _fails(["convert", path, "--target-macs", "0.01", "--no-data-floor", "0", *o], "--target-macs 0.01 cannot "
                  "be met: the layers left as they are already hold 200 MACs of the model's 1,480 MACs", [path], out)
    assert line.endswith("the smallest reachable fraction is 0.192; use a fraction of at least 0.192, or a lower "
                         "--min-params so more layers are converted.")  # fc at rank 1: 84 + 200 of 1,480
    # without data, the floor: fc keeps at least half its spectral energy, so 0.2 of the MACs is out of reach
    line = _fails(["convert", path, "--target-macs", "0.2", *o], "--target-macs 0.2 cannot be met", [path], out)
    assert "that keeps at least 50% of its energy (--no-data-floor 0.5, as it is planned without labelled data" in line
    assert line.endswith("or a lower --min-params so more layers are converted, or a lower --no-data-floor.")
    _fails(["convert", path, "--target-macs", "0.5", "--no-data-floor", "1", *o],
           "--no-data-floor 1.0 is invalid; use a fraction of the energy in [0, 1), e.g. 0.5, or 0 for none.", [path], out)
