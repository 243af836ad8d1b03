"""The streamed sources' readers: image folders, TFRecord files and ``module:function``.

Each reader gives a ``Source``: per split, a function returning a ``tf.data.Dataset`` of cheap
items in a fixed order (file names and labels, serialized records, or the user's examples), and
``decode`` turning one item into an (image, label) pair. ``streams`` shuffles, splits, shapes and
batches them for a model; see its docstring for the contract of each source.
"""

from __future__ import annotations

import contextlib
import glob as globbing
import inspect
import io
import re
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from .._deferred import deferred
from .._user_code import first_line, import_user_module, raised, running
from ..errors import DataError
from ..io.files import check_regular_file

tf = deferred("tensorflow")

TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords")
TFRECORD_KEYS = ("image", "label")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SHUFFLE_BUFFER = 10_000  # examples (TFRecord records, function outputs) shuffled at once
TEST_EVERY = 5  # a source without a test split: every 5th example (20%) is held out
# A PyDataset claiming more batches than this is refused before it is read: ImageNet's 1.28M images
# are 40,000 batches of 32, so 10^7 batches of even one image is far beyond any data set used here,
# while a claimed 10^12 would keep the run counting for days.
MAX_BATCHES = 10_000_000
_FUNCTION = re.compile(r"^(?P<module>[^:]+):(?P<function>[A-Za-z_][A-Za-z0-9_]*)$")


def is_function_spec(source) -> bool:
    return bool(source) and not Path(str(source)).exists() and _FUNCTION.match(str(source)) is not None


def is_tfrecord_spec(source) -> bool:
    return bool(source) and str(source).lower().endswith(TFRECORD_SUFFIXES)


def is_stream_spec(source) -> bool:
    """Does ``source`` name a streamed source (a folder, TFRecord files, module:function)?"""
    if not source:
        return False
    return Path(str(source)).is_dir() or is_tfrecord_spec(source) or is_function_spec(source)


# -- sources: cheap items in a fixed order, and how to decode one ---------------------------------

@dataclass
class Source:
    items: dict  # {"train"/"test": () -> tf.data.Dataset of items, in a fixed order}
    decode: object  # item -> (image, label) tensors
    counts: dict  # {"train"/"test": number of items, or None when unknown}
    classes: int | None = None
    buffer: int = SHUFFLE_BUFFER
    fixed_shape: bool = False  # decode already gives the model's input shape (folders)
    origin: str = ""  # the folder, when an unreadable image can be searched for


def check_not_empty(path: Path):
    """A folder of images holding no image file at all is refused as empty (before any word about
    the model, which is not what is wrong)."""
    if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in Path(path).rglob("*") if f.is_file()):
        raise DataError(f"{path} is empty: it holds no images ({', '.join(IMAGE_SUFFIXES)}); put each class's "
                        f"images in a sub-folder named after it.")


def folder_source(path: Path, target, seed) -> Source:
    check_not_empty(path)
    if len(target) != 3 or None in target[:2]:
        raise DataError(f"{path} is a folder of images, but the model does not take images (height, width, "
                        f"channels); use a model with an image input, or a .npz of arrays shaped for it.")
    height, width, channels = target
    options = dict(image_size=(height, width), color_mode="grayscale" if channels == 1 else "rgb",
                   batch_size=None, shuffle=True, seed=seed, verbose=False, label_mode="int")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            if (path / "train").is_dir() and (path / "test").is_dir():
                train = keras.utils.image_dataset_from_directory(path / "train", **options)
                test = keras.utils.image_dataset_from_directory(path / "test", class_names=train.class_names,
                                                                **options)
                roots = (path / "train", path / "test")
            else:
                train, test = keras.utils.image_dataset_from_directory(path, validation_split=0.2, subset="both",
                                                                       **options)
                roots = (path, path)
    except ValueError as err:
        message = str(err).splitlines()[0]
        if "No " in message and "images found" in message:
            raise DataError(f"{path} holds no images in class sub-folders ({', '.join(IMAGE_SUFFIXES)}); put "
                            f"each class's images in a sub-folder named after it.") from None
        raise DataError(f"{path}: {message}") from None
    names = train.class_names
    lists = {}
    for split, ds, root in (("train", train, roots[0]), ("test", test, roots[1])):
        files = list(ds.file_paths)
        labels = [names.index(Path(f).relative_to(root).parts[0]) for f in files]
        lists[split] = (files, np.asarray(labels, np.int64))

    def items(split):
        files, labels = lists[split]
        return lambda: tf.data.Dataset.from_tensor_slices((files, labels))

    def decode(file, label):  # keras.utils.image_dataset_from_directory's loading, then its uint8 values
        image = tf.image.decode_image(tf.io.read_file(file), channels=channels, expand_animations=False)
        image = tf.image.resize(image, (height, width), method="bilinear")
        image.set_shape((height, width, channels))
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label

    return Source({s: items(s) for s in lists}, decode, {s: len(lists[s][0]) for s in lists},
                   classes=len(names), buffer=max(1, len(lists["train"][0])), fixed_shape=True, origin=str(path))


