"""Calibration inputs the model itself provides: with no data set and no samples, inputs are
synthesised so that every BatchNormalization layer sees batch statistics equal to the moving
mean and variance it learned in training (ZeroQ, Cai et al. 2020; the BatchNorm term of
DeepInversion, Yin et al. 2020). They stand in for real inputs where a data-aware method would
use them: the factors' statistics, the allocation's output errors and the report's agreement.

The inputs are a variable trained by Keras's own ``fit`` (any backend) through the frozen model
in inference mode; each BatchNorm layer's call is recorded (``tracing.recorded``) so the nested
models of a Teachable Machine or transfer-learning file count too. The loss is ZeroQ's: for each
BatchNorm call, the L2 distance between the batch mean and the moving mean plus that between
the batch standard deviation and the moving one, both divided by the moving standard deviation so
every layer weighs alike.

A model this cannot serve (no BatchNorm layer, an input that is not one fixed-size float tensor:
token ids, several inputs, unknown sizes) gets ``None`` and the reason: the caller falls back to
planning on the weights alone (``defaults.NO_DATA_ENERGY_FLOOR``) and comparing on random inputs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import keras
import numpy as np

from ..data.synthetic import input_specs, token_vocabularies
from ..errors import UnsupportedModelError
from .candidates import iter_layers
from .tracing import recorded

# The work one synthesis may take, in multiply-accumulates of forward passes (a backward pass
# counted as two more): about 1.5 minutes on the shared 2 cores (6e12 took a Teachable Machine
# MobileNetV2, 60 M MACs per image, 279 s there). Small models get MAX_COUNT inputs and MAX_STEPS
# steps; a large one fewer of each, never under the minimums. The steps also stop at
# SYNTHESIS_SECONDS of optimisation (a model whose MACs are not counted, one nested in another
# say, is sized as a small one and stopped by the clock).
SYNTHESIS_MACS = 2e12
SYNTHESIS_SECONDS = 90.0
MAX_COUNT, MIN_COUNT = 160, 16
MAX_STEPS, MIN_STEPS = 300, 20
LEARNING_RATE = 0.05  # 0.02, 0.05 and 0.2 tried on a two-BN CNN: 0.05 matched best in 200 steps
BATCH = 32


@dataclass
class Synthesised:
    """Inputs synthesised from ``model``'s BatchNorm statistics, and how well they match them."""

    x: np.ndarray
    layers: int  # BatchNorm layers matched
    steps: int
    seconds: float
    start_loss: float  # the mean matching loss per layer before the first step
    loss: float  # ... and after the last

    def note(self) -> str:
        return (f"{len(self.x)} inputs synthesised from the statistics of {self.layers} BatchNorm layer(s) "
                f"({self.steps} steps, {self.seconds:.0f} s; mismatch {self.start_loss:.2f} -> {self.loss:.2f})")


def batchnorm_layers(model) -> list:
    """The model's BatchNormalization layers with moving statistics, nested models included."""
    return [layer for _, layer in iter_layers(model)
            if isinstance(layer, keras.layers.BatchNormalization) and layer.built]


def why_not(model) -> str | None:
    """Why ``model``'s inputs cannot be synthesised from its BatchNorm statistics, or None."""
    if not batchnorm_layers(model):
        return "the model has no BatchNormalization layer to synthesise inputs from"
    try:
        specs = input_specs(model)
    except UnsupportedModelError:
        return "the model declares no input shape"
    if len(specs) != 1:
        return f"the model has {len(specs)} inputs"
    shape = tuple(specs[0].shape)[1:]
    if any(d is None for d in shape):
        return f"its input has an unknown size {tuple(specs[0].shape)}"
    if token_vocabularies(model) or not keras.backend.is_float_dtype(specs[0].dtype or "float32"):
        return "its input is token ids, not values a gradient can move"
    return None


