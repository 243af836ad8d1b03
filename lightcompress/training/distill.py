"""Knowledge distillation: train a student on a mix of the hard labels and the teacher's softened
outputs (Hinton et al. 2015).

    loss = α · CE(label, student) + (1 − α) · T² · KL(teacher_T ‖ student_T)

where ``x_T = softmax(log p / T)`` softens a probability vector (for a logits model, log p is the
log-softmax of its logits). The targets travel as one array per example: the label in column 0,
then the teacher's softened probabilities, so any Keras backend can train on them.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .._deferred import deferred
from ..defaults import DEFAULT_ALPHA, DEFAULT_TEMPERATURE
from .evaluation import log_probs

tf = deferred("tensorflow")

# Our own loss rather than keras.distillation.Distiller: the teacher's softened outputs are computed
# once, before training, and travel with the labels, instead of a teacher forward pass every step
# (the architecture issue's closing note has the measurement).


def soft_targets(teacher, x, temperature, kind, batch_size=256) -> np.ndarray:
    """The teacher's probabilities softened at ``temperature`` (rows sum to 1)."""
    logp = log_probs(teacher.predict(x, batch_size=batch_size, verbose=0), kind) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def pack(labels, soft) -> np.ndarray:
    """Targets for ``DistillationLoss``: [label, soft probabilities...] per row."""
    return np.concatenate([np.asarray(labels, np.float32)[:, None], soft], axis=1)


@keras.saving.register_keras_serializable(package="lightcompress")
class DistillationLoss(keras.losses.Loss):
    """α·CE with the label + (1 − α)·T²·KL(teacher_T ‖ student_T), on packed targets."""

    def __init__(self, alpha=DEFAULT_ALPHA, temperature=DEFAULT_TEMPERATURE, from_logits=False,
                 name="distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha, self.temperature, self.from_logits = float(alpha), float(temperature), bool(from_logits)

    def call(self, y_true, y_pred):
        labels = ops.cast(y_true[:, 0], "int32")
        teacher = y_true[:, 1:]
        if self.from_logits:
            log_p = ops.log_softmax(y_pred, axis=-1)
        else:
            log_p = ops.log(ops.clip(y_pred, 1e-7, 1.0))
        k = ops.shape(y_pred)[-1]
        hard = -ops.sum(ops.one_hot(labels, k) * log_p, axis=-1)
        log_student_t = ops.log_softmax(log_p / self.temperature, axis=-1)
        teacher = ops.clip(teacher, 1e-7, 1.0)
        kl = ops.sum(teacher * (ops.log(teacher) - log_student_t), axis=-1)
        return self.alpha * hard + (1.0 - self.alpha) * self.temperature**2 * kl

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "temperature": self.temperature,
                "from_logits": self.from_logits}


def label_accuracy(y_true, y_pred):
    """Top-1 accuracy against the label column of packed targets."""
    labels = ops.cast(y_true[:, 0], "int32")
    return ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), labels), "float32")


def stream_targets(teacher, kind, temperature):
    """A tf.data map (images, labels) -> (images, packed targets) that runs ``teacher`` on each
    batch as it streams (TensorFlow backend): ``pack(labels, soft_targets(...))`` per batch."""
    def targets(x, y):
        out = tf.cast(teacher(x, training=False), tf.float32)
        logp = tf.nn.log_softmax(out, axis=-1) if kind == "logits" else tf.math.log(tf.clip_by_value(out, 1e-7, 1.0))
        soft = tf.nn.softmax(logp / temperature, axis=-1)
        return x, tf.concat([tf.cast(y, tf.float32)[:, None], soft], axis=1)

    return targets
