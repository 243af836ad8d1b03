"""Raw data sets by name or path, and shaping them for a model as arrays (``Prepared``).

Sources, chosen by one string (the data set spec):

- ``digits`` (the default): scikit-learn's 1,797 real 8×8 handwritten digits, shipped inside its
  wheel, so every command runs offline on a fresh machine;
- ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``: read from the files Keras caches under
  ``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``), for Fashion-MNIST also from Debian's
  ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``); when not there, the Keras
  loader downloads them, and offline a one-line error says where to put the files;
- a ``.npz`` file with ``x_train, y_train, x_test, y_test`` (or keys the caller names);
- a folder of images in one sub-folder per class (``train/`` and ``test/`` inside it are used
  when present; else 20% is held out for testing);
- TFRecord files and ``module:function`` sources are streamed (see ``streams``); ``open`` opens
  any spec for a model, in memory or streamed.

``load_dataset`` returns the raw arrays (``RawSplits``); ``prepare`` scales and shapes them for a
model and says what it changed, or raises a DataError that names the mismatch before any training
starts. ``DataSpec`` is what a caller says about the data.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import pickle
import socket
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from .._deferred import deferred
from ..errors import DataError, OptionError
from ..io.files import check_regular_file
from ..validation import SEED_MAX, number
from .dataset import single_io_shape
from .memory import Prepared
from .sources import check_not_empty, first_line, is_function_spec, is_tfrecord_spec, unreadable_image

sklearn_datasets = deferred("sklearn.datasets")  # the digits, shipped with scikit-learn

__all__ = ["NAMED", "DataSpec", "Prepared", "RawSplits", "check_limits", "keras_datasets_dir",
           "load_dataset", "prepare", "single_io_shape"]

NAMED = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@dataclass
class RawSplits:
    """Raw arrays as the source holds them (images usually uint8), integer or one-hot labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def limit(self, train=None, test=None) -> "RawSplits":
        """The first ``train``/``test`` examples (None keeps all)."""
        return RawSplits(self.name, self.x_train[:train], self.y_train[:train], self.x_test[:test],
                       self.y_test[:test])


def keras_datasets_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "datasets"


# -- named data sets -------------------------------------------------------------------------

def _read_digits(_dirs):
    digits = sklearn_datasets.load_digits()
    x = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))  # fixed split, stratified enough
    test = order[:360]
    train = order[360:]
    return x[train], y[train], x[test], y[test]


def _find(dirs, names):
    for d in dirs:
        if all((d / n).exists() for n in names):
            return d
    return None


def _read_idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def _read_fashion_mnist(dirs):
    folder = _find(dirs, _FASHION_FILES)
    if folder is None:
        return None
    x_train = _read_idx(folder / _FASHION_FILES[0], 16)
    y_train = _read_idx(folder / _FASHION_FILES[1], 8)
    x_test = _read_idx(folder / _FASHION_FILES[2], 16)
    y_test = _read_idx(folder / _FASHION_FILES[3], 8)
    return x_train.reshape(len(y_train), 28, 28), y_train, x_test.reshape(len(y_test), 28, 28), y_test


def _read_mnist(dirs):
    folder = _find(dirs, ["mnist.npz"])
    if folder is None:
        return None
    with np.load(folder / "mnist.npz", allow_pickle=False) as f:
        return f["x_train"], f["y_train"], f["x_test"], f["y_test"]


