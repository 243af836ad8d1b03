"""Activations that Keras 2 computed differently from Keras 3 under the same name.

``hard_sigmoid`` was ``clip(0.2·x + 0.5, 0, 1)`` in Keras 1-2 and tf.keras (the default
``recurrent_activation`` of LSTM and GRU up to Keras 2.2); Keras 3's is ``clip(x/6 + 0.5, 0, 1)``.
A Keras 2 file loaded through ``lightcompress.load_model`` names this one instead
(``io/legacy.py``), registered with Keras here, so the model computes what it was trained to and a
converted model saved with it loads again once lightcompress is imported.
"""

from __future__ import annotations

import keras
from keras import ops

from .base import PACKAGE

HARD_SIGMOID = f"{PACKAGE}>keras2_hard_sigmoid"


@keras.saving.register_keras_serializable(package=PACKAGE, name="keras2_hard_sigmoid")
def keras2_hard_sigmoid(x):
    """Keras 2's hard sigmoid: ``clip(0.2·x + 0.5, 0, 1)``."""
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)


def config_of(name: str) -> dict:
    """The config Keras 3 saves for the registered activation ``name`` (an ``activation`` value)."""
    return {"module": "builtins", "class_name": "function", "config": name, "registered_name": "function"}
