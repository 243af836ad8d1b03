"""The ``Dataset`` interface: an in-memory ``Prepared`` and a ``Streamed`` of the same images answer
every operation alike, evaluation and agreement give the same numbers on both, and a held-out slice
is disjoint from the rest and never touches the test split."""

from pathlib import Path

import keras
import numpy as np
import pytest

from lightcompress.data import DataSpec, Dataset, Prepared, RawSplits, Streamed, open_for_model, prepare
from lightcompress.errors import DataError, OptionError
from lightcompress.training.evaluation import agreement, evaluate

from ..data.test_streaming import _write_tfrecord

SAMPLES = Path(__file__).resolve().parents[2] / "sample_models"


def _unique_images(n, seed=0):
    """``n`` distinct 8x8 uint8 images (the first two pixels spell the index), labels 0..9."""
    x = np.random.default_rng(seed).integers(0, 256, size=(n, 8, 8), dtype=np.uint8)
    x[:, 0, 0], x[:, 0, 1] = np.arange(n) // 256, np.arange(n) % 256
    return x, (np.arange(n) % 10).astype(np.int64)


@pytest.fixture(scope="module")
def cnn():
    return keras.saving.load_model(SAMPLES / "digits_cnn.keras")


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """A TFRecord source of 150 training and 50 test images (the spec, the raw arrays)."""
    x, y = _unique_images(200)
    folder = tmp_path_factory.mktemp("interface")
    _write_tfrecord(folder / "a-train.tfrecord", x[:150], y[:150])
    _write_tfrecord(folder / "a-test.tfrecord", x[150:], y[150:])
    return str(folder / "a-*.tfrecord"), RawSplits("a", x[:150], y[:150], x[150:], y[150:])


@pytest.fixture(scope="module")
def both(records, cnn):
    """(Prepared, Streamed) of the same images, in the same order."""
    spec, raw = records
    return prepare(raw, cnn), open_for_model(cnn, DataSpec(spec))


def _rows(x):
    return [bytes(r) for r in np.asarray(x).reshape(len(x), -1)]


def test_both_kinds_implement_the_interface(both):
    in_memory, stream = both
    assert isinstance(in_memory, Dataset) and isinstance(stream, Dataset)
    assert isinstance(in_memory, Prepared) and in_memory.in_memory
    assert isinstance(stream, Streamed) and not stream.in_memory
    assert in_memory.changes == ["scaled uint8 pixels to [0, 1]", "added a channel axis"]
    assert stream.changes == ["scaled uint8 pixels to [0, 1]"]  # the PNGs hold a channel axis already
    for split, n in (("train", 150), ("test", 50)):
        assert in_memory.count(split) == stream.count(split) == n
        for a, b in zip(in_memory.head(split, 7), stream.head(split, 7)):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(in_memory.arrays(split), stream.arrays(split)):
            np.testing.assert_array_equal(a, b)
        chunks = list(stream.chunks(split, 32))
        assert [len(c[1]) for c in chunks] == [32] * (n // 32) + ([n % 32] if n % 32 else [])
        np.testing.assert_array_equal(np.concatenate([c[0] for c in chunks]), in_memory.arrays(split)[0])
        assert len(list(in_memory.chunks(split, 32))) == 1  # in memory: the whole split at once


def test_samples_are_bounded_spread_and_in_order(both):
    in_memory, stream = both
    for data in both:
        x, y = data.sample("train", 20, seed=3)
        assert x.shape == (20, 8, 8, 1) and x.dtype == np.float32 and y.dtype == np.int64
        position = [_rows(data.arrays("train")[0]).index(r) for r in _rows(x)]
        assert position == sorted(position) and len(set(position)) == 20
        all_x, _ = data.sample("train", 10_000)  # more than there are: all of them, in order
        np.testing.assert_array_equal(all_x, data.arrays("train")[0])
    # a bound on reading applies to a stream; an in-memory set already holds everything
    assert len(stream.arrays("test", limit=10)[0]) == 10
    assert len(in_memory.arrays("test", limit=10)[0]) == 50
    # the in-memory draw follows the seed
    a, b = in_memory.sample("train", 20, seed=1)[0], in_memory.sample("train", 20, seed=2)[0]
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, in_memory.sample("train", 20, seed=1)[0])


