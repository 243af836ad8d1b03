"""SeparableConv2D: its twin ``LightSeparableConv2D`` (the depthwise conv as it was, then the
pointwise kernel as two factors), its MAC formula, its lowering and its registry entry. The matrix
factorised is the pointwise kernel (c·depth_multiplier, filters); the depthwise kernel is kept.

>>> import keras
>>> layer = keras.layers.SeparableConv2D(12, 3, depth_multiplier=2, padding="same")
>>> layer.build((None, 6, 6, 5))
>>> SEPARABLE_CONV2D.kernel(layer).shape
(10, 12)
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
    common_unsupported,
    conv_geometry,
    factor_settings,
    given_or_svd,
    numpy_of,
    output_settings,
    positive_int,
    rank_in_context,
    with_weights,
)

# -- the twin ------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package=PACKAGE)
class LightSeparableConv2D(_LightLayer):
    """A SeparableConv2D whose pointwise (1×1) kernel is two factors: the depthwise conv as it
    was, then ``c·depth_multiplier → rank → filters`` (channels last)."""

    def __init__(self, filters, kernel_size, rank, strides=(1, 1), padding="valid", depth_multiplier=1,
                 dilation_rate=(1, 1), activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 depthwise_regularizer=None, depthwise_constraint=None, **kwargs):
        super().__init__(rank=rank, activation=activation, use_bias=use_bias, **kwargs)
        self.filters = positive_int("filters", filters)
        self.kernel_size = tuple(kernel_size)
        self.strides = tuple(strides)
        self.padding = padding
        self.depth_multiplier = positive_int("depth_multiplier", depth_multiplier)
        self.dilation_rate = tuple(dilation_rate)
        self.depthwise_initializer = keras.initializers.get(depthwise_initializer)
        self.depthwise_regularizer = keras.regularizers.get(depthwise_regularizer)
        self.depthwise_constraint = keras.constraints.get(depthwise_constraint)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        mid = channels * self.depth_multiplier
        rank_in_context(self, lambda: linalg.check_rank(self.rank, (mid, self.filters)))
        self.depthwise_kernel = self.add_weight(
            name="depthwise_kernel", shape=(*self.kernel_size, channels, self.depth_multiplier),
            initializer=self.depthwise_initializer, regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint)
        self.kernel_a = self._kernel("kernel_a", (1, 1, mid, self.rank))
        self.kernel_b = self._kernel("kernel_b", (1, 1, self.rank, self.filters))
        self.bias = self._bias("bias", self.filters) if self.use_bias else None
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})

    def call(self, inputs):
        x = ops.depthwise_conv(inputs, self.depthwise_kernel, strides=self.strides, padding=self.padding,
                               data_format="channels_last", dilation_rate=self.dilation_rate)
        x = ops.matmul(ops.matmul(x, self.kernel_a[0, 0]), self.kernel_b[0, 0])
        return self._bias_and_activation(x)

    def compute_output_shape(self, input_shape):
        return keras.layers.SeparableConv2D(
            self.filters, self.kernel_size, strides=self.strides, padding=self.padding,
            depth_multiplier=self.depth_multiplier, dilation_rate=self.dilation_rate,
            data_format="channels_last").compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "depth_multiplier": self.depth_multiplier,
                "dilation_rate": self.dilation_rate,
                "depthwise_initializer": keras.initializers.serialize(self.depthwise_initializer),
                "depthwise_regularizer": keras.regularizers.serialize(self.depthwise_regularizer),
                "depthwise_constraint": keras.constraints.serialize(self.depthwise_constraint)}

    @classmethod
    def from_separable(cls, layer, rank, factors=None):
        config = layer.get_config()
        pointwise = numpy_of(layer.pointwise_kernel)[0, 0]
        mid, f = pointwise.shape
        a, b = given_or_svd(layer, factors, lambda: linalg.truncated_svd(pointwise, rank))
        settings = cls._settings_of(layer)
        for key in ("kernel_initializer", "kernel_regularizer"):
            settings.pop(key, None)
        light = cls(f, config["kernel_size"], rank, strides=config["strides"], padding=config["padding"],
                    depth_multiplier=config["depth_multiplier"], dilation_rate=config["dilation_rate"],
                    kernel_initializer=config["pointwise_initializer"],
                    kernel_regularizer=config["pointwise_regularizer"],
                    depthwise_initializer=config["depthwise_initializer"],
                    depthwise_regularizer=config["depthwise_regularizer"],
                    depthwise_constraint=config["depthwise_constraint"], **settings)
        light.build((None, None, None, mid // config["depth_multiplier"]))
        weights = [numpy_of(layer.depthwise_kernel), a[None, None], b[None, None]]
        bias = bias_of(layer)
        light.set_weights(weights + ([bias] if light.use_bias else []))
        return light


# -- lowering ------------------------------------------------------------------------------

def lower_light_separable_conv2d(layer, base: str | None = None) -> list:
    """``SeparableConv2D`` to ``rank`` (the depthwise kernel and the first pointwise factor, no
    bias), then a 1×1 ``Conv2D`` with the bias and activation."""
    base = base_name(layer, base)
    depthwise = numpy_of(layer.depthwise_kernel)
    first = keras.layers.SeparableConv2D(
        layer.rank, layer.kernel_size, strides=layer.strides, padding=layer.padding,
        depth_multiplier=layer.depth_multiplier, dilation_rate=layer.dilation_rate, use_bias=False,
        name=f"{base}_a", dtype=layer.dtype_policy, trainable=layer.trainable,
        depthwise_initializer=layer.depthwise_initializer, depthwise_regularizer=layer.depthwise_regularizer,
        depthwise_constraint=layer.depthwise_constraint, pointwise_initializer=layer.kernel_initializer,
        pointwise_regularizer=layer.kernel_regularizer)
    second = keras.layers.Conv2D(layer.filters, 1, name=f"{base}_b", **factor_settings(layer), **output_settings(layer))
    bias = [numpy_of(layer.bias)] if layer.use_bias else []
    return [with_weights(first, (None, None, None, depthwise.shape[2]), [depthwise, numpy_of(layer.kernel_a)]),
            with_weights(second, (None, None, None, layer.rank), [numpy_of(layer.kernel_b), *bias])]


# -- MACs and the entry --------------------------------------------------------------------

def separable_macs(layer, in_shape, out_shape, mode, rank):
    """MACs per example: the depthwise kh×kw conv on c·depth_multiplier channels, then the
    pointwise (c·depth_multiplier) -> filters product, or -> rank -> filters factorised."""
    c, f, (h, w), _ = conv_geometry(layer, in_shape, out_shape)
    kh, kw = layer.kernel_size
    mid = c * layer.depth_multiplier
    if rank is None:
        return h * w * (kh * kw * mid + mid * f)
    return h * w * (kh * kw * mid + mid * rank + rank * f)


def separable_unsupported(layer):
    if layer.get_config().get("data_format", "channels_last") != "channels_last":
        return "data_format=channels_first (only channels_last is factorised)"
    return common_unsupported(layer)


def _set_pointwise(layer, matrix):
    layer.pointwise_kernel.assign(np.asarray(matrix).reshape(layer.pointwise_kernel.shape))


def example():
    """A tiny model holding one SeparableConv2D named "target", and its input shape."""
    inputs = keras.Input((6, 6, 5))
    layer = keras.layers.SeparableConv2D(12, 3, depth_multiplier=2, padding="same", name="target")
    return keras.Model(inputs, layer(inputs)), inputs.shape


SEPARABLE_CONV2D = registry.register(registry.LayerType(
    cls=keras.layers.SeparableConv2D,
    twin=LightSeparableConv2D,
    modes=("pointwise",),
    build_twin=lambda layer, rank, mode, factors=None: LightSeparableConv2D.from_separable(layer, rank, factors),
    macs=separable_macs,
    lower=lower_light_separable_conv2d,
    unsupported=separable_unsupported,
    kernel_of=lambda layer: keras.ops.convert_to_numpy(layer.pointwise_kernel)[0, 0],
    set_kernel=_set_pointwise,
    kernel_constraint_attr="pointwise_constraint",
    example=example,
))