def plan_size(macs_per_example: float) -> tuple[int, int]:
    """(inputs, steps) for a model of ``macs_per_example``: within ``SYNTHESIS_MACS`` of work."""
    per_input_step = 3.0 * max(macs_per_example, 1.0)
    budget = SYNTHESIS_MACS / per_input_step  # inputs x steps
    count = int(min(MAX_COUNT, max(MIN_COUNT, budget // MAX_STEPS)))
    steps = int(min(MAX_STEPS, max(MIN_STEPS, budget // count)))
    return count, steps


class _Matcher(keras.Model):
    """The inputs as a variable, the model frozen; calling it adds the matching loss."""

    def __init__(self, model, layers, count, shape, seed):
        super().__init__(name="batchnorm_matcher")
        self.net, self.norms = model, layers
        init = np.random.default_rng(seed).standard_normal((count, *shape)).astype("float32")
        self.images = self.add_weight(shape=init.shape, initializer=keras.initializers.Constant(init),
                                      name="synthesised_inputs")
        self.targets = [(np.asarray(keras.ops.convert_to_numpy(n.moving_mean), "float32"),
                         np.sqrt(np.asarray(keras.ops.convert_to_numpy(n.moving_variance), "float32") + n.epsilon))
                        for n in layers]

    def call(self, index):
        batch = keras.ops.take(self.images, keras.ops.cast(keras.ops.reshape(index, (-1,)), "int32"), axis=0)
        with recorded(self.norms) as seen:
            self.net(batch, training=False)
        total, calls = 0.0, 0
        for norm, (mean, std) in zip(self.norms, self.targets):
            for args, _ in seen[id(norm)]:
                x = keras.ops.cast(args[0], "float32")
                axis = norm.axis if isinstance(norm.axis, int) else norm.axis[0]
                axis = axis % len(x.shape)
                reduce = [a for a in range(len(x.shape)) if a != axis]
                mu = keras.ops.mean(x, axis=reduce)
                sd = keras.ops.sqrt(keras.ops.var(x, axis=reduce) + norm.epsilon)
                total = total + (keras.ops.norm((mu - mean) / std) + keras.ops.norm((sd - std) / std)) / math.sqrt(
                    len(mean))
                calls += 1
        loss = total / max(calls, 1)
        self.add_loss(loss)
        return keras.ops.reshape(loss, (1,))


def synthesise(model, count: int, steps: int, seed: int = 0, on_step=None,
               seconds: float = SYNTHESIS_SECONDS) -> Synthesised:
    """``count`` inputs for ``model`` whose BatchNorm batch statistics match its moving ones,
    after ``steps`` steps of Adam over them, fewer where the next pass over them would end after
    ``seconds`` of optimising (at least one pass; ``on_step(done, total, text)`` follows). Raises
    ``UnsupportedModelError`` where ``why_not`` gives a reason."""
    reason = why_not(model)
    if reason:
        raise UnsupportedModelError(f"cannot synthesise calibration inputs: {reason}.")
    start = time.perf_counter()
    layers = batchnorm_layers(model)
    trainable, model.trainable = model.trainable, False
    try:
        shape = tuple(input_specs(model)[0].shape)[1:]
        matcher = _Matcher(model, layers, count, shape, seed)
        matcher.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), jit_compile=False)
        index = np.arange(count, dtype="float32")
        batch = min(BATCH, count)

        def mismatch() -> float:
            return float(np.mean([float(keras.ops.convert_to_numpy(matcher(index[i:i + batch])[0]))
                                  for i in range(0, count, batch)]))

        first = mismatch()
        epochs = max(1, round(steps * batch / count))
        clock = _Clock(on_step, epochs, seconds)
        matcher.fit(index, np.zeros((count, 1), "float32"), batch_size=batch, epochs=epochs, shuffle=True,
                    verbose=0, callbacks=[clock])
        last = mismatch()
        x = np.asarray(keras.ops.convert_to_numpy(matcher.images), dtype="float32")
    finally:
        model.trainable = trainable
    if not np.all(np.isfinite(x)):
        raise UnsupportedModelError("synthesising calibration inputs diverged (non-finite values).")
    return Synthesised(x=x, layers=len(layers), steps=clock.done * -(-count // batch), seconds=time.perf_counter() - start,
                       start_loss=first, loss=last)


class _Clock(keras.callbacks.Callback):
    """Stops the fit before a pass that would end after ``seconds``; counts the passes done."""

    def __init__(self, on_step, epochs, seconds):
        super().__init__()
        self.on_step, self.epochs, self.seconds, self.done, self.start = on_step, epochs, seconds, 0, 0.0

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.done = epoch + 1
        elapsed = time.perf_counter() - self.start
        if elapsed * (self.done + 1) / self.done > self.seconds:
            self.model.stop_training = True
        if self.on_step is not None:
            self.on_step(self.done, self.epochs, "synthesising calibration inputs")
