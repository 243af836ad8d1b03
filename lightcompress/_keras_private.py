"""Every use of Keras internals, in one place (Keras 3, capped below 4 in pyproject.toml).

Each helper names the private API it leans on; ``tests/test_architecture.py`` fails with a clear
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
- ``Layer._layers``, ``Layer._flatten_layers`` and ``Layer._tracker.replace_tracked_value``: the sublayers a layer tracks, and
  swapping one for its twin in place (subclassed and keras-hub models).
- ``Function._operations``, ``_operations_by_depth``, ``_nodes_by_depth``, ``Node.operation``,
  ``KerasTensor._keras_history`` and ``Operation._inbound_nodes``/``_outbound_nodes``: swapping a
  layer called in a functional graph for its twin.
- ``Trainer._symbolic_build``, the TensorFlow trainer's ``_distribute_strategy`` and
  ``keras.src.backend.tensorflow.trainer.reduce_per_replica``: fit under
  ``tf.distribute.MultiWorkerMirroredStrategy`` (see ``build_for_multi_worker``).
- ``keras.src.backend.set_keras_mask``: a mask set inside ``call`` for one direction of a
  ReversibleEmbedding twin only, as Keras's own layer does.
"""

from __future__ import annotations

import random
import sys

import keras
import numpy as np

from ._deferred import deferred

# Each private module is read on first use, so a moved one fails the helper that needs it, not
# ``import lightcompress``.
einsum_dense = deferred("keras.src.layers.core.einsum_dense")
functional = deferred("keras.src.models.functional")
global_state = deferred("keras.src.backend.common.global_state")
keras_backend = deferred("keras.src.backend")
ops_node = deferred("keras.src.ops.node")
rng_utils = deferred("keras.src.utils.rng_utils")
seed_generator = deferred("keras.src.random.seed_generator")
serialization_lib = deferred("keras.src.saving.serialization_lib")
trainer = deferred("keras.src.backend.tensorflow.trainer")
torch = deferred("torch")

