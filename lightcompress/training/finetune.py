"""Fine-tuning of a (converted) classifier on a data set, optionally distilled from a teacher.

Two engines feed ``model.fit``: an in-memory set (``Dataset.in_memory``) is split, shuffled in a
drawn order per epoch and sharded over devices here, with a teacher's targets computed once; a
streamed set gives its own tf.data batches (``streams.Streamed.fit_data``), a teacher's targets
computed batch by batch.

Nothing here prints: progress goes through the callbacks the caller passes, results come back as
dataclasses. Works on the TensorFlow, JAX and PyTorch backends of Keras 3 (TensorFlow is imported
only when it is the backend) and on whatever devices that backend sees, GPU first: several devices
train data-parallel through the backend's own engine (see ``distribute``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import keras
import numpy as np

from .. import _interrupts
from .._deferred import deferred
from .._keras_private import set_random_seed
from ..data.dataset import Dataset
from ..defaults import (DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_LEARNING_RATE, DEFAULT_PATIENCE,
                        DEFAULT_VALIDATION_SPLIT)
from ..errors import LightCompressError
from ..validation import SEED_MAX, number
from . import distill, distribute
from .devices import device_name
from .evaluation import loss_for, output_kind

tf = deferred("tensorflow")


# -- fine-tuning ------------------------------------------------------------------------------

@dataclass(frozen=True)
class FitSettings:
    """How to fine-tune; checked once, when made (settings that cannot train, or would train into
    NaN, are refused before any work), then trusted by every stage."""

    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = DEFAULT_LEARNING_RATE
    validation_split: float = DEFAULT_VALIDATION_SPLIT
    patience: int = DEFAULT_PATIENCE
    seed: int = 0
    devices: int | str = "all"  # "all" visible accelerators, or a number of devices (see ``distribute``)

    def __post_init__(self):
        number("epochs", self.epochs, 1, whole_only=True, example="3")
        number("batch_size", self.batch_size, 1, whole_only=True, example="64")
        number("learning_rate", self.learning_rate, 0, 1, low_open=True, example="1e-3")
        number("validation_split", self.validation_split, 0, 0.9, example="0.1")
        number("patience", self.patience, 0, whole_only=True, example="2")
        number("seed", self.seed, 0, SEED_MAX, whole_only=True)
        object.__setattr__(self, "devices", distribute.check_devices(self.devices))


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
    engine: str = "keras"  # what spread training over the devices (see ``distribute.Placement``)
    devices: int = 1  # replicas in all


class _StopOnSignal(keras.callbacks.Callback):
    """Raises KeyboardInterrupt at the next batch when a signal arrived but was swallowed (e.g. by a
    library busy when it came): the interrupt path below then keeps the best epoch."""

    def on_train_batch_end(self, batch, logs=None):
        if _interrupts.pending():
            raise KeyboardInterrupt


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


def _split(data: Dataset, fraction, seed):
    """((x, y) to train on, (x, y) to validate on): the training split of an in-memory set,
    ``fraction`` of it drawn (from ``seed``) for validation."""
    x_all, y_all = data.arrays("train")
    order = np.random.default_rng(seed).permutation(len(x_all))
    n_val = int(round(len(order) * fraction)) if fraction else 0
    val, train = order[:n_val], order[n_val:]
    return (x_all[train], y_all[train]), (x_all[val], y_all[val])


def _orders(n, seed, epochs):
    """The order of the training images in each epoch, drawn from ``seed`` up front: one seed
    gives one loss curve on any number of devices and with any engine."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(n).astype("int32") for _ in range(epochs)]