def tfrecord_source(spec: str, keys, target) -> Source:
    files = sorted(globbing.glob(spec)) if globbing.has_magic(spec) else ([spec] if Path(spec).exists() else [])
    if not files:
        raise DataError(f"{spec}: no such TFRecord file; check the path (a glob such as 'shards/*.tfrecord' "
                        f"is allowed).")
    for file in files:  # before TensorFlow opens them: a FIFO would hang the run
        check_regular_file(file, "a .tfrecord file", DataError)
    keys = tuple(keys or TFRECORD_KEYS)
    if len(keys) != 2:
        raise DataError(f"npz_keys={','.join(keys)} names {len(keys)} features; TFRecord examples need 2 "
                        f"names (image,label), e.g. npz_keys=image,label.")
    image_key, label_key = keys
    tests = [f for f in files if "test" in Path(f).name.lower()]
    trains = [f for f in files if f not in tests]
    channels = target[2] if len(target) == 3 else 0
    features = {image_key: tf.io.FixedLenFeature([], tf.string), label_key: tf.io.FixedLenFeature([], tf.int64)}

    def decode(record):
        example = tf.io.parse_single_example(record, features)
        image = tf.image.decode_image(example[image_key], channels=channels, expand_animations=False)
        return image, example[label_key]

    def records(names, pick=None):
        def make():
            ds = tf.data.TFRecordDataset(names)
            if pick is not None:
                ds = _every(ds, TEST_EVERY, pick)
            return ds
        return make

    if tests and trains:
        items = {"train": records(trains), "test": records(tests)}
    else:
        items = {"train": records(files, pick=False), "test": records(files, pick=True)}
    source = Source(items, decode, {"train": None, "test": None})
    try:  # the first record says whether the feature names fit, before any work
        first = next(iter(items["train"]().take(1)), None)
        if first is None:
            raise DataError(f"{spec} holds no records; write tf.train.Example records into it.")
        parsed = tf.train.Example.FromString(first.numpy())
    except tf.errors.OpError as err:
        raise DataError(f"{spec} is not a readable TFRecord file ({first_line(err)}).") from None
    except Exception:  # noqa: BLE001 - protobuf's DecodeError
        raise DataError(f"{spec} does not hold tf.train.Example records; write them with "
                        f"tf.train.Example(features=...).SerializeToString().") from None
    present = sorted(parsed.features.feature)
    missing = [k for k in keys if k not in present]
    if missing:
        raise DataError(f"{spec}: the records have no feature {', '.join(repr(k) for k in missing)} (they hold "
                        f"{', '.join(present) or 'nothing'}); name the image and label features with "
                        f"npz_keys=IMAGE,LABEL.")
    return source


def _every(ds, k, picked: bool):
    """Every ``k``-th element of ``ds`` (``picked``) or all the others."""
    return ds.enumerate().filter(lambda i, _: (i % k == k - 1) == picked).map(lambda i, e: e)


# -- module:function ------------------------------------------------------------------------------

def _import(module_name: str):
    return import_user_module(module_name, DataError, "data module (before ':')")


