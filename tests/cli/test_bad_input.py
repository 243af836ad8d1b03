"""Bad input, by kind (issue: reliability, red team): every model checked finite before it is saved
or exported, every data member checked before use, streamed reads bounded, values checked against
the real bound of NumPy / float32 / the runtime up front, and messages that name what is wrong.

Each CLI case: exit 1, one ``error:`` line naming the problem and the fix, the inputs unchanged,
nothing left in the output folder (``_fails``)."""

import threading

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import lightcompress
from lightcompress import defaults
from lightcompress.cli import app
from lightcompress.data import DataSpec, open_for_model
from lightcompress.errors import LightCompressError, ModelLoadError, OptionError

from .test_reliability import _fails

runner = CliRunner()


# -- 1. every model checked finite before it is saved or exported ---------------------------------

def test_a_model_with_a_nan_weight_is_never_exported(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="head")])
    kernel = model.layers[0].kernel.numpy()
    kernel[0, 0] = np.nan
    model.layers[0].kernel.assign(kernel)
    with pytest.raises(ModelLoadError, match=r"not exported to .*m\.lowered\.keras: weight '[^']*head/kernel' holds 1 NaN"):
        lightcompress.export(model, tmp_path / "m.lowered.keras", format="keras")
    assert list(tmp_path.iterdir()) == []


def test_an_export_whose_outputs_are_not_finite_is_not_called_a_match(tmp_path):
    """Finite weights whose outputs overflow: the verification must fail, not say 'max abs diff 0'."""
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(20, name="fc"),
                              keras.layers.Dense(10, name="head")])
    model.get_layer("fc").kernel.assign(np.ones((64, 20), np.float32))
    model.get_layer("head").kernel.assign(np.full((20, 10), 3e38, np.float32))
    path = tmp_path / "big.keras"
    model.save(path)
    out = tmp_path / "out"
    out.mkdir()
    _fails(["export", path, "-f", "keras", "-o", out / "big.lowered.keras"],
           "could not be verified: the model gives 640 NaN or infinite output values", [path], out)


# -- 2. every data member checked before use -----------------------------------------------------

def _npz(tmp_path, name, **members):
    arrays = {"x_train": np.zeros((10, 8, 8), np.float32), "y_train": np.arange(10) % 10,
              "x_test": np.zeros((5, 8, 8), np.float32), "y_test": np.arange(5)}
    arrays.update(members)
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("member,value,message", [
    ("y_train", np.array(["cat"] * 10), "array 'y_train' holds strings (dtype <U3); it must hold class indices"),
    ("x_train", np.float32(3.0), "array 'x_train' has shape (); it must hold images"),
    ("x_test", np.zeros((5, 8, 8), np.complex64), "array 'x_test' holds complex numbers"),
    ("y_test", np.zeros((5, 2, 2), np.int64), "array 'y_test' has shape (5, 2, 2); it must hold class indices"),
    ("x_train", np.array([None] * 10, dtype=object), "array 'x_train' holds Python objects"),
])
def test_npz_members_that_cannot_be_images_or_labels_name_the_member(small, tmp_path, member, value, message):
    path, _ = small
    bad = _npz(tmp_path, "bad.npz", **{member: value})
    _fails(["evaluate", path, "-d", bad], message, [path, bad])


DTYPES = st.sampled_from([np.uint8, np.int64, np.float16, np.float32, np.float64, np.bool_, np.complex64,
                          "U3", "S2", object])


@st.composite
def member(draw):
    rank = draw(st.integers(0, 4))
    shape = tuple(draw(st.integers(0, 6)) for _ in range(rank))
    dtype = draw(DTYPES)
    values = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-3, 12) | st.sampled_from([1e40, 2.0 ** 63, 3e38]),
                           min_size=1, max_size=8))
    flat = np.resize(np.asarray(values, np.float64), int(np.prod(shape, dtype=np.int64)))
    if dtype == object:
        array = np.empty(shape, object)
        array.reshape(-1)[:] = [str(v) for v in flat]
        return array
    with np.errstate(all="ignore"):
        if dtype in ("U3", "S2"):
            return flat.astype(str).astype(dtype).reshape(shape)
        return flat.astype(dtype).reshape(shape)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrays=st.fixed_dictionaries({k: member() for k in ("x_train", "y_train", "x_test", "y_test")}))
