"""Fine-tuning and evaluation of a (converted) classifier on prepared data.

Nothing here prints: progress goes through the callbacks the caller passes, results come back as
dataclasses. Works on the TensorFlow, JAX and PyTorch backends of Keras 3 (TensorFlow is imported
only when it is the backend) and on whatever device that backend sees, GPU first.
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass, field

import keras
import numpy as np

from .data import Prepared

DEFAULT_EPOCHS = 3
DEFAULT_BATCH_SIZE = 64
DEFAULT_LEARNING_RATE = 1e-3  # peak; cosine decay to 5%. Measured on fmnist_cnn_keras2 rank 8, 1 epoch: 3e-4 0.883, 1e-3 0.894
DEFAULT_VALIDATION_SPLIT = 0.1
DEFAULT_PATIENCE = 2


def device_name() -> str:
    """The device the current Keras backend computes on, in words (GPU first)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return f"GPU {details.get('device_name', gpus[0].name)} (tensorflow)"
    elif backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            return f"{device.platform.upper()} {device.device_kind} (jax)"
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return f"GPU {torch.cuda.get_device_name(0)} (torch)"
    return f"CPU {_cpu_model()}, {os.cpu_count()} cores ({backend})"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


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


def evaluate(model, data: Prepared, kind: str | None = None, batch_size=256) -> Evaluation:
    """Top-1 accuracy (and top-5 above 10 classes) and mean cross-entropy on the test split."""
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


def agreement(model_a, model_b, x, batch_size=256) -> float:
    """Fraction of examples where two classifiers predict the same class."""
    a = np.argmax(model_a.predict(x, batch_size=batch_size, verbose=0), axis=-1)
    b = np.argmax(model_b.predict(x, batch_size=batch_size, verbose=0), axis=-1)
    return float(np.mean(a == b))


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


def check_settings(s: FitSettings):
    from .errors import LightCompressError

    if s.epochs < 1:
        raise LightCompressError(f"epochs={s.epochs} is invalid; use 1 or more.")
    if s.batch_size < 1:
        raise LightCompressError(f"batch_size={s.batch_size} is invalid; use 1 or more.")
    if not s.learning_rate > 0:
        raise LightCompressError(f"learning_rate={s.learning_rate} is invalid; use a positive number, e.g. 3e-4.")
    if not 0 <= s.validation_split < 1:
        raise LightCompressError(
            f"validation_split={s.validation_split} is invalid; use a fraction in [0, 1), e.g. 0.1."
        )


@dataclass
class Teacher:
    """Distillation from ``model``: a mix of hard labels (weight ``alpha``) and its outputs
    softened at ``temperature``."""

    model: object
    alpha: float = 0.9  # distill.DEFAULT_ALPHA
    temperature: float = 2.0  # distill.DEFAULT_TEMPERATURE


def compile_for_training(model, kind, settings: FitSettings, steps, teacher: Teacher | None = None):
    from . import distill

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
    training cleanly: the best weights seen so far are restored and the result says
    ``interrupted=True``.
    """
    settings = settings or FitSettings()
    check_settings(settings)
    keras.utils.set_random_seed(settings.seed)
    kind = kind or output_kind(model, data.x_train)
    (x, y), (x_val, y_val) = _split(data, settings.validation_split, settings.seed)
    if teacher is not None:
        from . import distill

        if kind == "binary":
            from .errors import LightCompressError

            raise LightCompressError("distillation needs a multi-class output; this model has one unit.")
        teacher_kind = output_kind(teacher.model, x[:64])
        y = distill.pack(y, distill.soft_targets(teacher.model, x, teacher.temperature, teacher_kind))
        if len(x_val):
            y_val = distill.pack(y_val, distill.soft_targets(teacher.model, x_val, teacher.temperature,
                                                             teacher_kind))
    steps_per_epoch = math.ceil(len(x) / settings.batch_size)
    compile_for_training(model, kind, settings, steps_per_epoch * settings.epochs, teacher)
    has_val = len(x_val) > 0
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss" if has_val else "loss", patience=settings.patience,
        restore_best_weights=True,
    )
    log = _EpochLog()
    train = _pipeline(x, y, settings.batch_size, settings.seed, shuffle=True)
    val = _pipeline(x_val, y_val, settings.batch_size, settings.seed, shuffle=False) if has_val else None
    fit_args = dict(epochs=settings.epochs, verbose=0, callbacks=[stopper, log, *callbacks])
    if train is not None:
        fit_args.update(x=train, validation_data=val, shuffle=False)  # tf.data shuffles itself
    else:
        fit_args.update(x=x, y=y, batch_size=settings.batch_size, shuffle=True,
                        validation_data=(x_val, y_val) if has_val else None)
    interrupted = False
    try:
        model.fit(**fit_args)
    except KeyboardInterrupt:
        interrupted = True
        if stopper.best_weights is not None:
            model.set_weights(stopper.best_weights)
    history = {k: [float(v) for v in vs] for k, vs in model.history.history.items()} if model.history else {}
    best_epoch = getattr(stopper, "best_epoch", None)
    return FitResult(
        history=history,
        epochs_run=len(log.seconds),
        epoch_seconds=log.seconds,
        best_epoch=None if best_epoch is None or not log.seconds else int(best_epoch) + 1,
        interrupted=interrupted,
        device=device_name(),
        settings=settings,
        learning_rates=log.learning_rates,
    )