PRIVATE_APIS = (
    "keras.src.backend.common.global_state, rng_utils.GLOBAL_RANDOM_SEED, seed_generator.GLOBAL_SEED_GENERATOR",
    "Sequential._layers (its InputLayer)",
    "keras.src.saving.serialization_lib.SafeModeScope",
    "keras.src.models.functional.Functional",
    "Sequential._functional",
    "Functional._nodes_by_depth",
    "keras.src.layers.core.einsum_dense._analyze_einsum_string",
    "Layer._tracker.untrack",
    "Layer._layers, Layer._flatten_layers, Layer._tracker.replace_tracked_value",
    "Function._operations, _operations_by_depth, _nodes_by_depth, Node.operation, KerasTensor._keras_history",
    "Trainer._symbolic_build, TensorFlowTrainer._distribute_strategy, "
    "keras.src.backend.tensorflow.trainer.reduce_per_replica",
    "keras.src.backend.set_keras_mask",
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
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    if keras.backend.backend() == "torch":
        torch.manual_seed(seed)


def unsafe_scope():
    """A context in which Keras recreates Lambda layers from config (in-memory models only)."""
    return serialization_lib.SafeModeScope(safe_mode=False)


def is_graph_model(model) -> bool:
    """True for Sequential and Functional models (the ones that can be cloned and rewritten)."""
    return isinstance(model, (keras.Sequential, functional.Functional))


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
    kernel_shape, bias_shape, full_output_shape, _, _ = einsum_dense._analyze_einsum_string(
        equation, bias_axes, input_shape, output_shape)
    return kernel_shape, bias_shape, full_output_shape


def set_keras_mask(tensor, mask) -> None:
    """Attach ``mask`` to ``tensor`` inside a layer's ``call`` (as Keras's ReversibleEmbedding does
    for its forward direction only)."""
    keras_backend.set_keras_mask(tensor, mask)


def untrack(layer, sublayer):
    """Forget ``sublayer`` (and its weights) in ``layer``'s tracking, before a replacement is set."""
    layer._tracker.untrack(sublayer)


def is_plain_graph_model(model) -> bool:
    """True for models built with ``keras.Sequential`` or ``keras.Model(inputs, outputs)`` themselves
    (not subclasses of them): ``keras.models.clone_model`` rebuilds those faithfully."""
    return type(model) in (keras.Sequential, functional.Functional)


def sublayers(layer) -> list:
    """The layers ``layer`` tracks directly (attributes, lists of layers, graph operations), in
    tracking order."""
    return list(getattr(layer, "_layers", []))


def all_sublayers(layer) -> list:
    """Every layer under ``layer`` (tracked sublayers, recursively), each once."""
    return list(layer._flatten_layers(include_self=False, recursive=True))


def replace_tracked(parent, old, new) -> bool:
    """Put ``new`` in ``old``'s place in ``parent``'s tracked sublayers (same position, so weights
    keep their order); False if ``parent`` does not track ``old``."""
    tracker = getattr(parent, "_tracker", None)
    if tracker is None or "layers" not in tracker.stored_ids or not tracker.is_in_store("layers", old):
        return False
    if tracker.is_in_store("layers", new):
        tracker.untrack(old)
    else:
        tracker.replace_tracked_value("layers", old, new)
    return True


def settle_list(value) -> None:
    """Mark a list whose elements were replaced in place (same positions) as clean. On TensorFlow a
    list held by a layer is a tracking ``ListWrapper``, which refuses to be saved (SavedModel and
    LiteRT export) once an element was replaced or the list changed behind it."""
    if hasattr(value, "_non_append_mutation") and hasattr(value, "_storage"):
        value._non_append_mutation = False
        value._external_modification = False
        value._last_wrapped_list_snapshot = list(value._storage)


def replace_in_graph(function, old, new) -> bool:
    """Make every call of ``old`` in ``function``'s graph (a Functional model) a call of ``new``:
    its operation lists, its nodes and the history of the tensors they output. False if ``old``
    is not in that graph."""
    if not any(op is old for op in getattr(function, "_operations", ())):
        return False
    function._operations[:] = [new if op is old else op for op in function._operations]
    settle_list(function._operations)
    for ops in getattr(function, "_operations_by_depth", {}).values():
        ops[:] = [new if op is old else op for op in ops]
    for nodes in getattr(function, "_nodes_by_depth", {}).values():
        for node in nodes:
            if node.operation is old:
                node.operation = new
                for tensor in node.outputs:
                    history = getattr(tensor, "_keras_history", None)
                    if history is not None and history.operation is old:
                        tensor._keras_history = ops_node.KerasHistory(new, history.node_index, history.tensor_index)
    new._inbound_nodes = list(old._inbound_nodes)
    new._outbound_nodes = list(old._outbound_nodes)
    return True


def build_for_multi_worker(model, batch):
    """Make a compiled ``model`` fit under ``tf.distribute.MultiWorkerMirroredStrategy``; call it
    in the strategy's scope, then fit in that scope.

    Keras 3.15's TensorFlow ``fit`` first builds the model from a batch it takes from the
    distributed dataset and averages over the replicas with ``strategy.reduce``: with several
    workers that reduce is a collective that does not take a nest, and fails with "Attempt to
    convert a value (PerReplica:{...}) ... to a Tensor" (keras-team/keras#20585). Here the model,
    its loss, metrics and optimizer are built from one local ``batch`` (x, y) instead, and the
    model forgets the strategy it was made under: ``fit`` then skips that build, and takes the
    strategy of the scope it runs in (``TensorFlowTrainer.distribute_strategy``)."""
    model._symbolic_build(data_batch=(batch[0], batch[1], None))
    model._distribute_strategy = None
    _mean_scalars_over_workers()


def _mean_scalars_over_workers():
    """Keras 3.15 averages each step's logs (scalars: the loss and metric results of each replica)
    over several workers with ``strategy.reduce("MEAN", v, axis=0)``, which fails on a scalar
    ("Invalid reduction dimension 0 for input with 0 dimensions"). Average a scalar over the
    replicas (``axis=None``), as Keras does on one worker; everything else as Keras does."""
    keras_reduce = trainer.reduce_per_replica
    if getattr(keras_reduce, "_lightcompress", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not trainer._collective_all_reduce_multi_worker(strategy):
            return keras_reduce(values, strategy, reduction)

        def one(v):
            local = v.values[0] if trainer._is_per_replica_instance(v) else v
            if getattr(local, "shape", None) is not None and local.shape.rank == 0:
                return strategy.reduce("MEAN", v, axis=None)
            return keras_reduce(v, strategy, reduction)

        return keras.tree.map_structure(one, values)

    reduce_per_replica._lightcompress = True
    trainer.reduce_per_replica = reduce_per_replica
