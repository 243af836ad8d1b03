"""Lowering: LightLayers back into the standard Keras layers they compute, for deployment.

A LightDense is exactly ``Dense(rank, no bias)`` then ``Dense(units, bias, activation)``; a
LightConv2D is two ``Conv2D`` layers whose settings depend on its factorisation. A lowered model
holds only standard Keras layers, so its ``.keras`` file, SavedModel, ``.tflite`` or ``.onnx``
loads and runs where lightcompress is not installed, and every converter knows its ops.

Each function takes one built LightLayer and returns built standard layers holding its
weights; the registry names the function for each twin (its ``lower`` field), and
``lowered.lower_model`` applies them to a whole model.

>>> from lightcompress import LightDense
>>> light = LightDense(8, rank=2, name="fc_light")
>>> light.build((None, 16))
>>> [layer.name for layer in lower_light_dense(light)]
['fc_a', 'fc_b']
"""

from __future__ import annotations

import keras
from keras import ops

from ..errors import UnsupportedModelError
from .core import LightConv2D, LightDense

LIGHT_SUFFIX = "_light"


def _base_name(layer, base):
    if base is not None:
        return base
    name = layer.name
    return name[: -len(LIGHT_SUFFIX)] if name.endswith(LIGHT_SUFFIX) else name


def _numpy(variable):
    return ops.convert_to_numpy(variable)


def _common(layer):
    """Settings every factor layer takes from the LightLayer: dtype policy, trainability, init.

    Kernel regularizers apply to each factor, as they do in the LightLayer. Kernel constraints
    are not copied: a constraint written for a full kernel (a max-norm, non-negativity of W)
    means something else on its factors.
    """
    return {
        "dtype": layer.dtype_policy,
        "trainable": layer.trainable,
        "kernel_initializer": layer.kernel_initializer,
        "kernel_regularizer": layer.kernel_regularizer,
    }


def _output_settings(layer):
    """What belongs to the second factor: the layer's bias, activation and output regularizer."""
    return {
        "activation": layer.activation,
        "use_bias": layer.use_bias,
        "bias_initializer": layer.bias_initializer,
        "bias_regularizer": layer.bias_regularizer,
        "bias_constraint": layer.bias_constraint,
        "activity_regularizer": layer.activity_regularizer,
    }


def _with_weights(new_layer, input_shape, weights):
    new_layer.build(input_shape)
    new_layer.set_weights(weights)
    return new_layer


def lower_light_dense(layer: LightDense, base: str | None = None) -> list:
    """``[Dense(rank, no bias) named <base>_a, Dense(units, bias, activation) named <base>_b]``.

    ``base`` defaults to the layer's name without a trailing ``_light``.
    """
    base = _base_name(layer, base)
    kernel_a, kernel_b = _numpy(layer.kernel_a), _numpy(layer.kernel_b)
    first = keras.layers.Dense(layer.rank, use_bias=False, name=f"{base}_a", **_common(layer))
    second = keras.layers.Dense(layer.units, name=f"{base}_b", **_common(layer), **_output_settings(layer))
    bias = [_numpy(layer.bias)] if layer.use_bias else []
    return [
        _with_weights(first, (None, kernel_a.shape[0]), [kernel_a]),
        _with_weights(second, (None, layer.rank), [kernel_b, *bias]),
    ]


def lower_light_conv2d(layer: LightConv2D, base: str | None = None) -> list:
    """Two ``Conv2D`` layers computing ``layer``, named ``<base>_a`` and ``<base>_b``.

    Mirrors ``LightConv2D.call``:

    - channel: kh×kw conv to ``rank`` (strides, padding, dilation; no bias), then a 1×1 "valid"
      conv to ``filters`` with the bias and activation;
    - spatial: kh×1 conv (strides (sh, 1), dilation (dh, 1), the layer's padding; no bias), then
      a 1×kw conv (strides (1, sw), dilation (1, dw), the layer's padding) with bias, activation;
    - paper: kh×kw conv to ``rank`` with ``bias_a`` and ReLU (strides, padding, dilation), then a
      kh×kw "same" stride-1 conv to ``filters`` with the bias and activation.
    """
    base = _base_name(layer, base)
    if layer.factorization == "tucker":
        return lower_tucker_conv2d(layer, base)
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
    kernel_a, kernel_b = _numpy(layer.kernel_a), _numpy(layer.kernel_b)
    mode = layer.factorization
    if mode == "channel":
        first_args = dict(kernel_size=(kh, kw), strides=(sh, sw), padding=layer.padding,
                          dilation_rate=(dh, dw), use_bias=False)
        second_args = dict(kernel_size=(1, 1), strides=(1, 1), padding="valid", dilation_rate=(1, 1))
    elif mode == "spatial":
        first_args = dict(kernel_size=(kh, 1), strides=(sh, 1), padding=layer.padding,
                          dilation_rate=(dh, 1), use_bias=False)
        second_args = dict(kernel_size=(1, kw), strides=(1, sw), padding=layer.padding,
                           dilation_rate=(1, dw))
    else:  # paper
        first_args = dict(kernel_size=(kh, kw), strides=(sh, sw), padding=layer.padding,
                          dilation_rate=(dh, dw), use_bias=True, activation="relu",
                          bias_initializer=layer.bias_initializer,
                          bias_regularizer=layer.bias_regularizer,
                          bias_constraint=layer.bias_constraint)
        second_args = dict(kernel_size=(kh, kw), strides=(1, 1), padding="same", dilation_rate=(1, 1))
    first = keras.layers.Conv2D(layer.rank, name=f"{base}_a", data_format=layer.data_format,
                                **first_args, **_common(layer))
    second = keras.layers.Conv2D(layer.filters, name=f"{base}_b", data_format=layer.data_format,
                                 **second_args, **_common(layer), **_output_settings(layer))
    channels = kernel_a.shape[2]
    if layer.data_format == "channels_last":
        shape_in, shape_mid = (None, None, None, channels), (None, None, None, layer.rank)
    else:
        shape_in, shape_mid = (None, channels, None, None), (None, layer.rank, None, None)
    weights_a = [kernel_a] + ([_numpy(layer.bias_a)] if mode == "paper" else [])
    weights_b = [kernel_b] + ([_numpy(layer.bias)] if layer.use_bias else [])
    return [_with_weights(first, shape_in, weights_a), _with_weights(second, shape_mid, weights_b)]