def test_the_same_images_evaluate_to_the_same_numbers_in_memory_and_streamed(both, cnn):
    in_memory, stream = both
    a, b = evaluate(cnn, in_memory), evaluate(cnn, stream, batch_size=16)
    assert a.examples == b.examples == 50
    assert a.accuracy == b.accuracy
    assert b.loss == pytest.approx(a.loss, rel=1e-6)
    other = keras.models.clone_model(cnn)  # same architecture, other (fresh) weights
    other.set_weights([w + np.float32(0.3) * np.random.default_rng(i).standard_normal(w.shape).astype(np.float32)
                       for i, w in enumerate(cnn.get_weights())])
    assert agreement(cnn, cnn, in_memory) == agreement(cnn, cnn, stream) == 1.0
    mixed = agreement(cnn, other, in_memory)
    assert mixed == agreement(cnn, other, stream, batch_size=16)
    expected = np.mean(np.argmax(cnn.predict(in_memory.x_test, verbose=0), 1)
                       == np.argmax(other.predict(in_memory.x_test, verbose=0), 1))
    assert mixed == pytest.approx(float(expected), abs=0) and 0 < mixed < 1


@pytest.mark.parametrize("kind", ["in memory", "streamed"])
def test_holdout_is_disjoint_from_the_rest_and_never_touches_the_test_split(both, kind):
    data = both[0] if kind == "in memory" else both[1]
    test_before = [a.copy() for a in data.arrays("test")]
    judge, rest = data.holdout(20, seed=0)
    assert judge.in_memory and judge.count("train") == judge.count("test") == 20
    np.testing.assert_array_equal(judge.arrays("train")[0], judge.arrays("test")[0])  # the slice judges itself
    assert type(rest) is type(data) and rest.count("train") == 130 and rest.name == data.name
    held, kept = set(_rows(judge.arrays("train")[0])), set(_rows(rest.arrays("train")[0]))
    assert not held & kept
    assert held | kept == set(_rows(data.arrays("train")[0]))  # nothing lost either
    for a, b in zip(rest.arrays("test"), test_before):
        np.testing.assert_array_equal(a, b)
    assert not held & set(_rows(test_before[0]))
    # a fifth of the training split at most
    assert data.holdout(1000)[0].count("train") == 30


def test_holdout_refusals_name_the_problem(both):
    tiny = Prepared("tiny", np.zeros((4, 8, 8, 1), np.float32), np.zeros(4, np.int64),
                    np.zeros((2, 8, 8, 1), np.float32), np.zeros(2, np.int64), 10)
    with pytest.raises(DataError, match=r"^tiny has too few training images to hold any out\.$"):
        tiny.holdout(10)
    with pytest.raises(OptionError, match=r"^holdout=0 is invalid; use a whole number >= 1\.$"):
        both[1].holdout(0)


def test_open_for_model_is_the_one_door(both, records, cnn):
    in_memory, stream = both
    assert open_for_model(cnn, in_memory) is in_memory and open_for_model(cnn, stream) is stream
    with pytest.raises(DataError, match=r"^no data set was given and this needs one; pass data=NAME"):
        open_for_model(cnn, None)  # no default data set (issue 38)
    digits = open_for_model(cnn, "digits")
    assert isinstance(digits, Prepared) and digits.name == "digits" and digits.count("test") == 360
    assert open_for_model(cnn, "digits").count("train") == open_for_model(cnn, DataSpec("digits")).count("train")
    whole = open_for_model(cnn, DataSpec(records[0]), in_memory=True)  # a streamed source read whole
    assert isinstance(whole, Prepared)
    for split in ("train", "test"):
        for a, b in zip(whole.arrays(split), in_memory.arrays(split)):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(DataError, match=r"^train_limit=0 is invalid; use 1 or more images\.$"):
        open_for_model(cnn, DataSpec("digits", train_limit=0))
