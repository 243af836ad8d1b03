"""compare (issue 23): models timed in turns, every latency with its spread and calls, verdicts
only beyond the noise, and the four-column int8 compare."""

import json
from itertools import pairwise

import keras
import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from lightcompress import report
from lightcompress.cli import app
from lightcompress.deploy import latency
from lightcompress.deploy.measure import ModelMeasure
from lightcompress.deploy.timing import Latency, Runtime
from lightcompress.flows.compare import compare_models
from lightcompress.flows.convert import convert
from lightcompress.report.render import significant
from tests.models import policy

from ..cli.test_convert_command import _fails_with

runner = CliRunner()


def _mlp(name, width):
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(width, activation="relu"),
                             keras.layers.Dense(3)], name=name)


def test_compare_times_the_models_in_turns_at_each_batch(monkeypatch):
    calls = []  # (model, batch) of every call of every timer, in order
    made = latency.keras_timer

    def spy(model, batch=1, seed=0):
        run = made(model, batch, seed)

        def call():
            calls.append((model.name, batch))
            return run()

        return call

    monkeypatch.setattr(latency, "keras_timer", spy)
    out = compare_models([_mlp("a", 8), _mlp("b", 16)], ["a", "b"], batches=(1, 4), repeats=12, warmup=1,
                         runtime=Runtime("keras"))
    batches = [b for _, b in calls]
    first_4 = batches.index(4)
    assert set(batches[:first_4]) == {1} and set(batches[first_4:]) == {4}  # one batch size at a time
    for part in (calls[:first_4], calls[first_4:]):
        names = [n for n, _ in part]
        turns = sum(1 for x, y in pairwise(names) if x != y)
        # each round: a's untimed call and its chunk of timed calls, then b's: never all of a before b
        assert turns >= 3 and names.count("a") == names.count("b"), names
    a, b = out["models"]
    assert [lat["repeats"] for lat in a["latency"]] == [lat["repeats"] for lat in b["latency"]]
    assert all(lat["repeats"] >= 12 and lat["q1_ms"] <= lat["median_ms"] <= lat["q3_ms"] for lat in b["latency"])
    assert a["latency"][0]["verdict"] is None and b["latency"][0]["verdict"]["batch"] == 1


def _timing(batch, centre, spread, n=60):
    offsets = np.linspace(-spread, spread, n)
    return Latency.from_samples(batch, centre + offsets, warmup=3)


def _measure(path, *latencies):
    return ModelMeasure(path, 100, 100, 1000, 400, 500, "LiteRT interpreter, 2 threads", [], list(latencies))


def _text(data):
    console = Console(record=True, width=200)
    report.render(report.compare_sections(data), console)
    return console.export_text()


def test_the_report_gives_median_spread_calls_and_a_verdict_only_beyond_the_noise():
    base = _measure("dir/base.keras", _timing(1, 1.0, 0.05), _timing(32, 10.0, 0.5))
    same = _measure("dir/same.keras", _timing(1, 1.002, 0.05), _timing(32, 10.01, 0.5))
    fast = _measure("dir/fast.keras", _timing(1, 0.5, 0.02), _timing(32, 5.0, 0.2))
    data = json.loads(json.dumps(report.compare_dict([base, same, fast], "CPU")))  # the JSON form
    first, second, third = data["models"]
    assert all({"median_ms", "q1_ms", "q3_ms", "repeats"} <= set(lat) for m in data["models"] for lat in m["latency"])
    assert first["latency"][0]["verdict"] is None
    assert [lat["verdict"]["word"] for lat in second["latency"]] == ["same within noise"] * 2
    assert [lat["verdict"]["word"] for lat in third["latency"]] == ["faster"] * 2
    assert third["latency"][0]["verdict"]["text"] == "0.5x, faster"
    assert data["headline"] is None  # three models: no one pair to headline
    text = _text(data)
    assert "same within noise (±" in text and "0.5x, faster" in text
    iqr = first["latency"][0]["q3_ms"] - first["latency"][0]["q1_ms"]
    assert f"1,000 ({significant(iqr * 1000)})" in text  # the median and its IQR, in µs
    assert "of 60 calls at batch 1 and 60 calls at batch 32" in text and "interleaved" in text
    assert "note: slower" not in text
    markdown = report.markdown(report.compare_sections(data))
    assert "| latency batch 1 (µs), median (IQR) |" in markdown and "| batch 1 vs first | - |" in markdown
    slow = _measure("dir/slow.keras", _timing(1, 2.0, 0.05), _timing(32, 20.0, 0.5))
    two = report.compare_dict([base, slow], "CPU")
    assert two["headline"]["text"].startswith("slow.keras vs base.keras: 2x at batch 1, slower; 2x at batch 32, slower")
    assert "note: slower than base.keras at batch 1 beyond the noise: slow.keras (2x, slower)" in _text(two)


