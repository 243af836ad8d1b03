"""compare (issue 23): models timed in turns, every latency with its spread and calls, verdicts
only beyond the noise."""

import json
from itertools import pairwise

import keras
import numpy as np
from rich.console import Console

from lightcompress import report
from lightcompress.deploy import latency
from lightcompress.deploy.measure import ModelMeasure
from lightcompress.deploy.timing import Latency, Runtime
from lightcompress.flows.compare import compare_models
from lightcompress.report.render import significant


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
