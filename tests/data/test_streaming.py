"""Streamed sources (image folders, TFRecord files, module:function): same numbers as the in-memory
path, training on them, and one-line errors for every way a source can fail to fit the model."""

import hashlib
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from lightcompress.data import open_for_model, sets as data, streams
from lightcompress.factorization.statistics import calibration_images
from lightcompress.cli import app
from lightcompress.errors import DataError
from lightcompress.training.evaluation import evaluate
from lightcompress.training.finetune import FitSettings, Teacher, finetune

SAMPLES = Path(__file__).resolve().parents[2] / "sample_models"
N = 400  # real digits written as PNGs


def _digits():
    ds = data.load_dataset("digits")
    return np.concatenate([ds.x_train, ds.x_test])[:N], np.concatenate([ds.y_train, ds.y_test])[:N]


def _write_folder(root, x, y, classes=None):
    for i, (image, label) in enumerate(zip(x, y)):
        folder = root / f"c{label}"
        folder.mkdir(parents=True, exist_ok=True)
        tf.io.write_file(str(folder / f"{i}.png"), tf.io.encode_png(image[..., None]))
    return root


def _write_tfrecord(path, x, y, image_key="image", label_key="label"):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for image, label in zip(x, y):
            png = tf.io.encode_png(image[..., None] if image.ndim == 2 else image).numpy()
            feature = {image_key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                       label_key: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return path


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    x, y = _digits()
    return _write_folder(tmp_path_factory.mktemp("stream") / "digits", x, y)


@pytest.fixture
def cnn():
    return keras.saving.load_model(SAMPLES / "digits_cnn.keras")


def _digest(folder):
    h = hashlib.sha256()
    for f in sorted(Path(folder).rglob("*")):
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()


# -- same numbers as in memory -------------------------------------------------------------------

def test_streamed_folder_evaluates_exactly_like_the_in_memory_path(digits_folder, cnn):
    before = _digest(digits_folder)
    spec = data.DataSpec(str(digits_folder))
    in_memory = open_for_model(cnn, spec, in_memory=True)
    stream = open_for_model(cnn, spec)
    assert isinstance(stream, streams.Streamed) and isinstance(in_memory, data.Prepared)
    assert stream.count("train") == len(in_memory.x_train) and stream.count("test") == len(in_memory.x_test)
    assert stream.changes == in_memory.changes
    a, b = evaluate(cnn, in_memory), evaluate(cnn, stream)
    assert a.examples == b.examples == 80
    assert a.accuracy == b.accuracy and a.accuracy > 0.8  # a trained model on real digits
    assert b.loss == pytest.approx(a.loss, rel=1e-5)
    # The very same test images, as float32 arrays.
    x, y = stream.sample("test", stream.count("test"))
    order_a, order_b = np.lexsort(in_memory.x_test.reshape(80, -1).T), np.lexsort(x.reshape(80, -1).T)
    np.testing.assert_array_equal(x[order_b], in_memory.x_test[order_a])
    np.testing.assert_array_equal(y[order_b], in_memory.y_test[order_a])
    assert _digest(digits_folder) == before  # inputs are never modified


def test_train_and_test_subfolders_are_the_splits(tmp_path, cnn):
    x, y = _digits()
    _write_folder(tmp_path / "d" / "train", x[:300], y[:300])
    _write_folder(tmp_path / "d" / "test", x[300:], y[300:])
    stream = open_for_model(cnn, data.DataSpec(str(tmp_path / "d"), test_limit=50))
    assert (stream.count("train"), stream.count("test")) == (300, 50)
    assert evaluate(cnn, stream).examples == 50


def test_finetune_on_a_stream_changes_weights_and_keeps_a_validation_slice(digits_folder, cnn):
    stream = open_for_model(cnn, data.DataSpec(str(digits_folder)))
    train, val, steps = stream.fit_data(32, 0.25, 0)
    n_train = sum(len(b[1]) for b in train)
    n_val = sum(len(b[1]) for b in val)
    assert (n_train, n_val, steps) == (240, 80, 8)
    before = [w.copy() for w in cnn.get_weights()]
    result = finetune(cnn, stream, FitSettings(epochs=1, batch_size=32, learning_rate=1e-3, validation_split=0.25))
    assert result.epochs_run == 1 and "val_loss" in result.history
    assert any(not np.allclose(a, b) for a, b in zip(before, cnn.get_weights()))


def test_distillation_on_a_stream(digits_folder, cnn):
    teacher = keras.saving.load_model(SAMPLES / "digits_cnn.keras")
    stream = open_for_model(cnn, data.DataSpec(str(digits_folder)))
    result = finetune(cnn, stream, FitSettings(epochs=1, batch_size=64, validation_split=0.1),
                      teacher=Teacher(teacher, 0.5, 2.0))
    assert result.epochs_run == 1 and np.isfinite(result.history["val_loss"][0])


def test_calibration_and_holdout_take_bounded_samples(digits_folder, cnn):
    stream = open_for_model(cnn, data.DataSpec(str(digits_folder)))
    x = calibration_images(stream, 50)
    assert x.shape == (50, 8, 8, 1) and x.dtype == np.float32 and x.max() <= 1.0
    judge, rest = stream.holdout(40, 0)
    assert len(judge.x_test) == 40 and rest.count("train") == 280 and isinstance(rest, streams.Streamed)
    seen = np.concatenate([b[0] for b in rest.chunks("train", 64)])
    flat = {bytes(r) for r in seen.reshape(len(seen), -1)}
    assert not any(bytes(r) in flat for r in judge.x_test.reshape(40, -1))  # held out means held out


# -- TFRecord and module:function ----------------------------------------------------------------

def test_tfrecord_round_trip_matches_the_arrays(tmp_path, cnn):
    x, y = _digits()
    _write_tfrecord(tmp_path / "digits-train.tfrecord", x[:300], y[:300])
    _write_tfrecord(tmp_path / "digits-test.tfrecord", x[300:], y[300:])
    stream = open_for_model(cnn, data.DataSpec(str(tmp_path / "digits-*.tfrecord")))
    arrays = data.prepare(data.RawSplits("a", x[:300], y[:300], x[300:], y[300:]), cnn)
    assert (stream.count("train"), stream.count("test")) == (300, 100)
    assert stream.changes == ["scaled uint8 pixels to [0, 1]"]  # the PNGs hold a channel axis already
    a, b = evaluate(cnn, arrays), evaluate(cnn, stream)
    assert a.accuracy == b.accuracy and b.loss == pytest.approx(a.loss, rel=1e-5)
    # One file, other feature names: every 5th record is the test split.
    _write_tfrecord(tmp_path / "one.tfrecords", x, y, "img", "cls")
    named = open_for_model(cnn, data.DataSpec(str(tmp_path / "one.tfrecords"), npz_keys=("img", "cls")))
    assert (named.count("train"), named.count("test")) == (320, 80)
    with pytest.raises(DataError, match=r"no feature 'image', 'label' \(they hold cls, img\); name .*npz_keys"):
        open_for_model(cnn, data.DataSpec(str(tmp_path / "one.tfrecords")))
    # in memory, a TFRecord source is read whole
    whole = open_for_model(cnn, data.DataSpec(str(tmp_path / "one.tfrecords"), npz_keys=("img", "cls")), in_memory=True)
    assert isinstance(whole, data.Prepared) and whole.x_train.shape == (320, 8, 8, 1)


SOURCES = '''
import numpy as np
import keras
import tensorflow as tf
from lightcompress import data

def _arrays():
    ds = data.load_dataset("digits")
    return ds.x_train[:200], ds.y_train[:200], ds.x_test[:60], ds.y_test[:60]

def tf_split(split="train"):
    x_train, y_train, x_test, y_test = _arrays()
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    return tf.data.Dataset.from_tensor_slices((x, keras.utils.to_categorical(y, 10))).batch(32)

class Batches(keras.utils.PyDataset):
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y
    def __len__(self):
        return -(-len(self.x) // 25)
    def __getitem__(self, i):
        return self.x[i * 25:(i + 1) * 25], self.y[i * 25:(i + 1) * 25]

def py_pair():
    x_train, y_train, x_test, y_test = _arrays()
    return Batches(x_train, y_train), Batches(x_test, y_test)

def big_labels(split="train"):
    x_train, y_train, _, _ = _arrays()
    return tf.data.Dataset.from_tensor_slices((x_train, (y_train + 5) % 15)).batch(16)

def rgb(split="train"):
    return tf.data.Dataset.from_tensor_slices((np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4, np.int64))).batch(2)

def unbatched(split="train"):
    return tf.data.Dataset.from_tensor_slices((np.zeros((4, 8, 8), np.uint8), np.zeros(4, np.int64)))

def not_a_dataset(split="train"):
    return [1, 2, 3]

def raises(split="train"):
    raise RuntimeError("no data today")

def single():
    return tf_split("train")
'''


@pytest.fixture
def sources(tmp_path, monkeypatch):
    (tmp_path / "user_sources.py").write_text(textwrap.dedent(SOURCES))
    (tmp_path / "needs_more.py").write_text("import no_such_dependency_xyz\n")
    (tmp_path / "crashes.py").write_text("raise RuntimeError('bad config')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path / "user_sources.py"


@pytest.mark.slow  # two streamed sources end to end (~7 s); .ci/run runs -m slow
def test_function_returning_tf_data_and_pydataset(sources, cnn):
    ds = data.load_dataset("digits")
    arrays = data.prepare(ds.limit(200, 60), cnn)
    expected = evaluate(cnn, arrays)
    for spec in (f"{sources}:tf_split", "user_sources:py_pair"):
        stream = open_for_model(cnn, data.DataSpec(spec))
        assert (stream.count("train"), stream.count("test")) == (200, 60)
        got = evaluate(cnn, stream)
        assert got.accuracy == expected.accuracy and got.loss == pytest.approx(expected.loss, rel=1e-5)
    one_hot = open_for_model(cnn, data.DataSpec("user_sources:tf_split"))
    assert "one-hot labels turned into class indices" in one_hot.changes
    result = finetune(cnn, one_hot, FitSettings(epochs=1, batch_size=50))
    assert result.epochs_run == 1


@pytest.mark.parametrize("spec, message", [
    ("user_sources:missing", "user_sources has no function 'missing' (it has: "),
    ("no_such_module_xyz:load", "module 'no_such_module_xyz' was not found; check its name"),
    ("user_sources:not_a_dataset", "returned list for the train split; return a tf.data.Dataset or a keras.utils.PyDataset"),
    ("user_sources:raises", "user_sources:raises(split='train') raised RuntimeError: no data today; fix the function."),
    ("user_sources:single", "without a split parameter it must return a (train, test) pair"),
    ("user_sources:unbatched", "yields single examples of shape (8, 8); batch it"),
    ("user_sources:rgb", "train images have 3 channel(s) but the model takes 1"),
    ("missing_file.py:load", "missing_file.py: no such Python file"),
    ("needs_more:load", "importing module 'needs_more' failed (ModuleNotFoundError: No module named "
                        "'no_such_dependency_xyz'); install what it needs."),
    ("crashes:load", "importing module 'crashes' failed (RuntimeError: bad config); fix that module."),
])
def test_function_source_errors(sources, cnn, spec, message):
    with pytest.raises(DataError) as err:
        open_for_model(cnn, data.DataSpec(spec))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_bad_label_later_in_the_stream_is_a_one_line_data_error(sources, cnn):
    stream = open_for_model(cnn, data.DataSpec("user_sources:big_labels"))  # first labels fit
    with pytest.raises(DataError, match=r"^user_sources:big_labels: a label is 10 or more but the model has a "
                                        r"10-way output; use a data set with at most 10 classes\.$"):
        finetune(cnn, stream, FitSettings(epochs=1, batch_size=50))


def test_folder_and_tfrecord_errors(tmp_path, digits_folder, cnn):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="empty is empty: it holds no images"):
        open_for_model(cnn, data.DataSpec(str(tmp_path / "empty")))
    five = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(5, activation="softmax")])
    with pytest.raises(DataError, match="has 10 classes but the model has a 5-way output"):
        open_for_model(five, data.DataSpec(str(digits_folder)))
    flat = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    with pytest.raises(DataError, match="the model does not take images"):
        open_for_model(flat, data.DataSpec(str(digits_folder)))
    x, y = _digits()
    bad = _write_folder(tmp_path / "bad", x[:50], y[:50])
    broken = next(bad.rglob("*.png"))
    broken.write_bytes(b"not a png")
    stream = open_for_model(cnn, data.DataSpec(str(bad)))
    with pytest.raises(DataError, match=r"an image could not be decoded .*; remove or replace that file") as err:
        stream.materialise()  # both splits, so the broken file is read wherever it fell
    assert str(err.value).startswith(f"{broken}: ")  # names the file
    big = np.zeros((10, 10, 10), np.uint8)
    _write_tfrecord(tmp_path / "big.tfrecord", big, np.zeros(10, np.int64))
    with pytest.raises(DataError, match=r"the images are 10x10 but the model takes 8x8; pass resize=True"):
        open_for_model(cnn, data.DataSpec(str(tmp_path / "big.tfrecord")))
    resized = open_for_model(cnn, data.DataSpec(str(tmp_path / "big.tfrecord"), resize=True))
    assert resized.sample("train", 3)[0].shape == (3, 8, 8, 1)
    mixed = [np.zeros((8, 8), np.uint8)] * 5 + [np.zeros((10, 10), np.uint8)] * 5
    _write_tfrecord(tmp_path / "mixed.tfrecord", mixed, np.zeros(10, np.int64))
    stream = open_for_model(cnn, data.DataSpec(str(tmp_path / "mixed.tfrecord")))  # the first fits
    with pytest.raises(DataError, match=r"an image has another shape than the first .*; make every image the "
                                        r"same size, or pass resize=True\.$"):
        stream.materialise()
    with pytest.raises(DataError, match="no such TFRecord file"):
        open_for_model(cnn, data.DataSpec(str(tmp_path / "none*.tfrecord")))
    (tmp_path / "junk.tfrecord").write_bytes(b"0123456789abcdef0123")
    with pytest.raises(DataError, match="junk.tfrecord is not a readable TFRecord file"):
        open_for_model(cnn, data.DataSpec(str(tmp_path / "junk.tfrecord")))


