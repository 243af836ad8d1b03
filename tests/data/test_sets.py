import gzip
import pickle

import keras
import numpy as np
import pytest

from lightcompress.data import sets as data
from lightcompress.errors import DataError


def _images(n, shape=(28, 28), seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def _labels(n, classes=10, seed=1):
    return np.random.default_rng(seed).integers(0, classes, size=n).astype(np.uint8)


def _write_idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def _write_fashion_cache(folder, x_train, y_train, x_test, y_test):
    folder.mkdir(parents=True)
    _write_idx(folder / "train-images-idx3-ubyte.gz", x_train, 2051)
    _write_idx(folder / "train-labels-idx1-ubyte.gz", y_train, 2049)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", x_test, 2051)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", y_test, 2049)


def test_embedded_digits_are_real_and_offline():
    with pytest.raises(DataError, match=r"^no data set was given and this needs one; pass data=NAME"):
        data.load_dataset()  # no default data set (issue 38): the digits are named
    ds = data.load_dataset("digits")
    assert ds.name == "digits"
    assert ds.x_train.shape == (1437, 8, 8) and ds.x_test.shape == (360, 8, 8)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.max() == 255
    assert set(np.unique(ds.y_test)) == set(range(10))
    # Same split every time.
    np.testing.assert_array_equal(data.load_dataset("digits").y_test, ds.y_test)


def test_cached_fashion_mnist_in_keras_format(tmp_path):
    arrays = (_images(30), _labels(30), _images(12, seed=2), _labels(12, seed=3))
    _write_fashion_cache(tmp_path / "fashion-mnist", *arrays)
    ds = data.load_dataset("fashion_mnist", datasets_dir=tmp_path)
    for got, want in zip((ds.x_train, ds.y_train, ds.x_test, ds.y_test), arrays):
        np.testing.assert_array_equal(got, want)
    assert data.load_dataset("fashion-mnist", datasets_dir=tmp_path).x_test.shape == (12, 28, 28)


def test_cached_mnist_npz(tmp_path):
    x, y = _images(20), _labels(20)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x[:5], y_test=y[:5])
    ds = data.load_dataset("mnist", datasets_dir=tmp_path)
    np.testing.assert_array_equal(ds.x_test, x[:5])


def test_cached_cifar10_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images = _images(12, (3, 32, 32))
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": images[2 * i:2 * i + 2].reshape(2, -1), b"labels": [i, i]}, f)
    ds = data.load_dataset("cifar10", datasets_dir=tmp_path)
    assert ds.x_train.shape == (10, 32, 32, 3) and ds.x_test.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(ds.x_train[0], images[0].transpose(1, 2, 0))
    np.testing.assert_array_equal(ds.y_train, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])


def test_uncached_named_dataset_offline_says_where_to_put_files(tmp_path, monkeypatch):
    def offline():
        raise Exception("URL fetch failure on https://example.invalid/mnist.npz: None -- no network")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    with pytest.raises(DataError, match=r"data set 'mnist' is not cached and could not be downloaded .*put mnist.npz in .*home/datasets/"):
        data.load_dataset("mnist", datasets_dir=tmp_path)


def test_npz_default_and_named_keys(tmp_path):
    x, y = _images(10, (8, 8)), _labels(10)
    np.savez(tmp_path / "a.npz", x_train=x, y_train=y, x_test=x[:3], y_test=y[:3])
    assert data.load_dataset(str(tmp_path / "a.npz")).x_test.shape == (3, 8, 8)
    np.savez(tmp_path / "b.npz", xs=x, ys=y, xt=x[:4], yt=y[:4])
    ds = data.load_dataset(str(tmp_path / "b.npz"), npz_keys=("xs", "ys", "xt", "yt"))
    assert ds.x_test.shape == (4, 8, 8)
    with pytest.raises(DataError, match=r"has no array 'x_train', 'y_train', 'x_test', 'y_test' \(it holds xs, ys, xt, yt\); name them with npz_keys="):
        data.load_dataset(str(tmp_path / "b.npz"))
    with pytest.raises(DataError, match="no such file"):
        data.load_dataset(str(tmp_path / "missing.npz"))
    with pytest.raises(DataError, match="unknown data set 'imagenet'"):
        data.load_dataset("imagenet")