def _read_cifar_batch(path, label_key):
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    batch = {k.decode("utf8") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    x = np.asarray(batch["data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return x, np.asarray(batch[label_key], np.int64)


def _read_cifar(dirs, inner, train_files, test_file, label_key):
    folder = _find(dirs, [f"{inner}/{test_file}"])
    if folder is None:
        return None
    parts = [_read_cifar_batch(folder / inner / name, label_key) for name in train_files]
    x_test, y_test = _read_cifar_batch(folder / inner / test_file, label_key)
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            x_test, y_test)


def _read_cifar10(dirs):
    batches = [f"data_batch_{i}" for i in range(1, 6)]
    return _read_cifar(dirs, "cifar-10-batches-py", batches, "test_batch", "labels")


def _read_cifar100(dirs):
    return _read_cifar(dirs, "cifar-100-python", ["train"], "test", "fine_labels")


def _search_dirs(name, base):
    if name == "fashion_mnist":
        return [base / "fashion-mnist", DEBIAN_FASHION_MNIST]
    if name == "cifar10":
        return [base / "cifar-10-batches-py-target", base]
    if name == "cifar100":
        return [base / "cifar-100-python-target", base]
    return [base]


_READERS = {
    "digits": _read_digits,
    "mnist": _read_mnist,
    "fashion_mnist": _read_fashion_mnist,
    "cifar10": _read_cifar10,
    "cifar100": _read_cifar100,
}

_WHERE = {
    "mnist": "put mnist.npz in {base}/",
    "fashion_mnist": "put the four *-ubyte.gz files in {base}/fashion-mnist/ or run "
    "'apt-get install dataset-fashion-mnist'",
    "cifar10": "extract cifar-10-python.tar.gz into {base}/ (giving {base}/cifar-10-batches-py/)",
    "cifar100": "extract cifar-100-python.tar.gz into {base}/ (giving {base}/cifar-100-python/)",
}


def _download(name):
    """Let the real Keras loader fetch ``name`` into its cache; a DataError when it cannot."""
    loader = getattr(keras.datasets, name).load_data
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        (x_train, y_train), (x_test, y_test) = loader()
    except Exception as err:  # offline: URL fetch failure, DNS error, time-out...
        base = keras_datasets_dir()
        raise DataError(
            f"data set '{name}' is not cached and could not be downloaded "
            f"({str(err).splitlines()[0]}); {_WHERE[name].format(base=base)}."
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    return x_train, y_train, x_test, y_test


def _load_named(name, datasets_dir=None):
    base = Path(datasets_dir) if datasets_dir else keras_datasets_dir()
    arrays = _READERS[name](_search_dirs(name, base))
    if arrays is None:
        arrays = _download(name)
    x_train, y_train, x_test, y_test = arrays
    return RawSplits(name, x_train, np.ravel(y_train), x_test, np.ravel(y_test))


# -- files and folders -----------------------------------------------------------------------

def _load_npz(path, keys):
    keys = tuple(keys or NPZ_KEYS)
    if len(keys) != 4:
        raise DataError(f"npz_keys needs 4 names (x_train,y_train,x_test,y_test), got {','.join(keys)}.")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise DataError(
                    f"{path} has no array {', '.join(repr(k) for k in missing)} (it holds "
                    f"{', '.join(f.files) or 'nothing'}); name them with npz_keys=x,y,x_test,y_test."
                )
            arrays = [_npz_member(path, f, k, role) for k, role in zip(keys, NPZ_KEYS)]
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path} is not a readable .npz file ({first_line(err)}).") from None
    return RawSplits(path.name, *arrays)


# dtype kinds an array may hold: images are numbers (bool, int, uint, float); labels too.
_NUMERIC_KINDS = {"b": "booleans", "i": "integers", "u": "integers", "f": "floats"}
_KIND_NAMES = {"c": "complex numbers", "U": "strings", "S": "bytes", "O": "Python objects", "V": "records",
               "M": "dates", "m": "time spans"}


def _npz_member(path, f, key, role):
    """Member ``key`` of the open npz ``f`` (the ``role`` x_train, y_train, ...), refused in one line
    when its dtype or rank cannot be images (N, ...) or labels (N,) / one-hot (N, classes)."""
    try:
        array = f[key]
    except ValueError as err:  # object arrays need pickle, which is never allowed
        if "pickle" in str(err).lower():
            raise DataError(f"{path}: array '{key}' holds Python objects; save {role} as numbers "
                            f"(np.asarray(..., dtype=np.float32 or np.int64)).") from None
        raise
    images = role.startswith("x_")
    expected = ("images, numbers shaped (N, height, width[, channels]) or (N, features)" if images else
                "class indices shaped (N,) or one-hot labels shaped (N, classes)")
    named = f"'{key}'" if key == role else f"'{key}' ({role})"
    kind = array.dtype.kind
    if kind not in _NUMERIC_KINDS:
        what = _KIND_NAMES.get(kind, f"dtype {array.dtype}")
        raise DataError(f"{path}: array {named} holds {what} (dtype {array.dtype}); it must hold "
                        f"{expected}: convert it with np.asarray(..., dtype=np.{'float32' if images else 'int64'}).")
    rank_ok = 2 <= array.ndim <= 4 if images else array.ndim == 1 or (array.ndim == 2 and array.shape[1] >= 1)
    if not rank_ok:
        raise DataError(f"{path}: array {named} has shape {array.shape}; it must hold {expected}.")
    return array


def _load_folder(path, image_size, color_mode, seed):
    check_not_empty(path)
    if image_size is None:
        raise DataError(f"{path} is a folder of images, but the model does not take images (height, width, "
                        f"channels); use a model with an image input, or a .npz of arrays shaped for it.")
    options = dict(image_size=tuple(image_size), color_mode=color_mode, batch_size=None,
                   shuffle=True, seed=seed, verbose=False, label_mode="int")

    def arrays(dataset):
        xs, ys = [], []
        try:
            for x, y in dataset.as_numpy_iterator():
                xs.append(np.round(x).astype(np.uint8))
                ys.append(y)
        except Exception as err:  # noqa: BLE001 - TensorFlow's decode errors name no file
            bad = unreadable_image(path)
            raise DataError(f"{bad or path}: an image could not be decoded ({type(err).__name__}); remove or "
                            f"replace that file.") from None
        if not xs:
            raise DataError(f"{path} holds no images in class sub-folders (png, jpg, bmp, gif).")
        return np.stack(xs), np.asarray(ys, np.int64)

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # Keras prints split sizes
            train, test = _image_splits(keras, path, options)
    except ValueError as err:
        raise DataError(f"{path}: {str(err).splitlines()[0]}") from None
    return RawSplits(path.name, *arrays(train), *arrays(test))


def _image_splits(keras, path, options):
    if (path / "train").is_dir() and (path / "test").is_dir():
        return (keras.utils.image_dataset_from_directory(path / "train", **options),
                keras.utils.image_dataset_from_directory(path / "test", **options))
    return keras.utils.image_dataset_from_directory(path, validation_split=0.2, subset="both", **options)


def load_dataset(spec=None, *, npz_keys=None, image_size=None, color_mode="rgb", seed=0,
                 datasets_dir=None) -> RawSplits:
    """Load a data set by name, ``.npz`` path or image folder (see the module docstring).

    ``image_size`` and ``color_mode`` are used for image folders only; ``datasets_dir`` replaces
    the Keras cache folder for named data sets.
    """
    if spec is None:
        raise DataError(no_data_message())
    spec = str(spec)
    name = spec.lower().replace("-", "_")
    if name in _READERS:
        return _load_named(name, datasets_dir)
    path = Path(spec)
    if path.is_dir():
        return _load_folder(path, image_size, color_mode, seed)
    if path.suffix == ".npz":
        if not path.exists():
            raise DataError(f"{path}: no such file; check the path.")
        check_regular_file(path, "a .npz file", DataError)  # before np.load opens it: a FIFO would hang
        return _load_npz(path, npz_keys)
    if is_tfrecord_spec(spec) or is_function_spec(spec):
        raise DataError(f"'{spec}' is a streamed source; open it for a model with data.open_for_model.")
    raise DataError(_unknown(spec))


SOURCES = "a .npz file, a folder of images in class sub-folders, a .tfrecord file or module:function"


def _unknown(spec) -> str:
    return f"unknown data set '{spec}'; use one of {', '.join(NAMED)}, {SOURCES}."


def no_data_message() -> str:
    """What a command or verb that needs data says when it was given none (only the demo has a
    default data set: a silent one gave meaningless accuracies on the wrong images)."""
    return f"no data set was given and this needs one; pass data=NAME: one of {', '.join(NAMED)}, {SOURCES}."


def check_source(spec) -> None:
    """Refuse, before any work, a data source that names nothing: not a known name, not a path
    that exists (a .npz file, an image folder, TFRecord files) and not module:function."""
    spec = str(spec)
    if spec.lower().replace("-", "_") in NAMED or is_tfrecord_spec(spec) or is_function_spec(spec):
        return
    path = Path(spec)
    if path.suffix == ".npz" and not path.exists():
        raise DataError(f"{path}: no such file; check the path.")
    if not path.exists():
        raise DataError(_unknown(spec))


def required(data):
    """``data`` for a flow or verb that cannot run without data (a name or path becomes a
    ``DataSpec``; anything else is returned as it is); none given (None, or a DataSpec without a
    source) is one line saying so, before any other check (output paths too)."""
    if data is None or (isinstance(data, DataSpec) and data.source is None):
        raise DataError(no_data_message())
    return DataSpec(os.fspath(data)) if isinstance(data, (str, os.PathLike)) else data


# -- shaping for a model ---------------------------------------------------------------------

MAX_LABEL = 2 ** 31 - 1  # a class index beyond it names no output a model can have


def _labels(y, split):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=1).astype(np.int64), True  # one-hot -> integers
    if y.ndim == 0 or (y.ndim == 2 and y.shape[1] != 1) or y.ndim > 2:
        raise DataError(f"{split} labels have shape {y.shape}; give class indices shaped (N,) or one-hot "
                        f"labels shaped (N, classes).")
    y = y.reshape(len(y))
    if y.dtype == np.bool_:
        y = y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.integer):
        values = y.astype(np.float64)
        if not np.all(np.isfinite(values)) or not np.all(np.equal(np.mod(values, 1), 0)):
            raise DataError(f"{split} labels are not class indices (found {y[:3]}...); classification only.")
        if len(values) and np.abs(values).max() > MAX_LABEL:
            raise DataError(f"{split} labels include {np.abs(values).max():g}; class indices are 0 to the "
                            f"number of classes - 1.")
        y = values.astype(np.int64)
    elif len(y) and y.max() > MAX_LABEL:
        raise DataError(f"{split} labels include {y.max()}; class indices are 0 to the number of classes - 1.")
    if len(y) and y.min() < 0:
        raise DataError(f"{split} labels include {y.min()}; class indices start at 0.")
    return y.astype(np.int64), False


