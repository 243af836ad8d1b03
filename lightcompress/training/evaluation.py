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