class _Batches(keras.utils.PyDataset):
    """Batches of (x, y), in each epoch's order when shuffled (the backends but TensorFlow).
    With ``multiple``, each batch keeps a multiple of it (JAX shards every batch evenly over the
    devices: a final partial batch loses fewer images than there are devices). With ``part``
    (index, count), this process's contiguous share of each batch (several hosts on JAX)."""

    def __init__(self, x, y, batch_size, seed, shuffle, epochs=1, multiple=1, part=(0, 1)):
        super().__init__()
        self.x, self.y, self.batch_size, self.multiple, self.part = x, y, batch_size, multiple, part
        self.orders = _orders(len(x), seed, epochs) if shuffle else [np.arange(len(x))]
        self.epoch = 0

    def __len__(self):
        full, rest = divmod(len(self.x), self.batch_size)
        return full + (rest >= self.multiple)

    def __getitem__(self, i):
        index = self.orders[min(self.epoch, len(self.orders) - 1)][i * self.batch_size:(i + 1) * self.batch_size]
        index = index[:len(index) // self.multiple * self.multiple]
        share = len(index) // self.part[1]
        index = index[self.part[0] * share:(self.part[0] + 1) * share]
        return self.x[index], self.y[index]

    def on_epoch_end(self):
        self.epoch += 1


def _pipeline(x, y, batch_size, seed, shuffle, epochs=1, multiple=1, part=(0, 1)):
    """tf.data with prefetch on TensorFlow, ``_Batches`` elsewhere. Shuffled, each epoch comes in
    its order from ``_orders`` (tf.data's own reshuffling draws another order once a tf.distribute
    strategy copies the pipeline); the TensorFlow pipeline holds all ``epochs``, so fit it with
    ``steps_per_epoch``."""
    if keras.backend.backend() != "tensorflow":
        return _Batches(x, y, batch_size, seed, shuffle, epochs, multiple, part)

    if shuffle:
        xs, ys = tf.constant(x), tf.constant(y)
        ds = (tf.data.Dataset.from_tensor_slices(np.stack(_orders(len(x), seed, epochs)))
              .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
              .map(lambda i: (tf.gather(xs, i), tf.gather(ys, i)), num_parallel_calls=tf.data.AUTOTUNE,
                   deterministic=True))
    else:
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    options = tf.data.Options()  # in-memory data: several workers each keep every n-th batch
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _in_memory(data: Dataset, settings, teacher, where):
    """(fit arguments, global steps per epoch) for arrays: this process's share of the training
    and validation images in each epoch's order; with a teacher, the labels carry its soft targets."""
    (x, y), (x_val, y_val) = _split(data, settings.validation_split, settings.seed)
    if teacher is not None:
        teacher_kind = output_kind(teacher.model, x[:64])
        y = distill.pack(y, distill.soft_targets(teacher.model, x, teacher.temperature, teacher_kind))
        if len(x_val):
            y_val = distill.pack(y_val, distill.soft_targets(teacher.model, x_val, teacher.temperature,
                                                             teacher_kind))
    steps_per_epoch = math.ceil(len(x) / settings.batch_size)
    x, y, batch_size, multiple = distribute.local_share(x, y, settings.batch_size, where)
    x_val, y_val, _, _ = distribute.local_share(x_val, y_val, settings.batch_size, where)
    part = distribute.part(where)
    fit = dict(x=_pipeline(x, y, batch_size, settings.seed, shuffle=True, epochs=settings.epochs, multiple=multiple,
                           part=part),
               validation_data=_pipeline(x_val, y_val, batch_size, settings.seed, shuffle=False, multiple=multiple,
                                         part=part) if len(x_val) else None)
    if keras.backend.backend() == "tensorflow":
        fit["steps_per_epoch"] = math.ceil(len(x) / batch_size)  # the pipeline holds every epoch
    return fit, steps_per_epoch


@dataclass(frozen=True)
class Distillation:
    """How a student learns from a teacher: a mix of hard labels (weight ``alpha``) and the
    teacher's outputs softened at ``temperature`` (see ``distill``). Checked once, when made."""

    alpha: float = distill.DEFAULT_ALPHA
    temperature: float = distill.DEFAULT_TEMPERATURE

    def __post_init__(self):
        number("alpha", self.alpha, 0, 1, example=str(distill.DEFAULT_ALPHA))
        number("temperature", self.temperature, 0.05, 100, example=str(distill.DEFAULT_TEMPERATURE))


@dataclass
class Teacher:
    """Distillation from ``model`` (see ``Distillation``)."""

    model: object
    alpha: float = distill.DEFAULT_ALPHA
    temperature: float = distill.DEFAULT_TEMPERATURE

    def __post_init__(self):
        Distillation(self.alpha, self.temperature)


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


def finetune(model, data: Dataset, settings: FitSettings | None = None, callbacks=(),
             kind: str | None = None, teacher: Teacher | None = None) -> FitResult:
    """Fine-tune ``model`` in place on ``data``; the best epoch's weights (by validation loss) win.

    With ``teacher``, the loss is knowledge distillation from it (see ``distill``). Ctrl-C stops
    training cleanly: the best weights of a completed epoch are restored (the starting weights if
    no epoch completed) and the result says ``interrupted=True``. Weights that are no longer finite
    after training are refused: the starting weights are put back and the error says so.
    """
    settings = settings or FitSettings()
    where = distribute.placement(settings.devices)
    set_random_seed(settings.seed)
    first = data.head("train", 64)[0]
    kind = kind or output_kind(model, first)
    if teacher is not None and kind == "binary":
        raise LightCompressError("distillation needs a multi-class output; this model has one unit.")
    if data.in_memory:
        fit_data, steps_per_epoch = _in_memory(data, settings, teacher, where)
    else:  # batches read as they are needed, never the whole set
        targets = None if teacher is None else distill.stream_targets(
            teacher.model, output_kind(teacher.model, first), teacher.temperature)
        train, val, steps_per_epoch = data.fit_data(settings.batch_size, settings.validation_split,
                                                    settings.seed, targets)
        fit_data = dict(x=train, validation_data=val)
    has_val = fit_data["validation_data"] is not None
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_loss" if has_val else "loss", patience=settings.patience,
        restore_best_weights=True,
    )
    log = _EpochLog()
    fit_args = dict(fit_data, epochs=settings.epochs, verbose=0, shuffle=False,  # each source shuffles itself
                    callbacks=[stopper, log, *callbacks, _StopOnSignal()])
    start_weights = model.get_weights()
    interrupted = False
    net = model
    with distribute.scope(where):
        if where.count > 1 or where.hosts > 1:  # the engine places the variables: train a copy made here
            net = distribute.replica(model)
        compile_for_training(net, kind, settings, steps_per_epoch * settings.epochs, teacher)
        if where.engine == "tf.distribute.MultiWorkerMirroredStrategy":
            distribute.build_for_fit(net, fit_data["x"])
        try:
            with data.reading():
                net.fit(**fit_args)
        except KeyboardInterrupt:
            interrupted = True
            net.set_weights(stopper.best_weights if stopper.best_weights is not None and log.seconds
                            else start_weights)
        except Exception as err:  # several hosts: another process may have died; say so in one line
            if where.hosts > 1 and not isinstance(err, LightCompressError):
                raise distribute.job_failed(err) from None
            raise
    if net is not model:
        model.set_weights(net.get_weights())
    bad = next((w.name for w in model.weights if not np.all(np.isfinite(keras.ops.convert_to_numpy(w)))), None)
    if bad is not None:
        model.set_weights(start_weights)
        raise LightCompressError(
            f"training made weight '{bad}' non-finite (NaN or inf), so nothing is kept; lower the "
            f"learning rate, check the data for NaN/inf values, or raise the distillation temperature.")
    history = {k: [float(v) for v in vs] for k, vs in net.history.history.items()} if net.history else {}
    best_epoch = getattr(stopper, "best_epoch", None)
    return FitResult(
        history=history,
        epochs_run=len(log.seconds),
        epoch_seconds=log.seconds,
        best_epoch=None if best_epoch is None or not log.seconds else int(best_epoch) + 1,
        started_from_input=interrupted and not log.seconds,
        interrupted=interrupted,
        device=device_name() if where.count <= 1 else f"{where.describe()}: {device_name()}",
        settings=settings,
        learning_rates=log.learning_rates,
        engine=where.engine,
        devices=where.count,
    )