@example(arrays={"x_train": np.ones((4, 8, 8), np.bool_), "y_train": np.array([True, False] * 2),
                 "x_test": np.zeros((2, 8, 8, 1), np.uint8), "y_test": np.eye(10)[:2]})  # loads
@example(arrays={"x_train": np.full((4, 8, 8), 1e40), "y_train": np.zeros(4), "x_test": np.zeros((2, 8, 8)),
                 "y_test": np.full(2, 2.0 ** 63)})  # beyond float32 / int64: refused in one line
def test_random_npz_members_load_or_fail_in_one_line(tmp_path_factory, arrays):
    """Random dtypes (strings, objects, bools, complex...) and ranks 0-4: the data set either loads
    or ends in one LightCompressError line; never another exception, never a warning."""
    import warnings

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    path = tmp_path_factory.mktemp("npz") / "r.npz"
    np.savez(path, **arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would be a second line on the terminal
        try:
            prepared = open_for_model(model, DataSpec(str(path)), in_memory=True)
        except LightCompressError as err:
            assert "\n" not in str(err) and str(err)
            return
    assert np.all(np.isfinite(prepared.x_train)) and prepared.y_train.dtype == np.int64


# -- 3. bounded reads of streamed sources ------------------------------------------------------------

ENDLESS = '''
import itertools
import numpy as np
import tensorflow as tf


def forever(split):
    def batches():
        for _ in itertools.count():
            yield np.zeros((8, 8, 8), np.float32), np.arange(8, dtype=np.int64)
    signature = (tf.TensorSpec((None, 8, 8), tf.float32), tf.TensorSpec((None,), tf.int64))
    return tf.data.Dataset.from_generator(batches, output_signature=signature)


def repeating(split):
    x, y = np.zeros((16, 8, 8), np.float32), np.arange(16) % 10
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()
'''


def _within(seconds, call):
    """``call()``'s result, failing the test (not hanging it) when it takes longer than ``seconds``."""
    box = {}
    worker = threading.Thread(target=lambda: box.update(result=call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still reading after {seconds} s: the read is not bounded"
    return box["result"]


def test_a_source_that_never_ends_stops_at_the_limit_and_names_it(small, tmp_path, monkeypatch):
    path, _ = small
    source = tmp_path / "endless.py"
    source.write_text(ENDLESS)
    monkeypatch.setattr(defaults, "MAX_STREAM_EXAMPLES", 200)
    result = _within(120, lambda: runner.invoke(app, ["evaluate", str(path), "-d", f"{source}:forever"]))
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "the test split holds more than 200 examples, or never ends; pass --test-limit N" in lines[0]
    _fails(["evaluate", path, "-d", f"{source}:repeating"], "the test split never ends (it repeats forever); pass "
           "--test-limit N", [path, source])
    result = _within(120, lambda: runner.invoke(app, ["evaluate", str(path), "-d", f"{source}:forever",
                                                      "--test-limit", "40"]))
    assert result.exit_code == 0, result.output  # a stated limit reads the first N and ends


# -- 4. values that pass a check and fail later: checked against the real bound up front --------------

@pytest.mark.parametrize("args,message", [
    (["finetune", "{m}", "-d", "{data}", "--scale", "1e39", "-o", "{d}/o.keras"], "--scale 1e+39 is invalid; use a number in [1.17549e-38, 3.40282e+38]"),
    (["evaluate", "{m}", "-d", "digits", "--scale", "1e38"], "--scale 1e+38 makes the train pixels overflow float32 (255 x 1e+38 > 3.403e+38); use a smaller scale"),
    (["finetune", "{m}", "-d", "{data}", "--seed", str(2 ** 32), "-o", "{d}/o.keras"], "--seed 4294967296 is invalid; use a whole number in [0, 4294967295]"),
    (["compress", "{m}", "-d", "{data}", "--target-params", "0.5", "--seed", str(2 ** 32), "-o", "{d}/o.keras"], "--seed 4294967296 is invalid"),
    (["compress", "{m}", "-d", "{data}", "--target-params", "0.5", "--repeats", "0", "-o", "{d}/o.keras"], "--repeats 0 is invalid; use a whole number >= 1"),
    (["compare", "{m}", "{m}", "--repeats", "0"], "--repeats 0 is invalid"),
    (["compare", "{m}", "{m}", "--warmup", "-1"], "--warmup -1 is invalid"),
    (["compare", "{m}", "{m}", "--batch", "0"], "--batch 0 is invalid; use a whole number >= 1"),
    (["compare", "{m}", "{m}", "--batch", str(2 ** 40), "--runtime", "keras"], "GiB of memory free; use a batch of at most"),
    (["compare", "{m}", "{m}", "--threads", str(2 ** 40)], "--threads 1099511627776 is invalid; use a whole number in [1, 2147483647]"),
    (["export", "{m}", "-f", "keras", "--threads", str(2 ** 40), "-o", "{d}/o.keras"], "--threads 1099511627776 is invalid"),
])
def test_values_beyond_the_real_bound_are_refused_before_any_work(small, tmp_path, args, message):
    path, data = small
    out = tmp_path / "out"
    out.mkdir()
    _fails([a.format(m=path, d=out, data=data) for a in args], message, [path, data], out)


def test_a_scale_overflowing_a_streamed_set_is_blamed_on_the_scale(small, tmp_path):
    import tensorflow as tf

    for name in ("a", "b"):
        (tmp_path / "img" / name).mkdir(parents=True)
        for i in range(3):
            tf.io.write_file(str(tmp_path / "img" / name / f"{i}.png"), tf.io.encode_png(np.full((8, 8, 1), 200, np.uint8)))
    cnn = tmp_path / "cnn.keras"
    keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(),
                      keras.layers.Dense(10)]).save(cnn)
    line = _fails(["evaluate", cnn, "-d", tmp_path / "img", "--scale", "1e37"],
                  "--scale 1e+37 makes pixels of img overflow float32 (largest 3.403e+38); use a smaller scale.", [cnn])
    assert line.endswith("use a smaller scale.")


def test_the_python_verbs_get_the_same_bounds(small):
    path, _ = small
    with pytest.raises(OptionError, match=r"seed=4294967296 is invalid; use a whole number in \[0, 4294967295\]"):
        lightcompress.finetune(path, "digits", epochs=1, seed=2 ** 32)
    with pytest.raises(OptionError, match=r"scale=1e\+39 is invalid"):
        DataSpec("digits", scale=1e39)
    with pytest.raises(OptionError, match="repeats=0 is invalid"):
        lightcompress.compare([path, path], repeats=0)


# -- 5. messages that name what is wrong -----------------------------------------------------------

def test_messages_name_the_real_problem(small, tmp_path):
    path, data = small
    out = tmp_path / "out"
    out.mkdir()
    empty = tmp_path / "images"
    (empty / "cat").mkdir(parents=True)
    _fails(["evaluate", path, "-d", empty], "images is empty: it holds no images", [path])
    mlp = tmp_path / "mlp.keras"
    keras.Sequential([keras.Input((64,)), keras.layers.Dense(2, activation="softmax")]).save(mlp)
    _fails(["evaluate", mlp, "-d", empty], "images is empty", [mlp])  # not "the model does not take images"
    _fails(["convert", path, "--rank", "2", "--include", "fc*", "--exclude", "fc*", "-o", out / "c.keras"],
           "--exclude fc* removes every layer that --include fc* matches (fc)", [path], out)
    _fails(["convert", path, "--rank", "2", "--exclude", "*", "-o", out / "c.keras"],
           "--exclude * removes every factorisable layer (fc, head)", [path], out)
    _fails(["convert", path, "--rank", "2", "--npz-keys", "a,b,c,d", "-o", out / "c.keras"],
           "--npz-keys a,b,c,d shapes a data set, and none was given; give --dataset NAME too", [path], out)
    _fails(["export", path, "-f", "keras", "--scale", "0.5", "-o", out / "c.keras"],
           "--scale 0.5 shapes a data set, and none was given", [path], out)
    _fails(["evaluate", path, "--npz-keys", "a,b,c,d"],  # no data set: that is said first, no default is assumed
           "no data set was given and this needs one; pass --dataset NAME", [path])
    _fails(["evaluate", path, "-d", "digits", "--npz-keys", "a,b,c,d"], "--dataset digits is neither; drop --npz-keys",
           [path])
    _fails(["finetune", path, "-d", empty, "--npz-keys", "a,b,c,d", "-o", out / "t.keras"],
           "--npz-keys a,b,c,d names arrays of a .npz file", [path], out)
