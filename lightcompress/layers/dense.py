"""Dense: its twin ``LightDense`` (``y = act((x·A)·B + bias)``), its MAC formula, its lowering
(two Dense layers) and its registry entry. The kernel (input_dim, units) is the matrix itself.

>>> import keras
>>> dense = keras.layers.Dense(16, name="fc")
>>> dense.build((None, 32))
>>> light = LightDense.from_dense(dense, rank=4)
>>> light.count_params() == 4 * (32 + 16) + 16
True
>>> [layer.name for layer in lower_light_dense(light)]  # lowered for export: two standard Dense layers
['fc_a', 'fc_b']
"""

from __future__ import annotations

import keras
from keras import ops

from .. import linalg
from . import registry
from .base import (
    PACKAGE,
    _LightLayer,
    base_name,
    factor_settings,
    given_or_svd,
    kernel_of,
    numpy_of,
    output_settings,
    positions,
    positive_int,
    rank_in_context,
    with_weights,
)


@keras.saving.register_keras_serializable(package=PACKAGE)
class LightDense(_LightLayer):
    """A Dense layer whose kernel is the product of two factors: ``y = act((x·A)·B + bias)``.

    A has shape (input_dim, rank) and B (rank, units); the layer holds
    ``rank·(input_dim + units) (+ units)`` parameters instead of ``input_dim·units (+ units)``.
    ``kernel_initializer``, ``kernel_regularizer`` and ``kernel_constraint`` apply to each factor.
    """

    def __init__(self, units, rank, activation=None, use_bias=True, **kwargs):
        super().__init__(rank=rank, activation=activation, use_bias=use_bias, **kwargs)
        self.units = positive_int("units", units)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        self.supports_masking = True

    def build(self, input_shape):
        input_dim = input_shape[-1]
        rank_in_context(self, lambda: linalg.check_rank(self.rank, (input_dim, self.units)))
        self.kernel_a = self._kernel("kernel_a", (input_dim, self.rank))
        self.kernel_b = self._kernel("kernel_b", (self.rank, self.units))
        self.bias = self._bias("bias", self.units) if self.use_bias else None
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: input_dim})

    def call(self, inputs):
        return self._bias_and_activation(ops.matmul(ops.matmul(inputs, self.kernel_a), self.kernel_b))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units}

    @classmethod
    def from_dense(cls, layer, rank, factors=None):
        """The LightDense twin of a built ``keras.layers.Dense``, initialised by truncated SVD
        (or from given matrix ``factors`` (A, B) of its kernel)."""
        kernel = kernel_of(layer, 2, "Dense", read=factors is None)
        a, b = given_or_svd(layer, factors, lambda: linalg.truncated_svd(kernel, rank))
        light = cls(units=kernel.shape[1], rank=rank, **cls._settings_of(layer))
        light.build((None, kernel.shape[0]))
        bias = ops.convert_to_numpy(layer.bias) if light.use_bias else None
        return light._set_factors((a, b), bias)


def lower_light_dense(layer: LightDense, base: str | None = None) -> list:
    """``[Dense(rank, no bias) named <base>_a, Dense(units, bias, activation) named <base>_b]``.

    ``base`` defaults to the layer's name without a trailing ``_light``.
    """
    base = base_name(layer, base)
    kernel_a, kernel_b = numpy_of(layer.kernel_a), numpy_of(layer.kernel_b)
    first = keras.layers.Dense(layer.rank, use_bias=False, name=f"{base}_a", **factor_settings(layer))
    second = keras.layers.Dense(layer.units, name=f"{base}_b", **factor_settings(layer), **output_settings(layer))
    bias = [numpy_of(layer.bias)] if layer.use_bias else []
    return [
        with_weights(first, (None, kernel_a.shape[0]), [kernel_a]),
        with_weights(second, (None, layer.rank), [kernel_b, *bias]),
    ]


def dense_macs(layer, in_shape, out_shape, mode, rank):
    """MACs per example: n·m per position, or rank·(n + m) factorised."""
    n, m = in_shape[-1], out_shape[-1]
    return positions(out_shape) * (n * m if rank is None else rank * (n + m))


def example():
    """A tiny model holding one Dense named "target" on a rank-3 input (the kernel applies at every
    position), and its input shape."""
    inputs = keras.Input((3, 20))
    return keras.Model(inputs, keras.layers.Dense(12, activation="relu", name="target")(inputs)), inputs.shape


DENSE = registry.register(registry.LayerType(
    cls=keras.layers.Dense,
    twin=LightDense,
    modes=("dense",),
    build_twin=lambda layer, rank, mode, factors=None: LightDense.from_dense(layer, rank, factors),
    macs=dense_macs,
    lower=lower_light_dense,
    input_matrix=lambda layer, x: keras.ops.reshape(x, (-1, keras.ops.shape(x)[-1])),
    example=example,
))