def _pair(folder):
    keras.utils.set_random_seed(3)
    original = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
                                 keras.layers.Flatten(), keras.layers.Dense(32, activation="relu", name="fc"),
                                 keras.layers.Dense(10, activation="softmax", name="head")])
    compressed = convert(original, *policy(rank=4, min_params=0)).model
    original.save(folder / "orig.keras")
    compressed.save(folder / "small.keras")
    return folder / "orig.keras", folder / "small.keras"


def test_int8_compare_shows_four_columns_and_the_int8_verdict(tmp_path):
    original, compressed = _pair(tmp_path)
    result = runner.invoke(app, ["compare", str(original), str(compressed), "--int8", "-d", "digits", "--repeats", "5",
                                 "--warmup", "1", "--batch", "4", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    models = data["models"]
    assert [m["label"] for m in models] == ["original float", "original int8", "compressed float", "compressed int8"]
    assert all("LiteRT" in m["runtime"] and "1 thread" in m["runtime"] for m in models)
    assert all([lat["batch"] for lat in m["latency"]] == [1, 4] for m in models)
    assert len({m["latency"][0]["repeats"] for m in models}) == 1  # timed in turns: the same calls each
    assert models[1]["file_bytes"] < models[0]["file_bytes"] and models[3]["file_bytes"] < models[2]["file_bytes"]
    assert models[0]["params"] == models[1]["params"] > models[2]["params"] == models[3]["params"]
    assert all(m["evaluation"]["examples"] == 360 for m in models)
    headline = data["headline"]
    assert (headline["model"], headline["against"]) == (3, 1)
    points = (models[3]["evaluation"]["accuracy"] - models[1]["evaluation"]["accuracy"]) * 100
    assert headline["accuracy_points"] == pytest.approx(points, abs=1e-4)
    assert headline["text"].startswith("compressed int8 vs original int8: ")
    assert " at batch 1, " in headline["text"] and headline["text"].endswith(f"accuracy {points:+.1f} pts")
    assert [v["batch"] for v in headline["latency"]] == [1, 4]
    assert "300 training images of digits" in data["notes"][0]
    assert [row["name"] for row in data["layers"]] == ["conv", "fc", "head"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orig.keras", "small.keras"]  # nothing written beside them
    text = _text(data)
    assert "original int8" in text and "compressed int8 vs original int8" in text and "batch 4 vs first" in text


@pytest.mark.parametrize("extra,message", [
    ([], "--int8 needs calibration images from the training split; give --dataset NAME"),
    (["-d", "digits", "{dir}/third.keras"], "--int8 compares two Keras models"),
    (["-d", "digits", "--runtime", "keras"], "--runtime keras does not time int8"),
])
def test_int8_compare_errors_are_one_line(extra, message, tmp_path):
    original, compressed = _pair(tmp_path)
    third = tmp_path / "third.keras"  # a real file: a missing one would be answered before --int8
    third.write_bytes(original.read_bytes())
    _fails_with(["compare", original, compressed, "--int8", *[a.format(dir=tmp_path) for a in extra]], message,
                [original, compressed, third])


def test_int8_compare_needs_tensorflow(tmp_path, monkeypatch):
    original, compressed = _pair(tmp_path)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")  # what this process would say under JAX
    line = _fails_with(["compare", original, compressed, "--int8", "-d", "digits"], "--int8 needs LiteRT")
    assert "TensorFlow" in line and "jax" in line
