"""Conv1D: its twin ``LightConv1D`` (two convolutions through ``rank`` channels, channels last),
the kernel (k, c, f) <-> matrix reshapes of its two modes, its MAC formula, its lowering (two
Conv1D layers) and its registry entry.

>>> import keras, numpy as np
>>> conv = keras.layers.Conv1D(8, 3)
>>> conv.build((None, 10, 4))
>>> light = LightConv1D.from_conv1d(conv, rank=4)
>>> tuple(light(np.ones((1, 10, 4), "float32")).shape)
(1, 8, 8)
>>> conv1d_matrix_shape((3, 4, 8), "channel"), conv1d_matrix_shape((3, 4, 8), "spatial")
((12, 8), (4, 24))
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .. import linalg
from ..errors import LightCompressError
from . import registry
from .base import (
    PACKAGE,
    _LightLayer,
    base_name,
    bias_of,
    channels_last_conv_unsupported,
    factor_settings,
    given_or_svd,
    numpy_of,
    output_settings,
    positive_int,
    rank_in_context,
    single,
    with_weights,
)

CONV1D_MODES = ("channel", "spatial")


# -- the kernel as a matrix ----------------------------------------------------------------

def conv1d_matrix(kernel, mode):
    """Kernel (k, c, f) as a matrix: channel (k·c, f); spatial (c, k·f)."""
    k, c, f = kernel.shape
    if mode == "channel":
        return np.reshape(kernel, (k * c, f))
    return np.reshape(np.transpose(kernel, (1, 0, 2)), (c, k * f))


def conv1d_kernel(matrix, shape, mode):
    k, c, f = shape
    if mode == "channel":
        return np.reshape(matrix, (k, c, f))
    return np.transpose(np.reshape(matrix, (c, k, f)), (1, 0, 2))


def conv1d_matrix_shape(shape, mode):
    k, c, f = (int(d) for d in shape)
    return (k * c, f) if mode == "channel" else (c, k * f)


def conv1d_factor_shapes(shape, rank, mode):
    k, c, f = shape
    if mode == "channel":
        return (k, c, rank), (1, rank, f)
    return (1, c, rank), (k, rank, f)


# -- the twin ------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package=PACKAGE)
class LightConv1D(_LightLayer):
    """A Conv1D as two convolutions through ``rank`` channels (channels last).

    - ``"channel"``: a k-wide conv to ``rank`` channels (the layer's strides, padding, dilation),
      then a 1-wide conv to ``filters`` with the bias and activation;
    - ``"spatial"``: a 1-wide conv to ``rank`` channels, then the k-wide conv (strides, padding,
      dilation) to ``filters``: the one-dimensional analogue of splitting space from channels.
    """

    def __init__(self, filters, kernel_size, rank, strides=1, padding="valid", dilation_rate=1,
                 activation=None, use_bias=True, factorization="channel", **kwargs):
        super().__init__(rank=rank, activation=activation, use_bias=use_bias, **kwargs)
        self.filters = positive_int("filters", filters)
        self.kernel_size = positive_int("kernel_size", single(kernel_size))
        self.strides = positive_int("strides", single(strides))
        self.dilation_rate = positive_int("dilation_rate", single(dilation_rate))
        padding = str(padding).lower()
        if padding not in ("valid", "same", "causal"):
            raise LightCompressError(f"padding={padding!r} is invalid; use 'valid', 'same' or 'causal'.")
        self.padding = padding
        if factorization not in CONV1D_MODES:
            raise LightCompressError(
                f"factorization={factorization!r} is unknown; use one of {', '.join(CONV1D_MODES)}.")
        self.factorization = factorization
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def build(self, input_shape):
        channels = input_shape[-1]
        shape = (self.kernel_size, channels, self.filters)
        rank_in_context(self, lambda: linalg.check_rank(self.rank, conv1d_matrix_shape(shape, self.factorization)))
        first, second = conv1d_factor_shapes(shape, self.rank, self.factorization)
        self.kernel_a = self._kernel("kernel_a", first)
        self.kernel_b = self._kernel("kernel_b", second)
        self.bias = self._bias("bias", self.filters) if self.use_bias else None
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={-1: channels})

    def _spatial_conv(self, x, kernel):
        padding = self.padding
        if padding == "causal":
            x = ops.pad(x, ((0, 0), (self.dilation_rate * (self.kernel_size - 1), 0), (0, 0)))
            padding = "valid"
        return ops.conv(x, kernel, strides=self.strides, padding=padding, data_format="channels_last",
                        dilation_rate=self.dilation_rate)

    def call(self, inputs):
        if self.factorization == "channel":
            x = self._spatial_conv(inputs, self.kernel_a)
            x = ops.matmul(x, self.kernel_b[0])
        else:
            x = ops.matmul(inputs, self.kernel_a[0])
            x = self._spatial_conv(x, self.kernel_b)
        return self._bias_and_activation(x)

    def compute_output_shape(self, input_shape):
        conv = keras.layers.Conv1D(self.filters, self.kernel_size, strides=self.strides,
                                   padding=self.padding, dilation_rate=self.dilation_rate)
        return conv.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "dilation_rate": self.dilation_rate,
                "factorization": self.factorization}

    @classmethod
    def from_conv1d(cls, layer, rank, factorization="channel", factors=None):
        """The twin of a built ``keras.layers.Conv1D`` (channels last, groups=1), SVD-initialised."""
        config = layer.get_config()
        kernel = numpy_of(layer.kernel)
        a, b = given_or_svd(layer, factors, lambda: linalg.truncated_svd(conv1d_matrix(kernel, factorization), rank))
        k, c, f = kernel.shape
        if factorization == "channel":
            a, b = a.reshape(k, c, rank), b.reshape(1, rank, f)
        else:  # B is (rank, k·f) in (rank, k, f) order; the conv wants (k, rank, f)
            a, b = a.reshape(1, c, rank), np.transpose(b.reshape(rank, k, f), (1, 0, 2))
        light = cls(kernel.shape[2], kernel.shape[0], rank, strides=config["strides"], padding=config["padding"],
                    dilation_rate=config["dilation_rate"], factorization=factorization, **cls._settings_of(layer))
        light.build((None, None, kernel.shape[1]))
        return light._set_factors((a, b), bias_of(layer))


# -- lowering ------------------------------------------------------------------------------

def lower_light_conv1d(layer, base: str | None = None) -> list:
    """Two ``Conv1D`` layers: channel mode a k-wide conv to ``rank`` then a 1-wide conv; spatial
    mode a 1-wide conv to ``rank`` then the k-wide conv (strides, padding, dilation)."""
    base = base_name(layer, base)
    kernel_a, kernel_b = numpy_of(layer.kernel_a), numpy_of(layer.kernel_b)
    spatial = dict(strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate)
    if layer.factorization == "channel":
        first_args, second_args = dict(kernel_size=layer.kernel_size, **spatial), dict(kernel_size=1)
    else:
        first_args, second_args = dict(kernel_size=1), dict(kernel_size=layer.kernel_size, **spatial)
    first = keras.layers.Conv1D(layer.rank, name=f"{base}_a", use_bias=False, **first_args, **factor_settings(layer))
    second = keras.layers.Conv1D(layer.filters, name=f"{base}_b", **second_args, **factor_settings(layer),
                                 **output_settings(layer))
    bias = [numpy_of(layer.bias)] if layer.use_bias else []
    return [with_weights(first, (None, None, kernel_a.shape[1]), [kernel_a]),
            with_weights(second, (None, None, layer.rank), [kernel_b, *bias])]


# -- MACs and the entry --------------------------------------------------------------------

def conv1d_macs(layer, in_shape, out_shape, mode, rank):
    length, c = in_shape[1], in_shape[2]
    out_len, f = out_shape[1], out_shape[2]
    k = layer.kernel_size[0] if isinstance(layer.kernel_size, (tuple, list)) else layer.kernel_size
    if rank is None:
        return out_len * k * (c // getattr(layer, "groups", 1)) * f
    if mode == "channel":
        return out_len * (k * c * rank + rank * f)
    return length * c * rank + out_len * k * rank * f


def example():
    """A tiny model holding one strided Conv1D named "target", and its input shape."""
    inputs = keras.Input((11, 6))
    layer = keras.layers.Conv1D(10, 3, strides=2, padding="same", activation="relu", name="target")
    return keras.Model(inputs, layer(inputs)), inputs.shape


CONV1D = registry.register(registry.LayerType(
    cls=keras.layers.Conv1D,
    twin=LightConv1D,
    modes=CONV1D_MODES,
    build_twin=lambda layer, rank, mode, factors=None: LightConv1D.from_conv1d(layer, rank, mode, factors),
    macs=conv1d_macs,
    lower=lower_light_conv1d,
    kernel_rank=3,
    to_matrix=conv1d_matrix,
    from_matrix=conv1d_kernel,
    matrix_shape=conv1d_matrix_shape,
    twin_mode=lambda layer: layer.factorization,
    unsupported=channels_last_conv_unsupported,
    example=example,
))
