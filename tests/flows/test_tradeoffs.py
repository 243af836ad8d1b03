"""`tradeoffs` (issue 25): every candidate on one model, measured alike, kept as it completes and
reused when the same command runs again.

The end-to-end test runs the real flows on the shipped digits MLP (17k params, offline data) at
two small budgets and 1 epoch, with the cheaper compress settings (svd factors, no per-layer
timing); the keying and reuse rules are tested with the making and measuring replaced by fakes.
"""

import json
import re
import shutil
from pathlib import Path

import keras
import pytest
from typer.testing import CliRunner

from lightcompress.cli import app
from lightcompress.data import DataSpec
from lightcompress.deploy.timing import Runtime
from lightcompress.errors import LightCompressError
from lightcompress.flows import tradeoffs as flow
from lightcompress.report import markdown, tradeoffs_sections
from lightcompress.report.tradeoffs import cost, pareto, recommend
from lightcompress.training.finetune import FitSettings

from ..cli.test_convert_command import _fails_with

runner = CliRunner()
SAMPLE = Path(__file__).resolve().parents[2] / "sample_models" / "digits_mlp.keras"
QUICK = ["--budgets", "0.5,0.2", "--epochs", "1", "--method", "svd", "--allow-slower", "--holdout", "300",
         "--repeats", "3", "--no-baselines", "--dataset", "digits"]
DIGITS = DataSpec("digits")  # no default data set (issue 38): every run names it
PNG = b"\x89PNG\r\n\x1a\n"


def one_budget():
    return flow.TradeoffsSettings.make(budgets=[0.5], baselines=False)


@pytest.fixture
def mlp(tmp_path):
    return Path(shutil.copy(SAMPLE, tmp_path / "mlp.keras"))


def _spy_on_compress(monkeypatch, interrupt_at=None):
    """Record each compress call's budget; raise KeyboardInterrupt on call number ``interrupt_at``."""
    calls, real = [], flow.compress

    def spy(*args, **kwargs):
        calls.append(args[2].goal.target_params)
        if len(calls) == interrupt_at:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(flow, "compress", spy)
    return calls


@pytest.mark.slow  # ~30 s: every candidate made, timed and evaluated through the CLI, then resumed
def test_tradeoffs_table_json_plot_and_resume_after_an_interrupt(mlp, tmp_path, monkeypatch):
    work = tmp_path / "mlp.tradeoffs"
    calls = _spy_on_compress(monkeypatch, interrupt_at=2)
    stopped = runner.invoke(app, ["tradeoffs", str(mlp), *QUICK])
    assert stopped.exit_code == 130, stopped.output
    assert calls == [0.5, 0.2]
    assert f"candidates finished so far are kept in {work}" in stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1].startswith("error: interrupted")
    estimate = re.search(r"^estimate: about .* in all: low-rank candidates .* \(2, about .* each after the shared "
                         r"analysis of .*\); int8 exports .* \(3, each timed\); from .* ms per image", stopped.stderr, re.M)
    assert estimate, stopped.stderr  # before the first candidate, in a line a log keeps
    assert stopped.stderr.index("estimate: about") < stopped.stderr.index("[1/")
    assert len(list(work.glob("low-rank-0.5-*.keras"))) == 1 and not list(work.glob("low-rank-0.2-*"))
    assert not (tmp_path / "mlp.tradeoffs.png").exists()

    calls = _spy_on_compress(monkeypatch)
    result = runner.invoke(app, ["tradeoffs", str(mlp), *QUICK, "--json"])
    assert result.exit_code == 0, result.output
    assert calls == [0.2]  # the first budget's model is reused, not compressed again
    data = json.loads(result.stdout)
    rows = {c["name"]: c for c in data["candidates"]}
    assert list(rows) == ["original", "int8", "low-rank 0.5", "low-rank 0.5 + int8", "low-rank 0.2",
                          "low-rank 0.2 + int8"]
    assert [rows[n]["status"] for n in rows] == ["reused"] * 4 + ["made"] * 2
    original = rows["original"]
    assert original["params"] == 17226 and original["file_bytes"] == mlp.stat().st_size
    for row in rows.values():
        assert 0.5 < row["accuracy"] <= 1 and [lat["batch"] for lat in row["latency"]] == [1, 32]
        assert set(row["pareto"]) == {"size", "latency"}
    assert rows["int8"]["params"] == 17226 and rows["int8"]["file_bytes"] < original["file_bytes"] / 2
    assert rows["low-rank 0.2"]["params"] <= 0.2 * 17226 * 1.02
    assert rows["low-rank 0.2 + int8"]["details"]["exported_from"] == rows["low-rank 0.2"]["file"]
    smallest = min(rows.values(), key=lambda r: r["file_bytes"])
    fastest = min(rows.values(), key=lambda r: cost(r, "latency"))  # x the original's, timed beside it
    assert smallest["pareto"]["size"] and fastest["pareto"]["latency"]  # nothing is smaller, or faster
    assert data["recommendation"]["text"].endswith(".") and "original's accuracy" in data["recommendation"]["text"]
    assert data["plot"] == str(tmp_path / "mlp.tradeoffs.png")
    assert (tmp_path / "mlp.tradeoffs.png").read_bytes().startswith(PNG)
    assert "plot saved to" in result.stderr

    again = runner.invoke(app, ["tradeoffs", str(mlp), *QUICK])  # the plot is an output: never silently replaced
    assert again.exit_code == 1 and "mlp.tradeoffs.png exists; pass --force" in again.stderr
    result = runner.invoke(app, ["tradeoffs", str(mlp), *QUICK, "--markdown", "--force"])
    assert result.exit_code == 0, result.output
    assert calls == [0.2]
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| candidate | accuracy (pts) | params | file | batch 1 (") and table[0].endswith(
        " | front | run |")
    assert len(table) == 1 + 6 and all(line.endswith("| reused |") for line in table[1:])
    assert "| low-rank 0.2 + int8 | " in result.stdout and "6 reused" in result.stdout
    assert data["recommendation"]["text"] in result.stdout


