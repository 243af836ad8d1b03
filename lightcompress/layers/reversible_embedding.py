"""ReversibleEmbedding (Keras's, which every keras-hub language model's ``token_embedding`` is, and
keras-hub's ``keras_hub.layers.ReversibleEmbedding``): its twin ``LightReversibleEmbedding``, its
MAC formula, its lowering and its registry entry.

A ReversibleEmbedding is an Embedding that can also be called ``reverse=True``: hidden states to
logits over the vocabulary, through the transposed table (``tie_weights=True``) or through a table
of its own, ``reverse_embeddings`` (output_dim, input_dim). The matrix factorised is the table E
(input_dim, output_dim), with the reverse table beside it when it is not tied: ``[E | Rᵀ]``
(input_dim, 2·output_dim). One SVD gives A (input_dim, r), shared by both directions, and B, split
in ``embeddings_b`` (r, output_dim) and ``reverse_embeddings_b`` (r, output_dim):

- forward: ``A[ids] · B``, a rank-``r`` lookup then a (r, output_dim) product;
- reverse: ``(x · Bᵀ) · Aᵀ`` (or ``(x · reverse_Bᵀ) · Aᵀ``), never the full table.

``logit_soft_cap``, ``reverse_dtype``, ``mask_zero`` and the initialiser are kept.

keras-hub is optional: its class is added to this entry only once keras-hub is imported by someone
else (``registry.when_imported``), and only while it computes what Keras's class does (a subclass
that does not override ``call``, as in keras-hub 0.32). The twin itself needs no keras-hub: a
converted model loads wherever lightcompress and the model's own classes import.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .. import _keras_private as keras_private
from .. import linalg
from . import registry
from .base import (
    PACKAGE,
    base_name,
    given_or_svd,
    numpy_of,
    positions,
    rank_in_context,
    with_weights,
)
from .embedding import LightEmbedding

# -- the table as a matrix -----------------------------------------------------------------


def table_matrix(layer) -> np.ndarray:
    """E (input_dim, output_dim), or ``[E | Rᵀ]`` (input_dim, 2·output_dim) when the reverse
    table is not tied to E."""
    table = numpy_of(layer.embeddings)
    if layer.tie_weights:
        return table
    return np.concatenate([table, numpy_of(layer.reverse_embeddings).T], axis=1)


def set_table_matrix(layer, matrix) -> None:
    """Write ``matrix`` (as ``table_matrix`` reads it) back into ``layer``'s table(s)."""
    matrix = np.asarray(matrix)
    dim = layer.output_dim
    layer.embeddings.assign(matrix[:, :dim])
    if not layer.tie_weights:
        layer.reverse_embeddings.assign(matrix[:, dim:].T)


# -- the twin ------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package=PACKAGE)
class LightReversibleEmbedding(LightEmbedding):
    """A ReversibleEmbedding whose table is two factors: ``embeddings_a`` (input_dim, r) shared by
    both directions, ``embeddings_b`` (r, output_dim), and ``reverse_embeddings_b`` (r, output_dim)
    when the reverse table is not tied. ``call(x, reverse=True)`` computes ``(x·Bᵀ)·Aᵀ``."""

    def __init__(self, input_dim, output_dim, rank, tie_weights=True, reverse_dtype=None, logit_soft_cap=None,
                 **kwargs):
        super().__init__(input_dim, output_dim, rank, **kwargs)
        self.tie_weights = bool(tie_weights)
        self.reverse_dtype = reverse_dtype
        self.logit_soft_cap = logit_soft_cap
        self.reverse_b = None

    @property
    def matrix_shape(self) -> tuple[int, int]:
        return self.input_dim, self.output_dim * (1 if self.tie_weights else 2)

    def build(self, input_shape=None):
        rank_in_context(self, lambda: linalg.check_rank(self.rank, self.matrix_shape))
        settings = {"initializer": self.embeddings_initializer, "regularizer": self.embeddings_regularizer}
        self.kernel_a = self.add_weight(name="embeddings_a", shape=(self.input_dim, self.rank), **settings)
        self.kernel_b = self.add_weight(name="embeddings_b", shape=(self.rank, self.output_dim), **settings)
        if not self.tie_weights:
            self.reverse_b = self.add_weight(name="reverse_embeddings_b", shape=(self.rank, self.output_dim),
                                             **settings)

    def call(self, inputs, reverse=False):
        if not reverse:
            outputs = super().call(inputs)
            if self.mask_zero:  # as Keras's ReversibleEmbedding: set here, the reverse call has none
                keras_private.set_keras_mask(outputs, ops.not_equal(inputs, 0))
            return outputs
        a = self.kernel_a
        b = self.kernel_b if self.tie_weights else self.reverse_b
        if self.reverse_dtype is not None:
            inputs, a, b = (ops.cast(t, self.reverse_dtype) for t in (inputs, a, b))
        logits = ops.matmul(ops.matmul(inputs, ops.transpose(b)), ops.transpose(a))
        if self.logit_soft_cap is not None:
            logits = ops.multiply(ops.tanh(ops.divide(logits, self.logit_soft_cap)), self.logit_soft_cap)
        return logits

    def compute_mask(self, inputs, mask=None):
        return None  # set in call() for the forward direction, as Keras's ReversibleEmbedding does

    def compute_output_shape(self, input_shape, reverse=False):
        if reverse:
            return (*tuple(input_shape)[:-1], self.input_dim)
        return (*tuple(input_shape), self.output_dim)

    def compute_output_spec(self, inputs, reverse=False):
        return keras.KerasTensor(self.compute_output_shape(inputs.shape, reverse), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "tie_weights": self.tie_weights, "reverse_dtype": self.reverse_dtype,
                "logit_soft_cap": self.logit_soft_cap}

    @classmethod
    def from_reversible_embedding(cls, layer, rank, factors=None):
        """The twin of a built ReversibleEmbedding at ``rank``: SVD-initialised, or from matrix
        factors (A, B) of ``table_matrix(layer)`` decomposed elsewhere."""
        config = layer.get_config()
        matrix = table_matrix(layer)
        a, b = given_or_svd(layer, factors, lambda: linalg.truncated_svd(matrix, rank))
        light = cls(layer.input_dim, layer.output_dim, rank, tie_weights=layer.tie_weights,
                    reverse_dtype=layer.reverse_dtype, logit_soft_cap=layer.logit_soft_cap,
                    embeddings_initializer=config["embeddings_initializer"],
                    embeddings_regularizer=config.get("embeddings_regularizer"), mask_zero=config["mask_zero"],
                    name=f"{layer.name}_light", dtype=config.get("dtype"), trainable=config.get("trainable", True))
        light.build()
        dim = layer.output_dim
        light.set_weights([a, b[:, :dim]] + ([] if layer.tie_weights else [b[:, dim:]]))
        return light