def lower_tucker_conv2d(layer: LightConv2D, base: str | None = None) -> list:
    """A Tucker-2 LightConv2D as three ``Conv2D`` layers: ``<base>_a`` 1×1 to ``input_rank`` (no
    bias), ``<base>_core`` kh×kw to ``rank`` (strides, padding, dilation; no bias), ``<base>_b``
    1×1 to ``filters`` with the bias and activation."""
    base = _base_name(layer, base)
    fmt = layer.data_format
    kernels = [_numpy(layer.kernel_a), _numpy(layer.kernel_core), _numpy(layer.kernel_b)]
    first = keras.layers.Conv2D(layer.input_rank, 1, use_bias=False, name=f"{base}_a", data_format=fmt,
                                **_common(layer))
    core = keras.layers.Conv2D(layer.rank, layer.kernel_size, strides=layer.strides, padding=layer.padding,
                               dilation_rate=layer.dilation_rate, use_bias=False, name=f"{base}_core",
                               data_format=fmt, **_common(layer))
    last = keras.layers.Conv2D(layer.filters, 1, name=f"{base}_b", data_format=fmt, **_common(layer),
                               **_output_settings(layer))

    def shape(channels):
        return (None, None, None, channels) if fmt == "channels_last" else (None, channels, None, None)

    bias = [_numpy(layer.bias)] if layer.use_bias else []
    return [_with_weights(first, shape(kernels[0].shape[2]), [kernels[0]]),
            _with_weights(core, shape(layer.input_rank), [kernels[1]]),
            _with_weights(last, shape(layer.rank), [kernels[2], *bias])]


# -- the twins of twins.py --------------------------------------------------------------------

def lower_light_conv1d(layer, base: str | None = None) -> list:
    """Two ``Conv1D`` layers: channel mode a k-wide conv to ``rank`` then a 1-wide conv; spatial
    mode a 1-wide conv to ``rank`` then the k-wide conv (strides, padding, dilation)."""
    base = _base_name(layer, base)
    kernel_a, kernel_b = _numpy(layer.kernel_a), _numpy(layer.kernel_b)
    spatial = dict(strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate)
    if layer.factorization == "channel":
        first_args, second_args = dict(kernel_size=layer.kernel_size, **spatial), dict(kernel_size=1)
    else:
        first_args, second_args = dict(kernel_size=1), dict(kernel_size=layer.kernel_size, **spatial)
    first = keras.layers.Conv1D(layer.rank, name=f"{base}_a", use_bias=False, **first_args, **_common(layer))
    second = keras.layers.Conv1D(layer.filters, name=f"{base}_b", **second_args, **_common(layer),
                                 **_output_settings(layer))
    bias = [_numpy(layer.bias)] if layer.use_bias else []
    return [_with_weights(first, (None, None, kernel_a.shape[1]), [kernel_a]),
            _with_weights(second, (None, None, layer.rank), [kernel_b, *bias])]


def lower_light_conv2d_transpose(layer, base: str | None = None) -> list:
    """``Conv2DTranspose`` to ``rank`` (no bias), then a 1×1 ``Conv2D`` with bias and activation."""
    base = _base_name(layer, base)
    kernel_a, kernel_b = _numpy(layer.kernel_a), _numpy(layer.kernel_b)
    first = keras.layers.Conv2DTranspose(
        layer.rank, layer.kernel_size, strides=layer.strides, padding=layer.padding,
        output_padding=layer.output_padding, dilation_rate=layer.dilation_rate, use_bias=False,
        name=f"{base}_a", **_common(layer))
    second = keras.layers.Conv2D(layer.filters, 1, name=f"{base}_b", **_common(layer), **_output_settings(layer))
    bias = [_numpy(layer.bias)] if layer.use_bias else []
    return [_with_weights(first, (None, None, None, kernel_a.shape[3]), [kernel_a]),
            _with_weights(second, (None, None, None, layer.rank), [kernel_b, *bias])]