# -- keys and reuse, with the making and measuring replaced ---------------------------------------

def _fakes(monkeypatch, fail=()):
    made, measured = [], []

    def make(run, cand, path):
        made.append(cand.name)
        if cand.name in fail:
            raise LightCompressError(f"target_params={cand.budget} cannot be met")
        path.write_bytes(b"m" * (1000 if cand.int8 else 4000))
        return {"epochs": run.settings.epochs}

    def measure(run, path):
        measured.append(Path(path).name)
        size = Path(path).stat().st_size
        latency = [{"batch": b, "median_ms": size / 1e4, "min_ms": 0.1, "repeats": 3, "warmup": 1} for b in (1, 32)]
        return {"accuracy": 0.9 + size / 1e6, "loss": 0.1, "agreement": 1.0,
                "params": None if str(path).endswith(".tflite") else 100, "file_bytes": size, "latency": latency,
                "original_latency": latency, "runtime": "fake runtime", "device": "cpu"}

    monkeypatch.setattr(flow, "_make", make)
    monkeypatch.setattr(flow, "_measure", measure)
    return made, measured


def _statuses(out):
    return {c["name"]: c["status"] for c in out["candidates"]}


def test_each_candidate_is_keyed_by_the_model_and_its_settings(mlp, tmp_path, monkeypatch):
    made, measured = _fakes(monkeypatch, fail=("low-rank 0.2",))
    notes = []
    # allow_slower: no latency guard, so the runtime's threads only change how a candidate is measured
    run = dict(data=DIGITS, work_dir=tmp_path / "w", warn=notes.append)

    def settings(epochs, threads=None):
        return flow.TradeoffsSettings.make(budgets="0.5,0.2", baselines=False, allow_slower=True,
                                           settings=FitSettings(epochs=epochs), runtime=Runtime.parse(None, threads))

    out = flow.tradeoffs_file(mlp, settings(1), **run)
    assert _statuses(out) == {"original": "measured", "int8": "made", "low-rank 0.5": "made",
                              "low-rank 0.5 + int8": "made", "low-rank 0.2": "failed", "low-rank 0.2 + int8": "skipped"}
    text = markdown(tradeoffs_sections(out))
    assert "low-rank 0.2: failed: target_params=0.2 cannot be met" in text
    assert "low-rank 0.2 + int8: skipped: low-rank 0.2 was not made" in text
    assert out["candidates"][1]["params"] == 100  # a LiteRT file: the params of what it was exported from

    made.clear(), measured.clear()
    assert _statuses(flow.tradeoffs_file(mlp, settings(1), **run))["low-rank 0.5 + int8"] == "reused"
    assert made == ["low-rank 0.2"] and measured == []  # a failure is not kept: tried again

    made.clear()
    out = flow.tradeoffs_file(mlp, settings(1, threads=1), **run)  # measured otherwise: measured again, not made again
    assert made == ["low-rank 0.2"] and set(_statuses(out).values()) == {"measured", "failed", "skipped"}
    assert out["candidates"][2]["details"] == {"epochs": 1}  # what the making said is kept

    made.clear()
    out = flow.tradeoffs_file(mlp, settings(2, threads=1), **run)
    assert made == ["low-rank 0.5", "low-rank 0.5 + int8", "low-rank 0.2"]  # the int8 of the original stays
    assert _statuses(out)["int8"] == "reused"

    next((tmp_path / "w").glob("int8-*.json")).write_text("{not json")
    out = flow.tradeoffs_file(mlp, settings(2, threads=1), **run)
    assert _statuses(out)["int8"] == "measured" and any("unreadable tradeoffs result" in n for n in notes)