def _resize(x, size):
    out = [keras.ops.convert_to_numpy(keras.ops.image.resize(x[i:i + 2048], size))
           for i in range(0, len(x), 2048)]
    return np.concatenate(out).astype(np.float32)


def _shape_images(x, target, resize, split, changes):
    """Match ``x`` (N, ...) to the model's input shape ``target`` (no batch axis)."""
    x = np.asarray(x)
    if x.shape[1:] == target:
        return x
    if len(target) == 1 and int(np.prod(x.shape[1:])) == target[0]:
        changes.append(f"flattened images {x.shape[1:]} to {target}")
        return x.reshape(len(x), -1)
    if len(target) == 3:
        height, width, channels = target
        if x.ndim == 3:
            x = x[..., None]
            if channels == 1:
                changes.append("added a channel axis")
        if x.ndim != 4:
            raise DataError(f"{split} images have shape {x.shape[1:]}; the model takes {target}.")
        if x.shape[3] != channels:
            raise DataError(
                f"{split} images have {x.shape[3]} channel(s) but the model takes {channels}; "
                f"use a data set with {channels}-channel images."
            )
        if (height, width) != x.shape[1:3] and None not in (height, width):
            if not resize:
                raise DataError(
                    f"the images are {x.shape[1]}x{x.shape[2]} but the model takes "
                    f"{height}x{width}; pass resize=True to resize them."
                )
            changes.append(f"resized images {x.shape[1]}x{x.shape[2]} to {height}x{width}")
            x = _resize(x.astype(np.float32), (height, width))
        return x
    if len(target) == 2 and x.ndim == 4 and x.shape[3] == 1 and x.shape[1:3] == target:
        changes.append("dropped the channel axis")
        return x[..., 0]
    raise DataError(f"{split} images have shape {x.shape[1:]}; the model takes {target}.")


