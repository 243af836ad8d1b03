"""Embedding: its twin ``LightEmbedding`` (ALBERT-style: a ``rank``-wide table, then a matrix to
output_dim), its MAC formula, its lowering (Embedding then Dense) and its registry entry. The
matrix factorised is the table (input_dim, output_dim); it has no bias.
"""

from __future__ import annotations

import keras
from keras import ops

from .. import linalg
from . import registry
from .base import (
    PACKAGE,
    base_name,
    given_or_svd,
    numpy_of,
    positions,
    positive_int,
    rank_in_context,
    with_weights,
)

# -- the twin ------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package=PACKAGE)
class LightEmbedding(keras.layers.Layer):
    """An Embedding whose table (input_dim, output_dim) is two factors, ALBERT-style: each token
    looks up a ``rank``-wide row of ``embeddings_a``, then ``embeddings_b`` maps it to output_dim."""

    def __init__(self, input_dim, output_dim, rank, embeddings_initializer="uniform",
                 embeddings_regularizer=None, mask_zero=False, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = positive_int("input_dim", input_dim)
        self.output_dim = positive_int("output_dim", output_dim)
        self.rank = positive_int("rank", rank)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero

    def build(self, input_shape=None):
        rank_in_context(self, lambda: linalg.check_rank(self.rank, (self.input_dim, self.output_dim)))
        self.kernel_a = self.add_weight(name="embeddings_a", shape=(self.input_dim, self.rank),
                                        initializer=self.embeddings_initializer,
                                        regularizer=self.embeddings_regularizer)
        self.kernel_b = self.add_weight(name="embeddings_b", shape=(self.rank, self.output_dim),
                                        initializer=self.embeddings_initializer,
                                        regularizer=self.embeddings_regularizer)

    def call(self, inputs):
        if inputs.dtype not in ("int32", "int64"):
            inputs = ops.cast(inputs, "int32")
        x = ops.matmul(ops.take(self.kernel_a, inputs, axis=0), self.kernel_b)
        return ops.cast(x, self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 0) if self.mask_zero else None

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "rank": self.rank, "mask_zero": self.mask_zero,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": keras.regularizers.serialize(self.embeddings_regularizer)}

    @classmethod
    def from_embedding(cls, layer, rank, factors=None):
        config = layer.get_config()
        table = numpy_of(layer.embeddings)
        a, b = given_or_svd(layer, factors, lambda: linalg.truncated_svd(table, rank))
        light = cls(table.shape[0], table.shape[1], rank, embeddings_initializer=config["embeddings_initializer"],
                    embeddings_regularizer=config.get("embeddings_regularizer"), mask_zero=config["mask_zero"],
                    name=f"{layer.name}_light", dtype=config.get("dtype"), trainable=config.get("trainable", True))
        light.build()
        light.set_weights([a, b])
        return light


# -- lowering ------------------------------------------------------------------------------

def lower_light_embedding(layer, base: str | None = None) -> list:
    """``Embedding(input_dim, rank)`` (masking as the layer), then ``Dense(output_dim, no bias)``."""
    base = base_name(layer, base)
    first = keras.layers.Embedding(layer.input_dim, layer.rank, mask_zero=layer.mask_zero, name=f"{base}_a",
                                   dtype=layer.dtype_policy, trainable=layer.trainable,
                                   embeddings_initializer=layer.embeddings_initializer,
                                   embeddings_regularizer=layer.embeddings_regularizer)
    second = keras.layers.Dense(layer.output_dim, use_bias=False, name=f"{base}_b", dtype=layer.dtype_policy,
                                trainable=layer.trainable)
    return [with_weights(first, (None, None), [numpy_of(layer.kernel_a)]),
            with_weights(second, (None, layer.rank), [numpy_of(layer.kernel_b)])]


# -- MACs and the entry --------------------------------------------------------------------

def embedding_macs(layer, in_shape, out_shape, mode, rank):
    """A lookup costs no MACs; the factorised table adds a rank × output_dim product per token."""
    if rank is None:
        return 0
    return positions(out_shape) * rank * out_shape[-1]


def _set_embeddings(layer, table):
    layer.embeddings.assign(table)


def example():
    """A tiny model holding one Embedding named "target", and its input shape: floats in [0, 1)
    (what the tests feed) become token ids 0..29."""
    inputs = keras.Input((5,))
    layer = keras.layers.Embedding(30, 9, name="target")
    return keras.Model(inputs, layer(keras.layers.Rescaling(30.0)(inputs))), inputs.shape


EMBEDDING = registry.register(registry.LayerType(
    cls=keras.layers.Embedding,
    twin=LightEmbedding,
    modes=("table",),
    build_twin=lambda layer, rank, mode, factors=None: LightEmbedding.from_embedding(layer, rank, factors),
    macs=embedding_macs,
    lower=lower_light_embedding,
    kernel_of=lambda layer: keras.ops.convert_to_numpy(layer.embeddings),
    set_kernel=_set_embeddings,
    bias_of=lambda layer: None,
    kernel_constraint_attr="embeddings_constraint",
    example=example,
))
