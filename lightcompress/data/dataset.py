"""The ``Dataset`` interface: what every stage asks of a data set shaped for one model.

A data set has a ``train`` and a ``test`` split of (float32 images shaped like the model input,
int64 class indices). Two kinds implement it: ``memory.Prepared`` holds both splits as arrays,
``streams.Streamed`` reads them from their source batch by batch and never holds them whole.
Consumers use only the operations below and stay out of the arrays and the tf.data pipelines:

- ``count(split)``: how many examples;
- ``head(split, n)``: the first ``n``, in order (what a model's output kind is read off);
- ``sample(split, n, seed)``: a bounded sample, spread over the split, as arrays (calibration);
- ``arrays(split, limit)``: the split as arrays, bounded by ``limit`` when it is streamed;
- ``chunks(split, batch_size)``: the whole split in order, as few arrays as memory allows (one
  for an in-memory set, one per batch for a stream): evaluation and agreement;
- ``holdout(size, seed)``: (a held-out slice of the training split in memory, the set without
  it); the test split is never touched;
- ``reading()``: a context that turns errors of reading the source into one-line DataErrors.

``in_memory`` says which of the two training engines of ``training.finetune`` feeds it (arrays
sharded per device, or the stream's own tf.data batches); nothing else needs to know.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from typing import ClassVar, Iterator

import keras
import numpy as np

from ..errors import DataError
from ..validation import whole
from .synthetic import input_specs

SPLITS = ("train", "test")
HOLDOUT_SHARE = 5  # a held-out slice takes at most 1/5 of the training split


class Dataset(ABC):
    """A data set shaped for one model (see the module docstring).

    Implementations have the attributes ``name`` (str), ``changes`` (what was done to fit the
    model, in words) and ``num_classes`` (int, or None when a stream's source does not say).
    """

    in_memory: ClassVar[bool]

    @abstractmethod
    def count(self, split: str) -> int:
        """Examples in ``split``."""

    @abstractmethod
    def head(self, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of the first ``n`` examples of ``split``, in order."""

    @abstractmethod
    def sample(self, split: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of ``n`` examples of ``split`` spread over it, in split order (all of
        them when it has ``n`` or fewer)."""

    @abstractmethod
    def chunks(self, split: str, batch_size: int = 256) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every example of ``split`` once, in order, as (images, labels) arrays: as few as the
        set can hold at once (``batch_size`` examples each when read from a source)."""

    @abstractmethod
    def _holdout(self, size: int, seed: int) -> tuple["Dataset", "Dataset"]:
        """``holdout`` once ``size`` is checked and fits."""

    def holdout_size(self, size: int) -> int:
        """How many training examples ``holdout(size)`` holds out: at most a fifth of them."""
        whole("holdout", size, 1)
        return min(size, self.count("train") // HOLDOUT_SHARE)

    def holdout(self, size: int, seed: int = 0) -> tuple["Dataset", "Dataset"]:
        """(an in-memory set whose train and test splits are both a slice of at most ``size``
        training examples, at most a fifth of them; this set without that slice). The held-out
        slice is disjoint from the rest, and the test split is left as it is."""
        size = self.holdout_size(size)
        if size < 1:
            raise DataError(f"{self.name} has too few training images to hold any out.")
        return self._holdout(size, seed)

    def arrays(self, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of ``split``: all of an in-memory set's; of a stream, at most
        ``limit`` spread over it (all when ``limit`` is None)."""
        n = self.count(split)
        if limit is not None and not self.in_memory:
            n = min(n, limit)
        return self.sample(split, n)

    def reading(self):
        """A context in which errors of reading the source become one-line DataErrors."""
        return contextlib.nullcontext()


def single_io_shape(model):
    """(input shape without batch, number of output units) of a single-input, single-output model
    (a subclassed one: as it was built, its output from a symbolic call)."""
    inputs = input_specs(model)
    outputs = getattr(model, "outputs", None)
    if not outputs and len(inputs) == 1:
        try:
            outputs = keras.tree.flatten(model.compute_output_spec(inputs[0]))
        except Exception:  # noqa: BLE001 - a call() Keras cannot trace symbolically: one output unknown
            outputs = []
    if len(inputs) != 1 or len(outputs) != 1:
        raise DataError(
            f"model '{model.name}' has {len(inputs)} inputs and {len(outputs)} outputs; "
            f"training and evaluation support one image input and one class output."
        )
    return tuple(inputs[0].shape)[1:], outputs[0].shape[-1]
