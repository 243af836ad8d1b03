"""Every use of Keras internals, in one place (Keras 3, capped below 4 in pyproject.toml).

Each helper names the private API it leans on; ``tests/test_keras_private.py`` fails with a clear
message if one of them moves in a new Keras release.

- ``keras.src.saving.serialization_lib.SafeModeScope``: lift safe mode while recreating layers of
  a model that is already in memory (no code is read from a file there).
- ``keras.src.models.functional.Functional``: tell graph models from subclassed ones.
- ``keras.src.backend.common.global_state`` with ``rng_utils.GLOBAL_RANDOM_SEED`` and
  ``seed_generator.GLOBAL_SEED_GENERATOR``: seed Keras as ``keras.utils.set_random_seed`` does
  without importing TensorFlow on the JAX and PyTorch backends (Keras imports it there only to
  seed ``tf.data``).
- ``Model._functional`` (a Sequential's inner graph) and ``Functional._nodes_by_depth``: every
  call of every layer in a model's own graph, for MAC counting.
"""

from __future__ import annotations

import sys

import keras

PRIVATE_APIS = (
    "keras.src.backend.common.global_state, rng_utils.GLOBAL_RANDOM_SEED, seed_generator.GLOBAL_SEED_GENERATOR",
    "Sequential._layers (its InputLayer)",
    "keras.src.saving.serialization_lib.SafeModeScope",
    "keras.src.models.functional.Functional",
    "Sequential._functional",
    "Functional._nodes_by_depth",
    "keras.src.layers.core.einsum_dense._analyze_einsum_string",
    "Layer._tracker.untrack",
)


def set_random_seed(seed: int):
    """``keras.utils.set_random_seed(seed)``, less its TensorFlow import when TensorFlow is neither
    the backend nor already imported (nothing then uses tf.data, whose seed is all it sets there)."""
    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
    else:
        seed_without_tensorflow(seed)


def seed_without_tensorflow(seed: int):
    """What ``keras.utils.set_random_seed`` does, but TensorFlow's seed."""
    import random

    import numpy as np
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    if keras.backend.backend() == "torch":
        import torch

        torch.manual_seed(seed)


def unsafe_scope():
    """A context in which Keras recreates Lambda layers from config (in-memory models only)."""
    from keras.src.saving.serialization_lib import SafeModeScope

    return SafeModeScope(safe_mode=False)


def is_graph_model(model) -> bool:
    """True for Sequential and Functional models (the ones that can be cloned and rewritten)."""
    from keras.src.models.functional import Functional

    return isinstance(model, (keras.Sequential, Functional))


def graph_nodes(model) -> dict:
    """{id(layer): [node, ...]}: every call of every layer inside ``model``'s graph, nested
    models included. Keras also records calls made while building or loading a layer; reading the
    model's own graph counts only the real ones (a shared layer has several)."""
    found = {}

    def walk(m):
        graph = getattr(m, "_functional", None) or m  # a Sequential keeps its graph aside
        for nodes in getattr(graph, "_nodes_by_depth", {}).values():
            for node in nodes:
                op = node.operation
                found.setdefault(id(op), []).append(node)
                if isinstance(op, keras.Model):
                    walk(op)

    walk(model)
    return found


def sequential_input(model):
    """The InputLayer a built Sequential model starts with."""
    return model._layers[0]


def einsum_shapes(equation, bias_axes, input_shape, output_shape):
    """(kernel shape, bias shape or None, full output shape) of an EinsumDense, as Keras computes
    them in ``EinsumDense.build``."""
    from keras.src.layers.core.einsum_dense import _analyze_einsum_string

    kernel_shape, bias_shape, full_output_shape, _, _ = _analyze_einsum_string(
        equation, bias_axes, input_shape, output_shape)
    return kernel_shape, bias_shape, full_output_shape


def untrack(layer, sublayer):
    """Forget ``sublayer`` (and its weights) in ``layer``'s tracking, before a replacement is set."""
    layer._tracker.untrack(sublayer)