def prepare(dataset: RawSplits, model, *, scale=None, resize=False) -> Prepared:
    """Scale and shape ``dataset`` for ``model``; every change is listed in ``Prepared.changes``.

    ``scale``: multiply pixels by this; None means uint8 images are scaled to [0, 1] and other
    dtypes are left as they are.
    """
    target, units = single_io_shape(model)
    changes = []
    check_scale(scale)
    for split in ("train", "test"):
        x = np.asarray(getattr(dataset, f"x_{split}"))
        if x.ndim == 0:
            raise DataError(f"data set '{dataset.name}': x_{split} is a single value, not images; give an array "
                            f"of images shaped (N, height, width[, channels]) or (N, features).")
        if len(x) == 0:
            raise DataError(f"data set '{dataset.name}' has no {split} images; give a data set with both splits.")
    if scale is None:
        scale = 1 / 255 if dataset.x_train.dtype == np.uint8 else 1.0
        if scale != 1.0:
            changes.append("scaled uint8 pixels to [0, 1]")
    elif scale != 1.0:
        changes.append(f"multiplied pixels by {scale:g}")
    arrays = {}
    for split in ("train", "test"):
        x = _shape_images(getattr(dataset, f"x_{split}"), target, resize, split, changes)
        y, was_one_hot = _labels(getattr(dataset, f"y_{split}"), split)
        if was_one_hot:
            changes.append("one-hot labels turned into class indices")
        if len(x) != len(y):
            raise DataError(f"{split} split has {len(x)} images but {len(y)} labels.")
        with np.errstate(over="ignore", invalid="ignore"):  # found below, in one line
            raw = x.astype(np.float32)
            x = raw * np.float32(scale)
        bad = ~np.isfinite(raw.reshape(len(raw), -1)).all(axis=1)
        if bad.any():
            raise DataError(f"data set '{dataset.name}': {split} image {int(np.argmax(bad))} (and "
                            f"{int(bad.sum()) - 1} more) holds NaN or inf values (or values beyond float32's "
                            f"range, {F32_MAX:.4g}); clean the data first.")
        if not np.all(np.isfinite(x)):
            largest = float(np.abs(raw).max())
            raise DataError(f"scale={scale!r} makes the {split} pixels overflow float32 ({largest:g} x {scale:g} > "
                            f"{F32_MAX:.4g}); use a smaller scale, e.g. {1 / max(largest, 1):.3g}.")
        arrays[split] = (x, y)
    num_classes = max(int(arrays["train"][1].max(initial=0)), int(arrays["test"][1].max(initial=0))) + 1
    capacity = units if units > 1 else 2
    if num_classes > capacity:
        raise DataError(
            f"data set '{dataset.name}' has {num_classes} classes but the model has a {units}-way "
            f"output; use a data set with at most {capacity} classes."
        )
    return Prepared(dataset.name, *arrays["train"], *arrays["test"], num_classes=num_classes,
                    changes=sorted(set(changes), key=changes.index))