def write_image_folder(root, classes=3, per_class=5, size=(10, 12), channels=3):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(*size, channels), dtype=np.uint8)
            tf.io.write_file(str(folder / f"{i}.png"), tf.io.encode_png(pixels))


def test_image_folder(tmp_path):
    write_image_folder(tmp_path / "imgs")
    ds = data.load_dataset(str(tmp_path / "imgs"), image_size=(10, 12), color_mode="rgb")
    assert ds.x_train.shape == (12, 10, 12, 3) and ds.x_test.shape == (3, 10, 12, 3)
    assert ds.x_train.dtype == np.uint8 and set(np.unique(np.r_[ds.y_train, ds.y_test])) == {0, 1, 2}
    gray = data.load_dataset(str(tmp_path / "imgs"), image_size=(6, 6), color_mode="grayscale")
    assert gray.x_train.shape == (12, 6, 6, 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty is empty: it holds no images"):
        data.load_dataset(str(tmp_path / "empty"), image_size=(6, 6))


def _model(input_shape, units=10, activation="softmax"):
    layers = [keras.Input(input_shape)]
    if len(input_shape) > 1:
        layers.append(keras.layers.Flatten())
    layers.append(keras.layers.Dense(units, activation=activation))
    return keras.Sequential(layers)


def _dataset(x_shape=(8, 8), classes=10, n=20, one_hot=False):
    x, y = _images(n, x_shape), _labels(n, classes)
    if one_hot:
        y = np.eye(classes)[y]
    return data.RawSplits("t", x, y, x[:6], y[:6])


def test_prepare_adds_channel_axis_and_scales():
    p = data.prepare(_dataset(), _model((8, 8, 1)))
    assert p.x_train.shape == (20, 8, 8, 1) and p.x_train.dtype == np.float32
    assert p.x_train.max() <= 1.0 and p.num_classes <= 10
    assert p.changes == ["scaled uint8 pixels to [0, 1]", "added a channel axis"]
    q = data.prepare(_dataset(), _model((8, 8, 1)), scale=1.0)
    assert q.x_train.max() > 1.0


def test_prepare_flattens_drops_channels_and_resizes():
    assert data.prepare(_dataset(), _model((64,))).x_train.shape == (20, 64)
    assert data.prepare(_dataset((8, 8, 1)), _model((8, 8))).x_test.shape == (6, 8, 8)
    p = data.prepare(_dataset(), _model((16, 16, 1)), resize=True)
    assert p.x_train.shape == (20, 16, 16, 1) and "resized images 8x8 to 16x16" in p.changes


def test_prepare_one_hot_labels():
    p = data.prepare(_dataset(one_hot=True), _model((8, 8, 1)))
    assert p.y_train.ndim == 1 and "one-hot labels turned into class indices" in p.changes
    want = _labels(20, 10)  # the class indices the one-hot rows were made from
    assert p.y_train.dtype == np.int64
    np.testing.assert_array_equal(p.y_train, want)
    np.testing.assert_array_equal(p.y_test, want[:6])
    assert p.num_classes == int(want.max()) + 1


@pytest.mark.parametrize(
    "ds, model, message",
    [
        (_dataset((8, 8, 3)), _model((8, 8, 1)), "train images have 3 channel(s) but the model takes 1"),
        (_dataset(), _model((16, 16, 1)), "the images are 8x8 but the model takes 16x16; pass resize=True"),
        (_dataset(classes=100, n=400), _model((8, 8, 1)), "has 100 classes but the model has a 10-way output"),
        (_dataset(), _model((7, 3)), "train images have shape (8, 8); the model takes (7, 3)"),
    ],
)
def test_prepare_mismatch_errors(ds, model, message):
    with pytest.raises(DataError) as info:
        data.prepare(ds, model)
    assert message in str(info.value)
