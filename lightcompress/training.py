"""Fine-tuning of a (converted) classifier on prepared data, optionally distilled from a teacher.

Nothing here prints: progress goes through the callbacks the caller passes, results come back as
dataclasses. Works on the TensorFlow, JAX and PyTorch backends of Keras 3 (TensorFlow is imported
only when it is the backend) and on whatever device that backend sees, GPU first.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import keras
import numpy as np

from . import distill
from .data import Prepared
from .devices import device_name
from .checks import number
from .errors import LightCompressError
from .evaluation import loss_for, output_kind
from .streams import Streamed, first_images, reading

from .defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_LEARNING_RATE,
    DEFAULT_PATIENCE,
    DEFAULT_VALIDATION_SPLIT,
)


# -- fine-tuning ------------------------------------------------------------------------------

@dataclass
class FitSettings:
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = DEFAULT_LEARNING_RATE
    validation_split: float = DEFAULT_VALIDATION_SPLIT
    patience: int = DEFAULT_PATIENCE
    seed: int = 0


@dataclass
class FitResult:
    history: dict
    epochs_run: int
    epoch_seconds: list
    best_epoch: int | None
    interrupted: bool
    device: str
    settings: FitSettings
    learning_rates: list = field(default_factory=list)
    started_from_input: bool = False  # interrupted before any epoch completed: weights unchanged


class _EpochLog(keras.callbacks.Callback):
    """Wall time and learning rate of each epoch."""

    def __init__(self):
        super().__init__()
        self.seconds, self.learning_rates = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
        lr = self.model.optimizer.learning_rate
        self.learning_rates.append(float(keras.ops.convert_to_numpy(lr)))


def _split(data: Prepared, fraction, seed):
    order = np.random.default_rng(seed).permutation(len(data.x_train))
    n_val = int(round(len(order) * fraction)) if fraction else 0
    val, train = order[:n_val], order[n_val:]
    return (data.x_train[train], data.y_train[train]), (data.x_train[val], data.y_train[val])


def _pipeline(x, y, batch_size, seed, shuffle):
    """tf.data with shuffling and prefetch on TensorFlow; NumPy arrays (Keras batches them) elsewhere."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _in_memory(data: Prepared, settings, teacher):
    """(train, validation, steps per epoch, (x, y), (x_val, y_val)) of arrays: the tf.data pipelines
    are None off TensorFlow; with a teacher, the labels carry its soft targets."""
    (x, y), (x_val, y_val) = _split(data, settings.validation_split, settings.seed)
    if teacher is not None:
        teacher_kind = output_kind(teacher.model, x[:64])
        y = distill.pack(y, distill.soft_targets(teacher.model, x, teacher.temperature, teacher_kind))
        if len(x_val):
            y_val = distill.pack(y_val, distill.soft_targets(teacher.model, x_val, teacher.temperature,
                                                             teacher_kind))
    train = _pipeline(x, y, settings.batch_size, settings.seed, shuffle=True)
    val = _pipeline(x_val, y_val, settings.batch_size, settings.seed, shuffle=False) if len(x_val) else None
    return train, val, math.ceil(len(x) / settings.batch_size), (x, y), (x_val, y_val)


def check_settings(s: "FitSettings"):
    """Refuse settings that cannot train (or would train into NaN), before any work."""
    number("epochs", s.epochs, 1, whole_only=True, example="3")
    number("batch_size", s.batch_size, 1, whole_only=True, example="64")
    number("learning_rate", s.learning_rate, 0, 1, low_open=True, example="1e-3")
    number("validation_split", s.validation_split, 0, 0.9, example="0.1")
    number("patience", s.patience, 0, whole_only=True, example="2")
    number("seed", s.seed, 0, whole_only=True)


@dataclass
class Teacher:
    """Distillation from ``model``: a mix of hard labels (weight ``alpha``) and its outputs
    softened at ``temperature`` (see ``distill``)."""

    model: object
    alpha: float = distill.DEFAULT_ALPHA
    temperature: float = distill.DEFAULT_TEMPERATURE

    def __post_init__(self):
        number("alpha", self.alpha, 0, 1, example=str(distill.DEFAULT_ALPHA))
        number("temperature", self.temperature, 0.05, 100, example=str(distill.DEFAULT_TEMPERATURE))