@dataclass(frozen=True)
class DataSpec:
    """What a caller says about the data: a source (see ``load_dataset``) and how to shape it."""

    source: str | None = None  # None: no data set given (commands that need one say so: ``required``)
    npz_keys: tuple | None = None
    scale: float | None = None
    resize: bool = False
    train_limit: int | None = None
    test_limit: int | None = None
    seed: int = 0

    def __post_init__(self):
        """Every value checked here, at the boundary, against the bound that would break it later."""
        check_scale(self.scale)
        check_limits(self)
        check_seed(self.seed)
        if self.source is not None:
            check_source(self.source)
        if self.npz_keys is not None:
            if self.source is None:
                raise DataError(no_data_message())
            source = str(self.source)
            if not (source.lower().endswith(".npz") or is_tfrecord_spec(source)):
                raise OptionError(f"npz_keys={','.join(map(str, self.npz_keys))} names arrays of a .npz file or "
                                  f"features of TFRecord files, and data={source} is neither; drop npz_keys, or "
                                  f"give a .npz or .tfrecord data set.")

    @property
    def name(self) -> str:
        return self.source or "no data set"


F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)  # smallest normal float32: a smaller scale rounds pixels to 0


def check_scale(scale):
    """``scale`` (None: the default) is a float32 number pixels can be multiplied by."""
    if scale is not None:
        number("scale", scale, F32_TINY, F32_MAX, example=f"{1 / 255:.6g}")
    return scale


def check_seed(seed):
    """A seed NumPy's ``np.random.seed`` (which Keras seeds) accepts: a whole number in [0, 2**32 - 1]."""
    return number("seed", seed, 0, SEED_MAX, whole_only=True)


def check_limits(spec: DataSpec):
    for name, value in (("train_limit", spec.train_limit), ("test_limit", spec.test_limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise DataError(f"{name}={value!r} is invalid; use 1 or more images.")
