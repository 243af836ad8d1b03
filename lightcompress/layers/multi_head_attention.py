"""MultiHeadAttention: a composite whose four projections (EinsumDense sublayers) are factorised
each through the EinsumDense entry. Its twin ``LightMultiHeadAttention`` holds LightEinsumDense
layers for the projections named in ``ranks``; the attention itself is unchanged. Its MAC formula
counts the projections and the score and value products; its lowering is a plain
MultiHeadAttention whose factorised projections are the standard layers they lower to; it is
registered as a ``Composite``.
"""

from __future__ import annotations

import keras
import numpy as np

from .. import _keras_private as keras_private
from ..errors import LightCompressError
from . import registry
from .base import PACKAGE
from .einsum_dense import LightEinsumDense, einsum_input_shape, einsum_matrix_shape

# -- the twin ------------------------------------------------------------------------------

MHA_PARTS = {"query": "_query_dense", "key": "_key_dense", "value": "_value_dense",
             "attention_output": "_output_dense"}


def mha_parts(layer):
    """[(part name, EinsumDense sublayer)] of a built MultiHeadAttention."""
    return [(part, getattr(layer, attr)) for part, attr in MHA_PARTS.items()
            if getattr(layer, attr, None) is not None]


def _mha_shapes(layer):
    """(query, value, key) shapes a MultiHeadAttention was built for (last dims from its kernels)."""
    def shape(part):
        sub = getattr(layer, MHA_PARTS[part])
        kernel = sub.kernel_a if isinstance(sub, LightEinsumDense) else sub.kernel
        kernel_shape = sub.kernel_shape if isinstance(sub, LightEinsumDense) else tuple(kernel.shape)
        return einsum_input_shape(sub.equation, kernel_shape, sub.partial_output_shape)

    return shape("query"), shape("value"), shape("key")


@keras.saving.register_keras_serializable(package=PACKAGE)
class LightMultiHeadAttention(keras.layers.MultiHeadAttention):
    """A MultiHeadAttention whose projections named in ``ranks`` ({"query": 8, ...}) are
    LightEinsumDense layers; the attention itself is unchanged."""

    def __init__(self, *args, ranks=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.ranks = {str(k): int(v) for k, v in (ranks or {}).items()}
        unknown = set(self.ranks) - set(MHA_PARTS)
        if unknown:
            raise LightCompressError(f"ranks names {sorted(unknown)[0]!r}; use parts among {', '.join(MHA_PARTS)}.")

    @property
    def rank(self):
        return min(self.ranks.values()) if self.ranks else None

    def build(self, query_shape, value_shape, key_shape=None):
        super().build(query_shape, value_shape, key_shape)
        key_shape = value_shape if key_shape is None else key_shape
        out_in = list(self._query_dense.compute_output_shape(query_shape))
        out_in[-1] = self._value_dim
        shapes = {"query": query_shape, "key": key_shape, "value": value_shape, "attention_output": tuple(out_in)}
        for part, rank in self.ranks.items():
            old = getattr(self, MHA_PARTS[part])
            settings = {k: v for k, v in old.get_config().items()
                        if k in ("activation", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                                 "bias_regularizer", "bias_constraint", "dtype", "name")}
            new = LightEinsumDense(old.equation, old.partial_output_shape, rank, bias_axes=old.bias_axes, **settings)
            new.build(shapes[part])
            keras_private.untrack(self, old)
            setattr(self, MHA_PARTS[part], new)

    def get_config(self):
        return {**super().get_config(), "ranks": dict(self.ranks)}

    @classmethod
    def from_mha(cls, layer, ranks):
        """The twin of a built MultiHeadAttention with ``ranks`` ({part: rank}) factorised."""
        config = {**layer.get_config(), "ranks": ranks, "name": f"{layer.name}_light"}
        light = cls.from_config(config)
        light.build(*_mha_shapes(layer))
        for part, old in mha_parts(layer):
            new = getattr(light, MHA_PARTS[part])
            if part in ranks:
                twin = LightEinsumDense.from_einsum_dense(old, ranks[part])
                new.set_weights(twin.get_weights())
            else:
                new.set_weights(old.get_weights())
        return light


# -- lowering ------------------------------------------------------------------------------

def lower_light_mha(twin, lower_part):
    """A plain ``keras.layers.MultiHeadAttention`` built like ``twin``, its unfactorised projections
    holding the twin's weights, and {id(projection): ``lower_part(twin's projection, name)``} for
    the factorised ones (the standard layers, a Sequential of the two EinsumDense layers named
    ``name``), which the caller puts in place (built, the layer's tracker is locked against setattr)."""
    config = {k: v for k, v in twin.get_config().items() if k != "ranks"}
    plain = keras.layers.MultiHeadAttention.from_config(config)
    plain.build(*_mha_shapes(twin))
    swaps = {}
    for attr in MHA_PARTS.values():
        source, target = getattr(twin, attr, None), getattr(plain, attr, None)
        if source is None or target is None:
            continue
        lowered = lower_part(source, target.name)
        if lowered is None:
            target.set_weights(source.get_weights())
        else:
            swaps[id(target)] = lowered
    return plain, swaps


def example():
    """A tiny model holding one MultiHeadAttention named "target" (query and value of different
    lengths), and its query's input shape."""
    query, value = keras.Input((5, 8)), keras.Input((7, 8))
    model = keras.Model([query, value], keras.layers.MultiHeadAttention(2, 4, name="target")(query, value))
    return model, query.shape


# -- MACs and the entry --------------------------------------------------------------------

def mha_macs(layer, in_shapes, out_shape):
    """Projections (each as its entry counts it) plus the score (Q·Kᵀ) and value (A·V) products."""
    query = in_shapes[0]
    value = in_shapes[1] if len(in_shapes) > 1 else query
    tq, tk = int(np.prod(query[1:-1])), int(np.prod(value[1:-1]))
    total = 0
    for part, sub in mha_parts(layer):
        entry = registry.twin_entry(sub) or registry.entry_for(sub)
        kernel_shape = getattr(sub, "kernel_shape", None) or tuple(sub.kernel.shape)
        n, m = einsum_matrix_shape(sub.equation, kernel_shape)
        rank = getattr(sub, "rank", None) if registry.twin_entry(sub) is entry else None
        per_position = n * m if rank is None else rank * (n + m)
        total += (tk if part in ("key", "value") else tq) * per_position
    heads = layer.num_heads
    return total + heads * tq * tk * layer.key_dim + heads * tq * tk * (layer.value_dim or layer.key_dim)


MULTI_HEAD_ATTENTION = registry.register_composite(registry.Composite(
    cls=keras.layers.MultiHeadAttention,
    twin=LightMultiHeadAttention,
    parts=mha_parts,
    build_twin=lambda layer, ranks: LightMultiHeadAttention.from_mha(
        layer, {part: rank for part, (rank, mode) in ranks.items()}),
    macs=mha_macs,
    lower=lower_light_mha,
    example=example,
))
