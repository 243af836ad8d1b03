"""``Prepared``: a data set held in memory as arrays, the in-memory kind of ``dataset.Dataset``.

``sets.prepare`` makes one from raw arrays, ``streams.Streamed.materialise`` from a stream; a
held-out slice of either is one too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .dataset import Dataset


@dataclass
class Prepared(Dataset):
    """Arrays ready for ``model.fit``: float32 images shaped like the model input, int labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    changes: list[str] = field(default_factory=list)

    in_memory: ClassVar[bool] = True

    def _split(self, split):
        if split == "train":
            return self.x_train, self.y_train
        if split == "test":
            return self.x_test, self.y_test
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")

    def count(self, split) -> int:
        return int(len(self._split(split)[0]))

    def head(self, split, n):
        x, y = self._split(split)
        return x[:n], y[:n]

    def sample(self, split, n, seed=0):
        """``n`` examples drawn at random (from ``seed``), kept in split order; the arrays
        themselves when ``n`` covers the split."""
        x, y = self._split(split)
        if n >= len(x):
            return x, y
        chosen = np.sort(np.random.default_rng(seed).permutation(len(x))[:n])
        return x[chosen], y[chosen]

    def chunks(self, split, batch_size=256):
        """The whole split as one (images, labels) pair (none when it is empty)."""
        x, y = self._split(split)
        if len(x):
            yield x, y

    def _holdout(self, size, seed):
        order = np.random.default_rng(seed + 1).permutation(len(self.x_train))  # seed + 1: apart from the validation split's draw
        held, rest = order[:size], order[size:]
        judge = Prepared(f"{self.name} (held-out train slice)", self.x_train[held], self.y_train[held],
                         self.x_train[held], self.y_train[held], self.num_classes)
        train = Prepared(self.name, self.x_train[rest], self.y_train[rest], self.x_test, self.y_test,
                         self.num_classes, self.changes)
        return judge, train