def lower_light_separable_conv2d(layer, base: str | None = None) -> list:
    """``SeparableConv2D`` to ``rank`` (the depthwise kernel and the first pointwise factor, no
    bias), then a 1×1 ``Conv2D`` with the bias and activation."""
    base = _base_name(layer, base)
    depthwise = _numpy(layer.depthwise_kernel)
    first = keras.layers.SeparableConv2D(
        layer.rank, layer.kernel_size, strides=layer.strides, padding=layer.padding,
        depth_multiplier=layer.depth_multiplier, dilation_rate=layer.dilation_rate, use_bias=False,
        name=f"{base}_a", dtype=layer.dtype_policy, trainable=layer.trainable,
        depthwise_initializer=layer.depthwise_initializer, depthwise_regularizer=layer.depthwise_regularizer,
        depthwise_constraint=layer.depthwise_constraint, pointwise_initializer=layer.kernel_initializer,
        pointwise_regularizer=layer.kernel_regularizer)
    second = keras.layers.Conv2D(layer.filters, 1, name=f"{base}_b", **_common(layer), **_output_settings(layer))
    bias = [_numpy(layer.bias)] if layer.use_bias else []
    return [_with_weights(first, (None, None, None, depthwise.shape[2]), [depthwise, _numpy(layer.kernel_a)]),
            _with_weights(second, (None, None, None, layer.rank), [_numpy(layer.kernel_b), *bias])]


def _middle_output_shape(equation, rank, in_shape):
    """EinsumDense ``output_shape`` of the first factor: the input's sizes, then the rank."""
    inputs, middle = equation.split(",")[0], equation.split("->")[1]
    letters = inputs.replace("...", "")
    sizes = dict(zip(letters, list(in_shape)[len(in_shape) - len(letters):]))
    kept = middle.replace("...", "")[:-1]
    if not middle.startswith("..."):
        kept = kept[1:]  # the batch axis is not part of output_shape
    return tuple([sizes.get(ch) for ch in kept] + [rank])


def lower_light_einsum_dense(layer, base: str | None = None) -> list:
    """Two ``EinsumDense`` layers: the contracted axes to ``rank``, then ``rank`` to the output
    axes with the bias and activation."""
    base = _base_name(layer, base)
    kernel_a, kernel_b = _numpy(layer.kernel_a), _numpy(layer.kernel_b)
    common = {k: v for k, v in _common(layer).items()}
    from .twins import _einsum_input_shape

    in_shape = _einsum_input_shape(layer.equation, layer.kernel_shape, layer.partial_output_shape)
    first = keras.layers.EinsumDense(layer.first_equation,
                                     _middle_output_shape(layer.first_equation, layer.rank, in_shape),
                                     name=f"{base}_a", **common)
    second = keras.layers.EinsumDense(
        layer.second_equation, layer.partial_output_shape, bias_axes=layer.bias_axes, name=f"{base}_b",
        activation=layer.activation, bias_initializer=layer.bias_initializer,
        bias_regularizer=layer.bias_regularizer, bias_constraint=layer.bias_constraint,
        activity_regularizer=layer.activity_regularizer, **common)
    first.build(in_shape)
    first.set_weights([kernel_a])
    second.build(first.compute_output_shape(in_shape))
    second.set_weights([kernel_b] + ([_numpy(layer.bias)] if layer.bias is not None else []))
    return [first, second]


def lower_light_embedding(layer, base: str | None = None) -> list:
    """``Embedding(input_dim, rank)`` (masking as the layer), then ``Dense(output_dim, no bias)``."""
    base = _base_name(layer, base)
    first = keras.layers.Embedding(layer.input_dim, layer.rank, mask_zero=layer.mask_zero, name=f"{base}_a",
                                   dtype=layer.dtype_policy, trainable=layer.trainable,
                                   embeddings_initializer=layer.embeddings_initializer,
                                   embeddings_regularizer=layer.embeddings_regularizer)
    second = keras.layers.Dense(layer.output_dim, use_bias=False, name=f"{base}_b", dtype=layer.dtype_policy,
                                trainable=layer.trainable)
    return [_with_weights(first, (None, None), [_numpy(layer.kernel_a)]),
            _with_weights(second, (None, layer.rank), [_numpy(layer.kernel_b)])]


def lower_light_time_distributed(layer, base: str | None = None) -> list:
    """``TimeDistributed(Dense(rank))`` then ``TimeDistributed(Dense(units))``: the inner
    LightDense lowered and each half wrapped again."""
    base = _base_name(layer, base)
    first, second = lower_light_dense(layer.layer, base=f"{base}_inner")
    wrapped = []
    for half, suffix in ((first, "a"), (second, "b")):
        td = keras.layers.TimeDistributed(half, name=f"{base}_{suffix}", dtype=layer.dtype_policy)
        td.build((None, None, half.kernel.shape[0]))
        wrapped.append(td)
    return wrapped