def _check_batches(spec, ds, split):
    """A tf.data.Dataset of (x, y) batches from what the user's function returned."""
    if isinstance(ds, keras.utils.PyDataset):
        return _from_pydataset(spec, ds, split)
    if not isinstance(ds, tf.data.Dataset):
        raise DataError(f"{spec} returned {type(ds).__name__} for the {split} split; return a tf.data.Dataset or "
                        f"a keras.utils.PyDataset of (images, labels) batches.")
    element = ds.element_spec
    if not isinstance(element, tuple) or len(element) < 2:
        raise DataError(f"{spec}: the {split} dataset yields {element}; yield (images, labels) batches.")
    if element[1].shape.rank == 0 or (element[0].shape.rank is not None and element[0].shape.rank < 2):
        raise DataError(f"{spec}: the {split} dataset yields single examples of shape {element[0].shape}; batch "
                        f"it (dataset.batch(64)) as model.fit expects.")
    return ds.map(lambda *e: (e[0], e[1]))


def _from_pydataset(spec, ds, split):
    def user(step):  # the PyDataset's own methods are the user's code too
        return running(DataError, lambda err: f"{spec}: the {split} PyDataset's {step} {raised(err)}; fix it.")

    with user("__len__"):
        batches = len(ds) if hasattr(type(ds), "__len__") else None
    if not batches:
        raise DataError(f"{spec}: the {split} PyDataset has no length (or no batches); give it __len__.")
    if not isinstance(batches, int) or batches > MAX_BATCHES:
        raise DataError(f"{spec}: the {split} PyDataset claims {batches} batches, more than the {MAX_BATCHES:,} "
                        f"a data set may have here; make __len__ return the number of batches it really has.")
    with user("__getitem__(0)"):
        first = ds[0]
    if not isinstance(first, tuple) or len(first) < 2:
        raise DataError(f"{spec}: the {split} PyDataset's batches are {type(first).__name__}; return "
                        f"(images, labels) tuples from __getitem__.")
    x, y = np.asarray(first[0]), np.asarray(first[1])
    signature = (tf.TensorSpec((None, *x.shape[1:]), x.dtype), tf.TensorSpec((None, *y.shape[1:]), y.dtype))

    def generate():
        for i in range(batches):
            with user(f"__getitem__({i})"):
                batch = ds[i]
            yield np.asarray(batch[0]), np.asarray(batch[1])
        with user("on_epoch_end"):
            ds.on_epoch_end()

    return tf.data.Dataset.from_generator(generate, output_signature=signature)


def function_source(spec: str) -> Source:
    match = _FUNCTION.match(spec)
    module = _import(match["module"])
    name = match["function"]
    fn = getattr(module, name, None)
    if not callable(fn):
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise DataError(f"{match['module']} has no function '{name}' (it has: {', '.join(public) or 'none'}); "
                        f"check the name after ':'.")
    try:
        takes_split = "split" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_split = False

    def call(**kwargs):
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        with running(DataError, lambda err: f"{spec}({args}) {raised(err)}; fix the function."):
            return fn(**kwargs)

    if takes_split:
        out = {split: call(split=split) for split in ("train", "test")}
    else:
        pair = call()
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise DataError(f"{spec}() returned {type(pair).__name__}; without a split parameter it must return a "
                            f"(train, test) pair of tf.data.Dataset or keras.utils.PyDataset.")
        out = dict(zip(("train", "test"), pair))
    batched = {split: _check_batches(spec, ds, split) for split, ds in out.items()}
    items = {split: (lambda b=b: b.unbatch()) for split, b in batched.items()}
    return Source(items, lambda x, y: (x, y), {"train": None, "test": None}, buffer=1024)


def unreadable_image(folder):
    """The first image file under ``folder`` that TensorFlow cannot decode, or None."""
    for file in sorted(Path(folder).rglob("*")):
        if file.suffix.lower() in IMAGE_SUFFIXES:
            try:
                tf.io.decode_image(tf.io.read_file(str(file)))
            except Exception:  # noqa: BLE001
                return file
    return None
