"""A toy layer type, written as every module of lightcompress.layers is: the whole diff of adding
a layer type. ``Linear`` is a new Keras layer (``y = x·Wᵀ + b``, W stored (units, input_dim) as
PyTorch stores it); the rest is what lightcompress needs to factorise it."""

import keras
import numpy as np
from keras import ops

from lightcompress import linalg
from lightcompress.layers import registry
from lightcompress.layers.base import _LightLayer, base_name, given_or_svd, positions, with_weights


@keras.saving.register_keras_serializable(package="toy")
class Linear(keras.layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(self.units, input_shape[-1]))
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, x):
        return ops.matmul(x, ops.transpose(self.kernel)) + self.bias

    def get_config(self):
        return {**super().get_config(), "units": self.units}


# The kernel as the matrix factorised, (input_dim, units), and back.
def to_matrix(kernel, mode):
    return np.asarray(kernel).T


def from_matrix(matrix, shape, mode):
    return np.asarray(matrix).T.reshape(shape)


def matrix_shape(shape, mode):
    return int(shape[1]), int(shape[0])


@keras.saving.register_keras_serializable(package="toy")
class LightLinear(_LightLayer):
    """The twin: ``y = (x·A)·B + b``."""

    def __init__(self, units, rank, **kwargs):
        super().__init__(rank=rank, **kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel_a = self._kernel("kernel_a", (input_shape[-1], self.rank))
        self.kernel_b = self._kernel("kernel_b", (self.rank, self.units))
        self.bias = self._bias("bias", self.units)

    def call(self, x):
        return self._bias_and_activation(ops.matmul(ops.matmul(x, self.kernel_a), self.kernel_b))

    def get_config(self):
        return {**super().get_config(), "units": self.units}

    @classmethod
    def from_linear(cls, layer, rank, factors=None):
        matrix = to_matrix(ops.convert_to_numpy(layer.kernel), "linear")
        a, b = given_or_svd(layer, factors, lambda: linalg.truncated_svd(matrix, rank))
        twin = cls(layer.units, rank, name=f"{layer.name}_light")
        twin.build((None, matrix.shape[0]))
        return twin._set_factors((a, b), ops.convert_to_numpy(layer.bias))


def macs(layer, in_shape, out_shape, mode, rank):
    n, m = in_shape[-1], out_shape[-1]
    return positions(out_shape) * (n * m if rank is None else rank * (n + m))


def lower(twin, base=None):
    """Two standard Dense layers."""
    base = base_name(twin, base)
    a = keras.layers.Dense(twin.rank, use_bias=False, name=f"{base}_a")
    b = keras.layers.Dense(twin.units, name=f"{base}_b")
    weights = [ops.convert_to_numpy(w) for w in (twin.kernel_a, twin.kernel_b, twin.bias)]
    return [with_weights(a, (None, weights[0].shape[0]), weights[:1]),
            with_weights(b, (None, twin.rank), weights[1:])]


def example():
    """A tiny model holding one Linear named "target", and its input shape (the parameterised tests
    of tests/test_architecture.py build it)."""
    inputs = keras.Input((40,))
    return keras.Model(inputs, Linear(30, name="target")(inputs)), inputs.shape


LINEAR = registry.register(registry.LayerType(
    cls=Linear,
    twin=LightLinear,
    modes=("linear",),
    build_twin=lambda layer, rank, mode, factors=None: LightLinear.from_linear(layer, rank, factors),
    macs=macs,
    lower=lower,
    to_matrix=to_matrix,
    from_matrix=from_matrix,
    matrix_shape=matrix_shape,
    example=example,
))
