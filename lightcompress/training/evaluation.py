"""Evaluation of a classifier on prepared data: a leaf module (nothing here imports training).

The loss follows the model's actual outputs (probabilities, logits, or one sigmoid unit).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np

from ..data.sets import Prepared
from ..data.streams import Streamed, reading


# -- loss that matches the model's output ----------------------------------------------------

def output_kind(model, x) -> str:
    """'probabilities', 'logits' or 'binary' (one unit), read off the model's outputs on ``x``."""
    y = np.asarray(model.predict(x[:64], verbose=0))
    if y.shape[-1] == 1:
        return "binary"
    is_distribution = np.all(y >= 0) and np.allclose(y.sum(axis=-1), 1.0, atol=1e-3)
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


def evaluate(model, data: Prepared | Streamed, kind: str | None = None, batch_size=256) -> Evaluation:
    """Top-1 accuracy (and top-5 above 10 classes) and mean cross-entropy on the test split."""
    if isinstance(data, Streamed):
        return _evaluate_stream(model, data, kind, batch_size)
    kind = kind or output_kind(model, data.x_test)
    start = time.perf_counter()
    predictions = model.predict(data.x_test, batch_size=batch_size, verbose=0)
    seconds = time.perf_counter() - start
    logp = log_probs(predictions, kind)
    y = data.y_test
    loss = float(-np.mean(logp[np.arange(len(y)), y]))
    accuracy = float(np.mean(np.argmax(logp, axis=1) == y))
    top5 = None
    if logp.shape[1] > 10:
        top = np.argsort(-logp, axis=1)[:, :5]
        top5 = float(np.mean(np.any(top == y[:, None], axis=1)))
    return Evaluation(accuracy, loss, int(len(y)), seconds, top5)


def _evaluate_stream(model, data: Streamed, kind, batch_size) -> Evaluation:
    """``evaluate`` batch by batch over a stream's test split: only running sums are kept."""
    n = correct = correct5 = 0
    total_loss = 0.0
    seconds = 0.0
    with reading(data):
        for x, y in data.batches("test", batch_size).as_numpy_iterator():
            kind = kind or output_kind(model, x)
            start = time.perf_counter()
            logp = log_probs(model.predict(x, batch_size=batch_size, verbose=0), kind)
            seconds += time.perf_counter() - start
            total_loss += float(-np.sum(logp[np.arange(len(y)), y]))
            correct += int(np.sum(np.argmax(logp, axis=1) == y))
            if logp.shape[1] > 10:
                correct5 += int(np.sum(np.any(np.argsort(-logp, axis=1)[:, :5] == y[:, None], axis=1)))
            top5 = logp.shape[1] > 10
            n += len(y)
    if n == 0:
        from ..errors import DataError

        raise DataError(f"data set '{data.name}' has no test images; give a data set with both splits.")
    return Evaluation(correct / n, total_loss / n, n, seconds, correct5 / n if top5 else None)


def agreement(model_a, model_b, x, batch_size=256) -> float:
    """Fraction of examples where two classifiers predict the same class."""
    a = np.argmax(model_a.predict(x, batch_size=batch_size, verbose=0), axis=-1)
    b = np.argmax(model_b.predict(x, batch_size=batch_size, verbose=0), axis=-1)
    return float(np.mean(a == b))


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