def test_a_signal_swallowed_while_a_candidate_was_made_keeps_nothing_of_it(mlp, tmp_path, monkeypatch):
    made, _ = _fakes(monkeypatch)
    real = flow._make

    def make(run, cand, path):  # a library caught Ctrl-C while this candidate was made, and carried on
        if cand.name == "low-rank 0.5":
            monkeypatch.setattr(flow._interrupts, "received", [2])
        return real(run, cand, path)

    monkeypatch.setattr(flow, "_make", make)
    with pytest.raises(KeyboardInterrupt):
        flow.tradeoffs_file(mlp, one_budget(), data=DIGITS, work_dir=tmp_path / "w")
    assert made == ["int8", "low-rank 0.5"]
    assert [p.name.split("-")[0] for p in sorted((tmp_path / "w").glob("*.json"))] == ["int8", "original"]


def test_the_model_hash_keys_every_candidate(mlp, tmp_path, monkeypatch):
    _fakes(monkeypatch)
    other = Path(shutil.copy(SAMPLE, tmp_path / "other.keras"))

    def keys(model):
        out = flow.tradeoffs_file(model, one_budget(), data=DIGITS, work_dir=tmp_path / "w")
        return {c["name"]: c["key"] for c in out["candidates"]}

    first = keys(mlp)
    assert keys(other) == first  # the same bytes: the same keys, whatever the file is called
    model = keras.models.load_model(mlp)
    model.layers[-1].bias.assign(model.layers[-1].bias + 1.0)
    model.save(other)
    changed = keys(other)
    assert all(changed[name] != first[name] for name in changed)


# -- bad input ------------------------------------------------------------------------------------

def test_bad_input_is_one_line_and_touches_nothing(mlp, tmp_path, monkeypatch):
    _fails_with(["tradeoffs", mlp, "-d", "digits", "--budgets", "0.5,half"], "--budgets 0.5,half is not a list of budgets", [mlp])
    _fails_with(["tradeoffs", mlp, "-d", "digits", "--budgets", "0.5,1.5"], "--budgets 0.5,1.5 holds 1.5, which is not a fraction")
    _fails_with(["tradeoffs", mlp, "-d", "digits", "--budgets", "0.2,0.2"], "--budgets 0.2,0.2 names a budget twice")
    _fails_with(["tradeoffs", mlp, "-d", "digits", "--work-dir", mlp], f"work folder {mlp} is the input {mlp}", [mlp])
    _fails_with(["tradeoffs", mlp, "-d", "digits", "--work-dir", tmp_path], "holds the input", [mlp])
    data = tmp_path / "photos"
    data.mkdir()
    _fails_with(["tradeoffs", mlp, "-d", data, "--work-dir", data / "w"], "is inside the input folder")
    _fails_with(["tradeoffs", mlp, "-d", "digits", "--plot", tmp_path / "p.jpg"], "must end in .png")
    _fails_with(["tradeoffs", mlp, "-d", "digits", "--max-drop", "-1"], "--max-drop -1.0 is invalid")
    _fails_with(["tradeoffs", mlp, "-d", "digits", "--epochs", "0"], "--epochs 0 is invalid")
    monkeypatch.setattr(flow, "baselines_installed", lambda: False)
    _fails_with(["tradeoffs", mlp, "-d", "digits", "--baselines"], 'install them with: pip install "lightcompress[baseline]"')
    assert not (tmp_path / "mlp.tradeoffs").exists() and not (tmp_path / "mlp.tradeoffs.png").exists()