# -- the command line ----------------------------------------------------------------------------

runner = CliRunner()


def test_cli_finetune_and_evaluate_on_streams(tmp_path, digits_folder, sources):
    model = SAMPLES / "digits_cnn.keras"
    out = tmp_path / "tuned.keras"
    result = runner.invoke(app, ["finetune", str(model), "--dataset", str(digits_folder), "--epochs", "1",
                                 "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert '"train_images": 320' in result.stdout and out.exists()
    result = runner.invoke(app, ["evaluate", str(model), "--dataset", f"{sources}:tf_split", "--json"])
    assert result.exit_code == 0, result.output
    assert '"examples": 60' in result.stdout
    help_text = runner.invoke(app, ["finetune", "--help"]).stdout
    assert "tfrecord" in help_text.lower() and "module:function" in help_text


def test_cli_stream_errors_are_one_line_in_flag_words(tmp_path, sources):
    model = SAMPLES / "digits_cnn.keras"
    x, y = _digits()
    _write_tfrecord(tmp_path / "one.tfrecord", x[:20], y[:20], "img", "cls")
    for args, message in (
        (["--dataset", "user_sources:missing"], "user_sources has no function 'missing'"),
        (["--dataset", str(tmp_path / "one.tfrecord")], "name the image and label features with --npz-keys IMAGE,LABEL"),
    ):
        result = runner.invoke(app, ["evaluate", str(model), *args])
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
        assert "Traceback" not in result.output
