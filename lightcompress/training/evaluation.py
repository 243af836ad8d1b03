"""Evaluation of a classifier on a data set's test split: a leaf module (nothing here imports training).

``evaluate`` (accuracy, loss), ``agreement`` (top-1 agreement of two classifiers) and
``divergence`` (KL divergence of one classifier's outputs from another's) read any
``data.Dataset`` through its ``chunks``: an in-memory set in one piece, a stream batch by batch.
The loss follows the model's actual outputs (probabilities, logits, or one sigmoid unit).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np

from ..data.dataset import Dataset
from ..errors import DataError


# -- loss that matches the model's output ----------------------------------------------------

def output_kind(model, x) -> str:
    """'probabilities', 'logits' or 'binary' (one unit), read off the model's outputs on ``x``."""
    y = np.asarray(model.predict(x[:64], verbose=0))
    if y.shape[-1] == 1:
        return "binary"
    # 0.05: an int8 model's softmax is quantised in steps of 1/256 and its rows sum to 1 only
    # within about classes/512; read as logits, its loss came out 1.6 against 0.3 in float.
    is_distribution = np.all(y >= 0) and np.all(y <= 1 + 1e-3) and np.allclose(y.sum(axis=-1), 1.0, atol=0.05)
    return "probabilities" if is_distribution else "logits"


def loss_for(kind: str):
    if kind == "binary":
        return keras.losses.BinaryCrossentropy()
    return keras.losses.SparseCategoricalCrossentropy(from_logits=kind == "logits")


# -- evaluation -------------------------------------------------------------------------------

@dataclass
class Evaluation:
    accuracy: float
    loss: float
    examples: int
    seconds: float
    top5_accuracy: float | None = None


def log_probs(y, kind):
    """Log-probabilities (float64) of a model's outputs of the given kind (see ``output_kind``)."""
    y = np.asarray(y, np.float64)
    if kind == "binary":
        p = np.clip(y[:, 0], 1e-7, 1 - 1e-7)
        return np.log(np.stack([1 - p, p], axis=1))
    if kind == "logits":
        shifted = y - y.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return np.log(np.clip(y, 1e-7, 1.0))


def evaluate(model, data: Dataset, kind: str | None = None, batch_size=256) -> Evaluation:
    """Top-1 accuracy (and top-5 above 10 classes) and mean cross-entropy on the test split of
    ``data``, chunk by chunk (see ``Dataset.chunks``): only running sums are kept."""
    n = correct = correct5 = 0
    total_loss = 0.0
    seconds = 0.0
    top5 = False
    with data.reading():
        for x, y in data.chunks("test", batch_size):
            kind = kind or output_kind(model, x)
            start = time.perf_counter()
            logp = log_probs(model.predict(x, batch_size=batch_size, verbose=0), kind)
            seconds += time.perf_counter() - start
            total_loss += float(-np.sum(logp[np.arange(len(y)), y]))
            correct += int(np.sum(np.argmax(logp, axis=1) == y))
            top5 = logp.shape[1] > 10
            if top5:
                correct5 += int(np.sum(np.any(np.argsort(-logp, axis=1)[:, :5] == y[:, None], axis=1)))
            n += len(y)
    if n == 0:
        raise DataError(f"data set '{data.name}' has no test images; give a data set with both splits.")
    return Evaluation(correct / n, total_loss / n, n, seconds, correct5 / n if top5 else None)


def agreement(model_a, model_b, data: Dataset, batch_size=256) -> float:
    """Fraction of the test examples of ``data`` where two classifiers (Keras models or exported
    artefacts, anything with ``predict``) pick the same class."""
    same = total = 0
    with data.reading():
        for x, _ in data.chunks("test", batch_size):
            a = np.argmax(model_a.predict(x, batch_size=batch_size, verbose=0), axis=-1)
            b = np.argmax(model_b.predict(x, batch_size=batch_size, verbose=0), axis=-1)
            same += int(np.sum(a == b))
            total += len(x)
    if total == 0:
        raise DataError(f"data set '{data.name}' has no test images; give a data set with both splits.")
    return same / total


def divergence(reference, model, data: Dataset, kind: str | None = None, batch_size=256) -> float:
    """Mean KL divergence KL(reference ‖ model) of two classifiers' class distributions on the test
    split of ``data`` (nats per example): how far ``model`` is from reproducing ``reference``,
    without the label noise of a loss. Both are read as ``kind`` (see ``output_kind``).

    A model diverges from itself by nothing:

    >>> import keras
    >>> from lightcompress.data.memory import Prepared
    >>> net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="softmax")])
    >>> x = np.eye(3, dtype="float32")
    >>> divergence(net, net, Prepared("eye", x, np.zeros(3, int), x, np.zeros(3, int), 4))
    0.0
    """
    total, n = 0.0, 0
    with data.reading():
        for x, _ in data.chunks("test", batch_size):
            kind = kind or output_kind(reference, x)
            p = log_probs(reference.predict(x, batch_size=batch_size, verbose=0), kind)
            q = log_probs(model.predict(x, batch_size=batch_size, verbose=0), kind)
            total += float(np.sum(np.exp(p) * (p - q)))
            n += len(x)
    if n == 0:
        raise DataError(f"data set '{data.name}' has no test images; give a data set with both splits.")
    return max(total / n, 0.0)


@dataclass
class OutputDifference:
    """How far a converted model's outputs are from the original's on the same inputs.

    ``agreement`` (classification outputs) comes first in every report: a small relative
    difference of probabilities says little when the predicted classes changed."""

    relative: float  # ||y - y'|| / ||y|| over all outputs
    max_abs: float
    agreement: float | None  # fraction of examples with the same argmax (classification outputs)
    examples: int
    source: str
    changed: int | None = None  # examples whose top-1 class changed


def output_difference(original, converted, x, source="random inputs") -> OutputDifference:
    ys = _as_list(original.predict(x, verbose=0, batch_size=256))
    ys2 = _as_list(converted.predict(x, verbose=0, batch_size=256))
    diff = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(ys, ys2)))
    norm = np.sqrt(sum(np.sum(a**2) for a in ys))
    agreement = changed = None
    if ys[0].ndim == 2 and ys[0].shape[1] > 1:
        same = np.argmax(ys[0], 1) == np.argmax(ys2[0], 1)
        agreement, changed = float(np.mean(same)), int(np.sum(~same))
    return OutputDifference(
        relative=float(diff / norm) if norm > 0 else float(diff),
        max_abs=float(max(np.max(np.abs(a - b)) for a, b in zip(ys, ys2))),
        agreement=agreement,
        examples=int(len(ys[0])),
        source=source,
        changed=changed,
    )


def _as_list(y):
    return [np.asarray(a) for a in y] if isinstance(y, (list, tuple)) else [np.asarray(y)]