# -- lowering ------------------------------------------------------------------------------

def lower_light_reversible_embedding(layer, base: str | None = None) -> list:
    """One plain ``keras.layers.ReversibleEmbedding`` holding the product A·B (and the reverse
    table's product when untied). No pair of standard layers computes both directions through the
    factors, so a lowered model (every export) holds the full table: it computes what the twin
    does, and the embedding's savings are in the converted ``.keras`` model only."""
    a = numpy_of(layer.kernel_a)
    weights = [a @ numpy_of(layer.kernel_b)]
    if not layer.tie_weights:
        weights.append((a @ numpy_of(layer.reverse_b)).T)
    plain = keras.layers.ReversibleEmbedding(
        layer.input_dim, layer.output_dim, tie_weights=layer.tie_weights, reverse_dtype=layer.reverse_dtype,
        logit_soft_cap=layer.logit_soft_cap, embeddings_initializer=layer.embeddings_initializer,
        embeddings_regularizer=layer.embeddings_regularizer, mask_zero=layer.mask_zero,
        name=base_name(layer, base), dtype=layer.dtype_policy, trainable=layer.trainable)
    return [with_weights(plain, None, weights)]


# -- MACs and the entry --------------------------------------------------------------------

def reversible_macs(layer, in_shape, out_shape, mode, rank):
    """Per call: a forward lookup (ids in, one axis more out) costs nothing, or r·output_dim per
    token factorised; a reverse call (hidden states in) costs output_dim·input_dim per position,
    or r·(output_dim + input_dim) factorised."""
    forward = len(out_shape) == len(in_shape) + 1
    dim, vocab = layer.output_dim, layer.input_dim
    if forward:
        return 0 if rank is None else positions(out_shape) * rank * dim
    return positions(out_shape) * (dim * vocab if rank is None else rank * (dim + vocab))


def _keras_hub_settled(keras_hub) -> bool:
    """Add keras-hub's ReversibleEmbedding to the entry when it computes what Keras's does (a
    subclass leaving ``call``, ``build`` and the config alone); False while keras-hub is still
    being imported (asked again at the next lookup)."""
    cls = getattr(getattr(keras_hub, "layers", None), "ReversibleEmbedding", None)
    if cls is None:
        return False
    base = keras.layers.ReversibleEmbedding
    same = (isinstance(cls, type) and cls is not base and issubclass(cls, base)
            and all(getattr(cls, name) is getattr(base, name) for name in ("call", "build", "get_config")))
    if same:
        registry.register_subclass(cls, REVERSIBLE_EMBEDDING)
    return True


def example():
    """A tiny model holding one untied ReversibleEmbedding named "target", called both ways, and
    its input shape: floats in [0, 1) (what the tests feed) become token ids 0..29."""
    inputs = keras.Input((5,))
    layer = keras.layers.ReversibleEmbedding(30, 9, tie_weights=False, logit_soft_cap=5.0, name="target")
    hidden = layer(keras.layers.Rescaling(30.0)(inputs))
    return keras.Model(inputs, layer(hidden, reverse=True)), inputs.shape


REVERSIBLE_EMBEDDING = None
if hasattr(keras.layers, "ReversibleEmbedding"):  # older Keras 3 releases have none (keras-hub had its own)
    REVERSIBLE_EMBEDDING = registry.register(registry.LayerType(
        cls=keras.layers.ReversibleEmbedding,
        twin=LightReversibleEmbedding,
        modes=("table",),
        build_twin=lambda layer, rank, mode, factors=None: LightReversibleEmbedding.from_reversible_embedding(
            layer, rank, factors),
        macs=reversible_macs,
        lower=lower_light_reversible_embedding,
        kernel_of=table_matrix,
        set_kernel=set_table_matrix,
        bias_of=lambda layer: None,
        kernel_constraint_attr="embeddings_constraint",
        example=example,
    ))
    registry.when_imported("keras_hub", _keras_hub_settled)
