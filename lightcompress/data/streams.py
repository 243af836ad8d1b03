"""Streamed data: image folders, TFRecord files and a Python function, read batch by batch.

Sources (the data set spec, as for ``data.load_dataset``), none read whole into memory:

- a **folder of images**, one sub-folder per class (``train/`` and ``test/`` inside it are used
  when present, else the same fixed 20% the in-memory path holds out): listed with
  ``keras.utils.image_dataset_from_directory`` (file names only), decoded and resized to the
  model's input as Keras does, batch by batch;
- **TFRecord** files (``data.tfrecord``, ``*.tfrecords``, or a glob such as ``shards/*.tfrecord``)
  of ``tf.train.Example`` records holding an encoded image (PNG, JPEG, BMP or GIF bytes) under the
  feature ``image`` and an int64 class index under ``label`` (other names: ``npz_keys=img,cls``).
  Files whose name contains ``test`` are the test split; when none does, every 5th record is;
- ``module:function`` or ``path/to/file.py:function``: the function returns a ``tf.data.Dataset``
  or a ``keras.utils.PyDataset`` yielding ``(images, labels)`` *batches*, as ``model.fit`` takes
  them. A function with a ``split`` parameter is called as ``function(split="train")`` and
  ``function(split="test")``; one without it returns a ``(train, test)`` pair.

Every batch gets the checks and changes ``data.prepare`` makes for arrays: uint8 pixels scaled to
[0, 1] (or ``scale``), a channel axis added or dropped, flattening, resizing (``resize=True``),
one-hot labels turned into class indices, labels checked against the model's outputs. What can be
checked on the first example is checked before any training; a later example that breaks the
rules stops the run with a DataError naming it. A module:function source, whose length is not
known, is read at most ``defaults.MAX_STREAM_EXAMPLES`` examples per split unless
``train_limit``/``test_limit`` say how many to use: one that never ends stops with an error naming
the limit (one that says it repeats forever is refused when opened).

``Streamed`` is the streamed kind of ``dataset.Dataset``; ``open.open_for_model`` opens a spec as
one (``open_stream`` here builds it). Training keeps a validation slice of the training stream (a fixed, evenly spread ``fraction`` of
its examples in source order), shuffles the rest in a bounded buffer (the whole list of file
names for folders), and never materialises the set. Consumers that need arrays (calibration,
the sensitivity slice, a conversion check) take a bounded number of examples (``sample``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from .. import defaults
from .._deferred import deferred
from ..errors import DataError
from .dataset import Dataset, single_io_shape
from .memory import Prepared
from .sources import (Source, first_line, folder_source, function_source, is_function_spec, is_tfrecord_spec,
                      tfrecord_source, unreadable_image)

tf = deferred("tensorflow")

_MARK = "lightcompress-data:"  # prefix of the messages of our own runtime checks


# -- the stream of one data set, shaped for one model -------------------------------------------

def _shaper(shape, target, resize, changes):
    """(function shaping one example of ``shape`` for the model input ``target``) — the rules of
    ``data.prepare``, on one example."""
    shape = tuple(shape)
    if shape == target:
        return lambda x: x
    if len(target) == 1 and None not in shape and int(np.prod(shape)) == target[0]:
        changes.append(f"flattened images {shape} to {target}")
        return lambda x: tf.reshape(x, (-1,))
    if len(target) == 3:
        height, width, channels = target
        steps = []
        if len(shape) == 2:
            steps.append(lambda x: x[..., None])
            shape = (*shape, 1)
            if channels == 1:
                changes.append("added a channel axis")
        if len(shape) != 3:
            raise DataError(f"train images have shape {shape}; the model takes {target}.")
        if shape[2] != channels:
            raise DataError(f"train images have {shape[2]} channel(s) but the model takes {channels}; "
                            f"use a data set with {channels}-channel images.")
        if (height, width) != shape[:2] and None not in (height, width):
            if not resize:
                raise DataError(f"the images are {shape[0]}x{shape[1]} but the model takes {height}x{width}; "
                                f"pass resize=True to resize them.")
            changes.append(f"resized images {shape[0]}x{shape[1]} to {height}x{width}")
            steps.append(lambda x: tf.image.resize(tf.cast(x, tf.float32), (height, width)))

        def run(x):
            for step in steps:
                x = step(x)
            return x
        return run
    if len(target) == 2 and len(shape) == 3 and shape[2] == 1 and shape[:2] == target:
        changes.append("dropped the channel axis")
        return lambda x: x[..., 0]
    raise DataError(f"train images have shape {shape}; the model takes {target}.")


@dataclass
class Streamed(Dataset):
    """A data set read in batches, shaped for one model (see the module docstring).

    Besides the ``Dataset`` operations: ``batches(split, batch_size)`` gives the tf.data pipeline
    of (float32 images, int64 labels) batches of the ``train`` or ``test`` split, ``fit_data``
    the training and validation batches for ``model.fit``, ``materialise()`` the whole set as a
    ``Prepared``.
    """

    name: str
    source: Source
    target: tuple
    capacity: int  # most classes the model's output can tell apart
    scale: float
    resize: bool
    num_classes: int | None = None  # known from the source (a folder's sub-folders), else None
    changes: list = field(default_factory=list)
    limits: dict = field(default_factory=dict)  # {split: first N examples}
    select: dict = field(default_factory=dict)  # {split: [(num, den, keep_picked), ...]} applied in order
    _shape: object = None
    _first: object = None  # the first example's shape, which every later one must have (no resize)
    _one_hot: bool = False
    _counts: dict = field(default_factory=dict)

    in_memory: ClassVar[bool] = False

    # -- building the tf.data pipeline --
    def _bounded(self, split):
        """The items of ``split``: its first ``limits[split]``, or, when the source does not say how
        many it holds, at most ``defaults.MAX_STREAM_EXAMPLES`` (one more stops the read with an
        error naming the limit: a source that never ends must not hang a command)."""
        ds = self.source.items[split]()
        if self.limits.get(split):
            return ds.take(self.limits[split])
        if self.source.counts.get(split) is None:
            ds = _at_most(ds, defaults.MAX_STREAM_EXAMPLES,
                          f"{_MARK} {self.name}: the {split} split holds more than "
                          f"{defaults.MAX_STREAM_EXAMPLES:,} examples, or never ends; pass {split}_limit=N to "
                          f"read only its first N examples.")
        return ds

    def _items(self, split):
        ds = self._bounded(split)
        for num, den, keep in self.select.get(split, ()):
            ds = _spread(ds, num, den, keep)
        return ds

    def _example(self, *item):
        x, y = self.source.decode(*item)
        if self._first is not None:
            x = tf.ensure_shape(x, self._first)
        return self._shape(x), y

    def _batch(self, x, y):
        raw = tf.cast(x, tf.float32)
        x = raw * tf.constant(np.float32(self.scale))
        y = tf.argmax(y, axis=-1) if self._one_hot else tf.reshape(y, (-1,))
        y = tf.cast(y, tf.int64)
        checks = [
            tf.debugging.assert_non_negative(y, message=f"{_MARK} {self.name}: a label is negative; class indices "
                                                        f"start at 0."),
            tf.debugging.assert_less(y, tf.constant(self.capacity, tf.int64),
                                     message=f"{_MARK} {self.name}: a label is {self.capacity} or more but the model "
                                             f"has a {self.capacity}-way output; use a data set with at most "
                                             f"{self.capacity} classes."),
            tf.debugging.assert_all_finite(raw, f"{_MARK} {self.name}: an image holds NaN or inf values; clean the "
                                                f"data first."),
            tf.debugging.assert_all_finite(x, f"{_MARK} scale={self.scale:g} makes pixels of {self.name} overflow "
                                              f"float32 (largest {np.finfo(np.float32).max:.4g}); use a smaller "
                                              f"scale."),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(x), tf.identity(y)

    def batches(self, split="test", batch_size=256, *, shuffle=False, seed=0, select=()):
        """(float32 images, int64 labels) batches of ``split``; ``select``: more (num, den, keep)
        selections (see ``_spread``) applied after the stream's own."""
        ds = self._items(split)
        for num, den, keep in select:
            ds = _spread(ds, num, den, keep)
        if shuffle:
            ds = ds.shuffle(self.source.buffer, seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(self._example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
        return ds.batch(batch_size).map(self._batch).prefetch(tf.data.AUTOTUNE)

    # -- sizes and samples --
    def count(self, split) -> int:
        """Examples in ``split`` (counted by reading the source once when it does not say)."""
        if split not in self._counts:
            n = self.source.counts.get(split)
            if n is None:
                with reading(self):
                    n = int(self._bounded(split).reduce(np.int64(0), lambda c, *_: c + 1))
            elif self.limits.get(split):
                n = min(n, self.limits[split])
            for num, den, keep in self.select.get(split, ()):
                picked = n * num // den
                n = picked if keep else n - picked
            self._counts[split] = n
        return self._counts[split]

    def sample(self, split, n, seed=0, batch_size=256):
        """(images, labels) arrays of ``n`` examples of ``split`` spread evenly over it (all when it
        has fewer): the bounded in-memory sample for calibration, held-out slices and checks.
        The positions are fixed by ``n`` and the split's size; ``seed`` is not used."""
        total = self.count(split)
        select = [(n, total, True)] if 0 < n < total else []
        xs, ys = [], []
        with self.reading():
            for x, y in self.batches(split, batch_size, select=select).as_numpy_iterator():
                xs.append(x)
                ys.append(y)
        if not xs:
            raise DataError(f"data set '{self.name}' has no {split} images; give a data set with both splits.")
        return np.concatenate(xs)[:n], np.concatenate(ys)[:n]

    def head(self, split, n):
        """The first ``n`` examples of ``split`` (one batch read)."""
        with self.reading():
            for x, y in self.batches(split, n).take(1).as_numpy_iterator():
                return x, y
        raise DataError(f"data set '{self.name}' has no {split} images; give a data set with both splits.")

    def chunks(self, split, batch_size=256):
        """``split`` batch by batch, as (images, labels) arrays; only one batch is held at a time."""
        with self.reading():
            yield from self.batches(split, batch_size).as_numpy_iterator()

    def reading(self):
        return reading(self)

    def materialise(self) -> Prepared:
        """The whole set in memory (for the consumers that need arrays)."""
        x_train, y_train = self.sample("train", self.count("train"))
        x_test, y_test = self.sample("test", self.count("test"))
        classes = self.num_classes or int(max(y_train.max(initial=0), y_test.max(initial=0)) + 1)
        return Prepared(self.name, x_train, y_train, x_test, y_test, classes, list(self.changes))

    def _holdout(self, size, seed):
        """(a Prepared of ``size`` training examples spread over the stream, the stream without them);
        the positions are fixed, so ``seed`` is not used."""
        total = self.count("train")
        x, y = self.sample("train", size)
        judge = Prepared(f"{self.name} (held-out train slice)", x, y, x, y, self.num_classes or self.capacity)
        rest = replace(self, select={**self.select, "train": [*self.select.get("train", ()), (size, total, False)]},
                       _counts={})
        return judge, rest

    def fit_data(self, batch_size, validation_split, seed, targets=None):
        """(train batches, validation batches or None, steps per epoch) for ``model.fit``: the
        validation slice is a fixed spread ``validation_split`` of the training stream.
        ``targets(x, y)``: replaces the labels of each batch (distillation)."""
        total = self.count("train")
        n_val = int(np.floor(total * validation_split)) if validation_split else 0
        train = self.batches("train", batch_size, shuffle=True, seed=seed,
                             select=[(n_val, total, False)] if n_val else [])
        val = self.batches("train", batch_size, select=[(n_val, total, True)]) if n_val else None
        if targets is not None:
            train = train.map(targets)
            val = None if val is None else val.map(targets)

        steps = -(-(total - n_val) // batch_size)
        train = train.apply(tf.data.experimental.assert_cardinality(steps))  # Keras then knows an epoch's length
        if val is not None:
            val = val.apply(tf.data.experimental.assert_cardinality(-(-n_val // batch_size)))
        return train, val, max(1, steps)


def _at_most(ds, most, message):
    """``ds`` unchanged, stopping with ``message`` (an InvalidArgumentError) at its ``most + 1``-th element."""
    limit = tf.constant(int(most), tf.int64)

    def check(i, *element):
        with tf.control_dependencies([tf.debugging.assert_less(i, limit, message=message)]):
            return tf.nest.map_structure(tf.identity, element[0] if len(element) == 1 else element)

    return ds.enumerate().map(check)


def _spread(ds, num, den, keep):
    """``num`` of every ``den`` elements at evenly spread positions (i where
    (i+1)·num // den > i·num // den), or, with ``keep=False``, all the others. Fixed by position,
    so the same in every pass; exactly ``num`` of the first ``den``."""
    num, den = tf.constant(int(num), tf.int64), tf.constant(int(den), tf.int64)

    def picked(i, *_):
        return tf.equal((i + 1) * num // den > i * num // den, keep)

    return ds.enumerate().filter(picked).map(lambda i, e: e)


@contextlib.contextmanager
def reading(data: Streamed):
    """Turn TensorFlow's errors while reading ``data`` into one-line DataErrors."""
    try:
        yield
    except tf.errors.OpError as err:
        raise DataError(_explain(data, err)) from None


def _explain(data, err) -> str:
    text = getattr(err, "message", "") or str(err)
    if _MARK in text:
        return text.split(_MARK, 1)[1].strip().splitlines()[0].split("]", 1)[0].split(" : Tensor had ")[0].strip()
    lowered = text.lower()
    if "incompatible with the layer" in lowered or "shape of tensor" in lowered or "ensure_shape" in lowered:
        return (f"{data.name}: an image has another shape than the first ({first_line(err)}); make every "
                f"image the same size, or pass resize=True.")
    if any(w in lowered for w in ("decode", "image", "empty", "png", "jpeg", "format")):
        where = unreadable_image(data.source.origin) if data.source.origin else None
        return (f"{where or data.name}: an image could not be decoded ({first_line(err)}); remove or replace "
                f"that file.")
    return f"{data.name}: the data could not be read ({type(err).__name__}: {first_line(err)})."


# -- opening a source as a stream for a model -----------------------------------------------------

def open_stream(model, spec) -> Streamed:
    """``spec`` (a ``sets.DataSpec`` naming a folder, TFRecord files or module:function) as a
    Streamed shaped for ``model``."""
    target, units = single_io_shape(model)
    source_spec = str(spec.source)
    path = Path(source_spec)
    if path.is_dir():
        source = folder_source(path, target, spec.seed)
        name = path.name
    elif is_tfrecord_spec(source_spec):
        source = tfrecord_source(source_spec, spec.npz_keys, target)
        name = path.name
    elif is_function_spec(source_spec):
        source = function_source(source_spec)
        name = source_spec
    else:
        raise DataError(f"'{source_spec}' is not a folder, a TFRecord file or module:function.")
    _refuse_endless(source, name, {"train": spec.train_limit, "test": spec.test_limit})
    capacity = units if units > 1 else 2
    if source.classes is not None and source.classes > capacity:
        raise DataError(f"data set '{name}' has {source.classes} classes but the model has a {units}-way output; "
                        f"use a data set with at most {capacity} classes.")
    stream = Streamed(name, source, tuple(target), capacity, 1.0, spec.resize, source.classes,
                      limits={"train": spec.train_limit, "test": spec.test_limit})
    return _inspect_first(stream, spec.scale)


def _refuse_endless(source, name, limits):
    """A split that says it never ends (``dataset.repeat()``) needs a limit: refused before any read."""
    for split, make in source.items.items():
        if not limits.get(split) and source.counts.get(split) is None:
            if int(tf.data.experimental.cardinality(make())) == int(tf.data.experimental.INFINITE_CARDINALITY):
                raise DataError(f"data set '{name}': the {split} split never ends (it repeats forever); pass "
                                f"{split}_limit=N to read only its first N examples, or drop the repeat().")


def _inspect_first(stream: Streamed, scale) -> Streamed:
    """Check the first example of each split against the model and fix the per-example shaping."""
    changes = []
    for split in ("train", "test"):
        try:
            first = next(iter(stream._items(split).take(1)), None)
            if first is None:
                raise DataError(f"data set '{stream.name}' has no {split} images; give a data set with both splits.")
            x, y = stream.source.decode(*(first if isinstance(first, tuple) else (first,)))
        except tf.errors.OpError as err:
            raise DataError(_explain(stream, err)) from None
        _check_label(stream, y, split)
        if split == "train":
            stream._shape = _shaper(tuple(x.shape), stream.target, stream.resize, changes)
            resized = stream.resize and len(stream.target) == 3
            stream._first = None if stream.source.fixed_shape or resized else tf.TensorShape(x.shape)
            stream._one_hot = len(y.shape) >= 1 and y.shape[-1] > 1
            if stream._one_hot:
                changes.append("one-hot labels turned into class indices")
            if scale is None:
                stream.scale = 1 / 255 if x.dtype == tf.uint8 else 1.0
                if stream.scale != 1.0:
                    changes.append("scaled uint8 pixels to [0, 1]")
            else:
                stream.scale = float(scale)
                if scale != 1.0:
                    changes.append(f"multiplied pixels by {scale:g}")
        elif stream._first is not None and tuple(x.shape) != tuple(stream._first):
            raise DataError(f"data set '{stream.name}': test images have shape {tuple(x.shape)} but train images "
                            f"{tuple(stream._first)}; make them the same size, or pass resize=True.")
    stream.changes = sorted(set(changes), key=changes.index)
    return stream


def _check_label(stream, y, split):
    """The first label of ``split`` fits the model's output (later ones are checked per batch)."""
    y = np.asarray(y)
    if y.ndim >= 1 and y.shape[-1] > 1:
        if y.shape[-1] > stream.capacity:
            raise DataError(f"data set '{stream.name}' has one-hot {split} labels of {y.shape[-1]} classes but the "
                            f"model has a {stream.capacity}-way output; use a data set with at most "
                            f"{stream.capacity} classes.")
        return
    value = y.reshape(-1)[0] if y.size else 0
    if not np.issubdtype(y.dtype, np.integer) and value != np.floor(value):
        raise DataError(f"{split} labels are not class indices (found {value}); classification only.")
    if value < 0 or value >= stream.capacity:
        raise DataError(f"data set '{stream.name}' has {split} label {value} but the model has a "
                        f"{stream.capacity}-way output; use a data set with at most {stream.capacity} classes.")
