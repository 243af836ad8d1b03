"""Conv2DTranspose: its twin ``LightConv2DTranspose`` (a transposed conv to ``rank`` channels, then
a 1×1 conv), the kernel (kh, kw, f, c) <-> matrix reshapes, its MAC formula, its lowering and its
registry entry.

>>> transpose_matrix_shape((3, 2, 7, 8))
(48, 7)
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .. import linalg
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
    with_weights,
)

# -- the kernel as a matrix ----------------------------------------------------------------

def transpose_matrix(kernel, mode="channel"):
    """Kernel (kh, kw, f, c) as a (kh·kw·c, f) matrix."""
    kh, kw, f, c = kernel.shape
    return np.reshape(np.transpose(kernel, (0, 1, 3, 2)), (kh * kw * c, f))


def transpose_kernel(matrix, shape, mode="channel"):
    kh, kw, f, c = shape
    return np.transpose(np.reshape(matrix, (kh, kw, c, f)), (0, 1, 3, 2))


def transpose_matrix_shape(shape, mode="channel"):
    kh, kw, f, c = (int(d) for d in shape)
    return (kh * kw * c, f)


# -- the twin ------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package=PACKAGE)
class LightConv2DTranspose(_LightLayer):
    """A Conv2DTranspose as a kh×kw transposed conv to ``rank`` channels (the layer's strides,
    padding, output padding, dilation; no bias), then a 1×1 conv to ``filters`` with the bias
    and activation (channels last)."""

    def __init__(self, filters, kernel_size, rank, strides=(1, 1), padding="valid", output_padding=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, **kwargs):
        super().__init__(rank=rank, activation=activation, use_bias=use_bias, **kwargs)
        self.filters = positive_int("filters", filters)
        self.kernel_size = tuple(kernel_size)
        self.strides = tuple(strides)
        self.padding = padding
        self.output_padding = None if output_padding is None else tuple(output_padding)
        self.dilation_rate = tuple(dilation_rate)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        kh, kw = self.kernel_size
        shape = (kh, kw, self.filters, channels)
        rank_in_context(self, lambda: linalg.check_rank(self.rank, transpose_matrix_shape(shape)))
        self.kernel_a = self._kernel("kernel_a", (kh, kw, self.rank, channels))
        self.kernel_b = self._kernel("kernel_b", (1, 1, self.rank, self.filters))
        self.bias = self._bias("bias", self.filters) if self.use_bias else None
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})

    def call(self, inputs):
        x = ops.conv_transpose(inputs, self.kernel_a, strides=self.strides, padding=self.padding,
                               output_padding=self.output_padding, data_format="channels_last",
                               dilation_rate=self.dilation_rate)
        x = ops.matmul(x, self.kernel_b[0, 0])
        return self._bias_and_activation(x)

    def compute_output_shape(self, input_shape):
        return keras.layers.Conv2DTranspose(
            self.filters, self.kernel_size, strides=self.strides, padding=self.padding,
            output_padding=self.output_padding, dilation_rate=self.dilation_rate,
            data_format="channels_last").compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "output_padding": self.output_padding,
                "dilation_rate": self.dilation_rate}

    @classmethod
    def from_conv2d_transpose(cls, layer, rank, factors=None):
        config = layer.get_config()
        kernel = numpy_of(layer.kernel)
        kh, kw, f, c = kernel.shape
        a, b = given_or_svd(layer, factors, lambda: linalg.truncated_svd(transpose_matrix(kernel), rank))
        first = np.transpose(a.reshape(kh, kw, c, rank), (0, 1, 3, 2))
        light = cls(f, (kh, kw), rank, strides=config["strides"], padding=config["padding"],
                    output_padding=config.get("output_padding"), dilation_rate=config["dilation_rate"],
                    **cls._settings_of(layer))
        light.build((None, None, None, c))
        return light._set_factors((first, b.reshape(1, 1, rank, f)), bias_of(layer))


# -- lowering ------------------------------------------------------------------------------

def lower_light_conv2d_transpose(layer, base: str | None = None) -> list:
    """``Conv2DTranspose`` to ``rank`` (no bias), then a 1×1 ``Conv2D`` with bias and activation."""
    base = base_name(layer, base)
    kernel_a, kernel_b = numpy_of(layer.kernel_a), numpy_of(layer.kernel_b)
    first = keras.layers.Conv2DTranspose(
        layer.rank, layer.kernel_size, strides=layer.strides, padding=layer.padding,
        output_padding=layer.output_padding, dilation_rate=layer.dilation_rate, use_bias=False,
        name=f"{base}_a", **factor_settings(layer))
    second = keras.layers.Conv2D(layer.filters, 1, name=f"{base}_b", **factor_settings(layer), **output_settings(layer))
    bias = [numpy_of(layer.bias)] if layer.use_bias else []
    return [with_weights(first, (None, None, None, kernel_a.shape[3]), [kernel_a]),
            with_weights(second, (None, None, None, layer.rank), [kernel_b, *bias])]


# -- MACs and the entry --------------------------------------------------------------------

def transpose_macs(layer, in_shape, out_shape, mode, rank):
    _, h, w, c = in_shape
    _, oh, ow, f = out_shape
    kh, kw = layer.kernel_size
    if rank is None:
        return h * w * kh * kw * c * f
    return h * w * kh * kw * c * rank + oh * ow * rank * f


def example():
    """A tiny model holding one strided Conv2DTranspose named "target", and its input shape."""
    inputs = keras.Input((5, 6, 8))
    layer = keras.layers.Conv2DTranspose(7, (3, 2), strides=(2, 1), padding="same", name="target")
    return keras.Model(inputs, layer(inputs)), inputs.shape


CONV2D_TRANSPOSE = registry.register(registry.LayerType(
    cls=keras.layers.Conv2DTranspose,
    twin=LightConv2DTranspose,
    modes=("channel",),
    build_twin=lambda layer, rank, mode, factors=None: LightConv2DTranspose.from_conv2d_transpose(
        layer, rank, factors),
    macs=transpose_macs,
    lower=lower_light_conv2d_transpose,
    kernel_rank=4,
    to_matrix=transpose_matrix,
    from_matrix=transpose_kernel,
    matrix_shape=transpose_matrix_shape,
    unsupported=channels_last_conv_unsupported,
    example=example,
))