def test_help_explains_with_an_example():
    result = runner.invoke(app, ["tradeoffs", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Example: lightcompress tradeoffs model.h5" in result.stdout and "--work-dir" in result.stdout


# -- the report -----------------------------------------------------------------------------------

def test_pareto_front_keeps_what_nothing_beats():
    assert pareto([(10, 0.9), (5, 0.9), (5, 0.8), (1, 0.5), (None, 0.99)]) == [False, True, False, True, False]
    assert pareto([(2, 0.9), (2, 0.9)]) == [True, True]  # a tie beats neither


def _latency(ms):
    return [{"batch": 1, "median_ms": ms, "min_ms": ms, "repeats": 40, "warmup": 5, "q1_ms": ms * 0.99,
             "q3_ms": ms * 1.01}]


def _entry(name, accuracy, file_bytes, ms, original_ms=1.0):
    return {"name": name, "accuracy": accuracy, "file_bytes": file_bytes, "latency": _latency(ms),
            "original_latency": _latency(original_ms)}


def test_recommendation_is_one_sentence_within_the_drop():
    base = _entry("original", 0.95, 1000, 1.0)
    both = recommend([base, _entry("int8", 0.945, 300, 0.5), _entry("low-rank 0.5", 0.80, 200, 0.3)], 1.0)
    assert both["smallest"] == both["fastest"] == "int8"
    assert both["text"].startswith("Recommended: int8, the smallest and the fastest candidate within 1 point")
    split = recommend([base, _entry("int8", 0.945, 300, 0.9), _entry("low-rank 0.5", 0.948, 500, 0.4)], 1.0)
    assert (split["smallest"], split["fastest"]) == ("int8", "low-rank 0.5")
    slow = recommend([base, _entry("prune 0.5", 0.95, 1000, 0.8, original_ms=0.8)], 1.0)  # the machine sped up
    assert slow["fastest"] is None and "none is faster than the original at batch 1" in slow["text"]
    none = recommend([base, _entry("low-rank 0.1", 0.90, 100, 0.2)], 1.0)
    assert none["smallest"] is None and none["text"].startswith("No candidate stays within 1 point of the original's")
    assert "the closest is low-rank 0.1 (0.9000, -5.00 pts)" in none["text"]
    assert all(r["text"].count(". ") == 0 for r in (both, split, slow, none))


@pytest.mark.slow  # ~2 min: two tfmot worker processes (prune and cluster) beside the low-rank candidates
def test_tradeoffs_with_the_baselines(mlp, tmp_path):
    if not flow.baselines_installed():
        pytest.skip("needs tensorflow-model-optimization and tf-keras (the [baseline] extra)")
    quick = [a for a in QUICK if a != "--no-baselines"]
    result = runner.invoke(app, ["tradeoffs", str(mlp), *quick[2:], "--budgets", "0.3", "--json"])
    assert result.exit_code == 0, result.output
    rows = {c["name"]: c for c in json.loads(result.stdout)["candidates"]}
    assert list(rows)[-2:] == ["prune 0.3", "cluster 0.3"]
    assert rows["prune 0.3"]["nonzero"] <= 0.3 * 17226 * 1.02 and rows["prune 0.3"]["params"] == 17226
    assert rows["cluster 0.3"]["details"]["budget"]["clusters"] >= 2