def compile_for_training(model, kind, settings: FitSettings, steps, teacher: Teacher | None = None):
    schedule = keras.optimizers.schedules.CosineDecay(
        settings.learning_rate, decay_steps=max(1, steps), alpha=0.05
    )
    if teacher is None:
        loss, metrics = loss_for(kind), ["accuracy"]
    else:
        loss = distill.DistillationLoss(teacher.alpha, teacher.temperature, from_logits=kind == "logits")
        metrics = [keras.metrics.MeanMetricWrapper(distill.label_accuracy, name="accuracy")]
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=metrics)


def finetune(model, data: Prepared, settings: FitSettings | None = None, callbacks=(),
             kind: str | None = None, teacher: Teacher | None = None) -> FitResult:
    """Fine-tune ``model`` in place on ``data``; the best epoch's weights (by validation loss) win.

    With ``teacher``, the loss is knowledge distillation from it (see ``distill``). Ctrl-C stops
    training cleanly: the best weights of a completed epoch are restored (the starting weights if
    no epoch completed) and the result says ``interrupted=True``. Weights that are no longer finite
    after training are refused: the starting weights are put back and the error says so.
    """
    settings = settings or FitSettings()
    check_settings(settings)
    keras.utils.set_random_seed(settings.seed)
    kind = kind or output_kind(model, first_images(data))
    if teacher is not None and kind == "binary":
        raise LightCompressError("distillation needs a multi-class output; this model has one unit.")
    if isinstance(data, Streamed):  # batches read as they are needed, never the whole set
        targets = None if teacher is None else distill.stream_targets(
            teacher.model, output_kind(teacher.model, first_images(data)), teacher.temperature)
        train, val, steps_per_epoch = data.fit_data(settings.batch_size, settings.validation_split,
                                                    settings.seed, targets)
        x_val = y_val = ()
    else:
        train, val, steps_per_epoch, (x, y), (x_val, y_val) = _in_memory(data, settings, teacher)
    compile_for_training(model, kind, settings, steps_per_epoch * settings.epochs, teacher)
    has_val = len(x_val) > 0 or val is not None
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss" if has_val else "loss", patience=settings.patience,
        restore_best_weights=True,
    )
    log = _EpochLog()
    fit_args = dict(epochs=settings.epochs, verbose=0, callbacks=[stopper, log, *callbacks])
    if train is not None:
        fit_args.update(x=train, validation_data=val, shuffle=False)  # tf.data shuffles itself
    else:
        fit_args.update(x=x, y=y, batch_size=settings.batch_size, shuffle=True,
                        validation_data=(x_val, y_val) if has_val else None)
    start_weights = model.get_weights()
    interrupted = False
    try:
        with reading(data):
            model.fit(**fit_args)
    except KeyboardInterrupt:
        interrupted = True
        model.set_weights(stopper.best_weights if stopper.best_weights is not None and log.seconds
                          else start_weights)
    bad = next((w.name for w in model.weights if not np.all(np.isfinite(keras.ops.convert_to_numpy(w)))), None)
    if bad is not None:
        model.set_weights(start_weights)
        raise LightCompressError(
            f"training made weight '{bad}' non-finite (NaN or inf), so nothing is kept; lower the "
            f"learning rate, check the data for NaN/inf values, or raise the distillation temperature.")
    history = {k: [float(v) for v in vs] for k, vs in model.history.history.items()} if model.history else {}
    best_epoch = getattr(stopper, "best_epoch", None)
    return FitResult(
        history=history,
        epochs_run=len(log.seconds),
        epoch_seconds=log.seconds,
        best_epoch=None if best_epoch is None or not log.seconds else int(best_epoch) + 1,
        started_from_input=interrupted and not log.seconds,
        interrupted=interrupted,
        device=device_name(),
        settings=settings,
        learning_rates=log.learning_rates,
    )
