"""TimeDistributed(Dense): its twin ``LightTimeDistributed`` (TimeDistributed around a LightDense),
its lowering (each half of the lowered LightDense wrapped again) and its registry entry. The
matrix factorised is the inner Dense kernel; its MACs are the Dense formula's.
"""

from __future__ import annotations

import keras

from . import registry
from .base import PACKAGE, base_name, common_unsupported
from .dense import LightDense, dense_macs, lower_light_dense

# -- the twin ------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package=PACKAGE)
class LightTimeDistributed(keras.layers.TimeDistributed):
    """TimeDistributed around a LightDense: the twin of TimeDistributed(Dense)."""

    @property
    def rank(self):
        return self.layer.rank

    @property
    def kernel_a(self):
        return self.layer.kernel_a

    @property
    def kernel_b(self):
        return self.layer.kernel_b

    @classmethod
    def from_time_distributed(cls, layer, rank, factors=None):

        inner = LightDense.from_dense(layer.layer, rank, factors)
        config = layer.get_config()
        light = cls(inner, name=f"{layer.name}_light", dtype=config.get("dtype"),
                    trainable=config.get("trainable", True))
        light.build((None, None, inner.kernel_a.shape[0]))
        return light


# -- lowering ------------------------------------------------------------------------------

def lower_light_time_distributed(layer, base: str | None = None) -> list:
    """``TimeDistributed(Dense(rank))`` then ``TimeDistributed(Dense(units))``: the inner
    LightDense lowered and each half wrapped again."""
    base = base_name(layer, base)
    first, second = lower_light_dense(layer.layer, base=f"{base}_inner")
    wrapped = []
    for half, suffix in ((first, "a"), (second, "b")):
        td = keras.layers.TimeDistributed(half, name=f"{base}_{suffix}", dtype=layer.dtype_policy)
        td.build((None, None, half.kernel.shape[0]))
        wrapped.append(td)
    return wrapped


# -- the entry -----------------------------------------------------------------------------

def _time_distributed_unsupported(layer):
    inner = layer.layer
    if type(inner) is not keras.layers.Dense:
        return f"wraps a {type(inner).__name__}, not a Dense"
    return common_unsupported(inner) or common_unsupported(layer)


def _set_inner_kernel(layer, kernel):
    layer.layer.kernel.assign(kernel)


def example():
    """A tiny model holding one TimeDistributed(Dense) named "target", and its input shape."""
    inputs = keras.Input((4, 11))
    layer = keras.layers.TimeDistributed(keras.layers.Dense(9, activation="tanh"), name="target")
    return keras.Model(inputs, layer(inputs)), inputs.shape


TIME_DISTRIBUTED = registry.register(registry.LayerType(
    cls=keras.layers.TimeDistributed,
    twin=LightTimeDistributed,
    modes=("dense",),
    build_twin=lambda layer, rank, mode, factors=None: LightTimeDistributed.from_time_distributed(
        layer, rank, factors),
    macs=dense_macs,
    lower=lower_light_time_distributed,
    unsupported=_time_distributed_unsupported,
    kernel_of=lambda layer: keras.ops.convert_to_numpy(layer.layer.kernel),
    set_kernel=_set_inner_kernel,
    bias_of=lambda layer: getattr(layer.layer, "bias", None),
    example=example,
))
