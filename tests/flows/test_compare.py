"""compare (issue 23): models timed in turns."""

from itertools import pairwise

import keras

from lightcompress.deploy import latency
from lightcompress.deploy.timing import Runtime
from lightcompress.flows.compare import compare_models


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
