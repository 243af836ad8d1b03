"""LightLayer twins of the layer types beyond Dense and Conv2D: Conv1D, Conv2DTranspose, the
pointwise kernel of SeparableConv2D, EinsumDense, Embedding, Dense inside TimeDistributed, and
the projections of MultiHeadAttention.

Each stores its kernel as two thin factors ``A`` (``kernel_a``) and ``B`` (``kernel_b``) whose
product, read through the registry's matrix view of the original kernel, is the kernel; at full
rank each equals the layer it replaces. Written with ``keras.ops`` only; registered serializable.
A kernel constraint is never copied onto the factors (a constraint on W means something else on
A and B, and projecting each factor would change their product); the plan notes it as dropped.

>>> import keras, numpy as np
>>> conv = keras.layers.Conv1D(8, 3)
>>> conv.build((None, 10, 4))
>>> light = LightConv1D.from_conv1d(conv, rank=4)
>>> x = np.ones((1, 10, 4), "float32")
>>> light(x).shape
(1, 8, 8)
"""

from __future__ import annotations

import string

import keras
import numpy as np
from keras import ops

from .. import _keras_private as keras_private, linalg as svd
from ..errors import LightCompressError
from .core import PACKAGE, _LightLayer, _positive_int, _rank_in_context, given_or_svd

CONV1D_MODES = ("channel", "spatial")


def _numpy(x):
    return ops.convert_to_numpy(x)


def _bias_of(layer):
    bias = getattr(layer, "bias", None)
    return None if bias is None else _numpy(bias)


# -- Conv1D -----------------------------------------------------------------------------------

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
        self.filters = _positive_int("filters", filters)
        self.kernel_size = _positive_int("kernel_size", _single(kernel_size))
        self.strides = _positive_int("strides", _single(strides))
        self.dilation_rate = _positive_int("dilation_rate", _single(dilation_rate))
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
        _rank_in_context(self, lambda: svd.check_rank(self.rank, conv1d_matrix_shape(shape, self.factorization)))
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
        kernel = _numpy(layer.kernel)
        a, b = given_or_svd(layer, factors, lambda: svd.truncated_svd(conv1d_matrix(kernel, factorization), rank))
        k, c, f = kernel.shape
        if factorization == "channel":
            a, b = a.reshape(k, c, rank), b.reshape(1, rank, f)
        else:  # B is (rank, k·f) in (rank, k, f) order; the conv wants (k, rank, f)
            a, b = a.reshape(1, c, rank), np.transpose(b.reshape(rank, k, f), (1, 0, 2))
        light = cls(kernel.shape[2], kernel.shape[0], rank, strides=config["strides"], padding=config["padding"],
                    dilation_rate=config["dilation_rate"], factorization=factorization, **cls._settings_of(layer))
        light.build((None, None, kernel.shape[1]))
        return light._set_factors((a, b), _bias_of(layer))


def _single(value):
    if isinstance(value, (tuple, list)) and len(value) == 1:
        return value[0]
    return value


# -- Conv2DTranspose --------------------------------------------------------------------------

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


@keras.saving.register_keras_serializable(package=PACKAGE)
class LightConv2DTranspose(_LightLayer):
    """A Conv2DTranspose as a kh×kw transposed conv to ``rank`` channels (the layer's strides,
    padding, output padding, dilation; no bias), then a 1×1 conv to ``filters`` with the bias
    and activation (channels last)."""

    def __init__(self, filters, kernel_size, rank, strides=(1, 1), padding="valid", output_padding=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, **kwargs):
        super().__init__(rank=rank, activation=activation, use_bias=use_bias, **kwargs)
        self.filters = _positive_int("filters", filters)
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
        _rank_in_context(self, lambda: svd.check_rank(self.rank, transpose_matrix_shape(shape)))
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
        kernel = _numpy(layer.kernel)
        kh, kw, f, c = kernel.shape
        a, b = given_or_svd(layer, factors, lambda: svd.truncated_svd(transpose_matrix(kernel), rank))
        first = np.transpose(a.reshape(kh, kw, c, rank), (0, 1, 3, 2))
        light = cls(f, (kh, kw), rank, strides=config["strides"], padding=config["padding"],
                    output_padding=config.get("output_padding"), dilation_rate=config["dilation_rate"],
                    **cls._settings_of(layer))
        light.build((None, None, None, c))
        return light._set_factors((first, b.reshape(1, 1, rank, f)), _bias_of(layer))


# -- SeparableConv2D: its pointwise kernel ----------------------------------------------------

@keras.saving.register_keras_serializable(package=PACKAGE)
class LightSeparableConv2D(_LightLayer):
    """A SeparableConv2D whose pointwise (1×1) kernel is two factors: the depthwise conv as it
    was, then ``c·depth_multiplier → rank → filters`` (channels last)."""

    def __init__(self, filters, kernel_size, rank, strides=(1, 1), padding="valid", depth_multiplier=1,
                 dilation_rate=(1, 1), activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 depthwise_regularizer=None, depthwise_constraint=None, **kwargs):
        super().__init__(rank=rank, activation=activation, use_bias=use_bias, **kwargs)
        self.filters = _positive_int("filters", filters)
        self.kernel_size = tuple(kernel_size)
        self.strides = tuple(strides)
        self.padding = padding
        self.depth_multiplier = _positive_int("depth_multiplier", depth_multiplier)
        self.dilation_rate = tuple(dilation_rate)
        self.depthwise_initializer = keras.initializers.get(depthwise_initializer)
        self.depthwise_regularizer = keras.regularizers.get(depthwise_regularizer)
        self.depthwise_constraint = keras.constraints.get(depthwise_constraint)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        mid = channels * self.depth_multiplier
        _rank_in_context(self, lambda: svd.check_rank(self.rank, (mid, self.filters)))
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
        pointwise = _numpy(layer.pointwise_kernel)[0, 0]
        mid, f = pointwise.shape
        a, b = given_or_svd(layer, factors, lambda: svd.truncated_svd(pointwise, rank))
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
        weights = [_numpy(layer.depthwise_kernel), a[None, None], b[None, None]]
        bias = _bias_of(layer)
        light.set_weights(weights + ([bias] if light.use_bias else []))
        return light


# -- EinsumDense ------------------------------------------------------------------------------

def einsum_parts(equation):
    """(input, kernel, output) subscripts of an EinsumDense equation."""
    equation = equation.replace(" ", "")
    try:
        inputs, rest = equation.split(",")
        kernel, output = rest.split("->")
    except ValueError:
        raise LightCompressError(f"equation={equation!r} is not of the form 'ab,bc->ac'.") from None
    return inputs, kernel, output


def einsum_axes(equation):
    """(contracted kernel axes, output kernel axes, reason or None) of an EinsumDense equation:
    the kernel is factorised as a (contracted, output) matrix, as MultiHeadAttention uses it."""
    inputs, kernel, output = einsum_parts(equation)
    contracted = [i for i, ch in enumerate(kernel) if ch in inputs and ch not in output]
    outs = [i for i, ch in enumerate(kernel) if ch in output and ch not in inputs]
    shared = [ch for ch in kernel if ch in inputs and ch in output]
    if shared:
        return contracted, outs, f"kernel axes {''.join(shared)} are batch axes of the einsum {equation!r}"
    if len(contracted) + len(outs) != len(kernel):
        return contracted, outs, f"the einsum {equation!r} sums a kernel axis no input has"
    if not contracted or not outs:
        return contracted, outs, f"the einsum {equation!r} has no contracted or no output kernel axis"
    return contracted, outs, None


def einsum_matrix_shape(equation, shape):
    contracted, outs, _ = einsum_axes(equation)
    return (int(np.prod([shape[i] for i in contracted])), int(np.prod([shape[i] for i in outs])))


def einsum_matrix(equation, kernel):
    contracted, outs, _ = einsum_axes(equation)
    return np.reshape(np.transpose(kernel, contracted + outs), einsum_matrix_shape(equation, kernel.shape))


def einsum_kernel(equation, matrix, shape):
    contracted, outs, _ = einsum_axes(equation)
    order = contracted + outs
    full = np.reshape(matrix, [shape[i] for i in order])
    return np.transpose(full, np.argsort(order))


def einsum_factor_equations(equation):
    """The two einsums of the twin: ``x·A`` to ``rank`` along a new axis, then ``·B``."""
    inputs, kernel, output = einsum_parts(equation)
    contracted, outs, _ = einsum_axes(equation)
    r = next(ch for ch in string.ascii_lowercase if ch not in equation)
    c_letters = "".join(kernel[i] for i in contracted)
    o_letters = "".join(kernel[i] for i in outs)
    middle = "".join(ch for ch in inputs if ch not in c_letters) + r
    return f"{inputs},{c_letters}{r}->{middle}", f"{middle},{r}{o_letters}->{output}"


@keras.saving.register_keras_serializable(package=PACKAGE)
class LightEinsumDense(_LightLayer):
    """An EinsumDense whose kernel is two factors: its contracted axes to ``rank``, then ``rank``
    to its output axes (the bias, on ``bias_axes``, and the activation after)."""

    def __init__(self, equation, output_shape, rank, activation=None, bias_axes=None, **kwargs):
        kwargs.pop("use_bias", None)
        super().__init__(rank=rank, activation=activation, use_bias=bias_axes is not None, **kwargs)
        self.equation = equation
        self.partial_output_shape = tuple(output_shape) if isinstance(output_shape, (list, tuple)) else (output_shape,)
        self.bias_axes = bias_axes
        _, _, reason = einsum_axes(equation)
        if reason:
            raise LightCompressError(f"equation={equation!r} cannot be factorised: {reason}.")
        self.first_equation, self.second_equation = einsum_factor_equations(equation)

    def build(self, input_shape):
        kernel_shape, bias_shape, _ = keras_private.einsum_shapes(
            self.equation, self.bias_axes, input_shape, self.partial_output_shape)
        contracted, outs, _ = einsum_axes(self.equation)
        n, m = einsum_matrix_shape(self.equation, kernel_shape)
        _rank_in_context(self, lambda: svd.check_rank(self.rank, (n, m)))
        self.kernel_shape = tuple(kernel_shape)
        self.kernel_a = self._kernel("kernel_a", (*[kernel_shape[i] for i in contracted], self.rank))
        self.kernel_b = self._kernel("kernel_b", (self.rank, *[kernel_shape[i] for i in outs]))
        self.bias = None
        if bias_shape is not None:
            self.bias = self.add_weight(name="bias", shape=tuple(bias_shape), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def call(self, inputs):
        x = ops.einsum(self.second_equation, ops.einsum(self.first_equation, inputs, self.kernel_a), self.kernel_b)
        return self._bias_and_activation(x)

    def compute_output_shape(self, input_shape):
        return tuple(keras_private.einsum_shapes(self.equation, self.bias_axes, input_shape,
                                                 self.partial_output_shape)[2])

    def get_config(self):
        config = {**super().get_config(), "equation": self.equation, "output_shape": self.partial_output_shape,
                  "bias_axes": self.bias_axes}
        config.pop("use_bias", None)
        return config

    @classmethod
    def from_einsum_dense(cls, layer, rank, name=None, factors=None):
        kernel = _numpy(layer.kernel)
        matrix = einsum_matrix(layer.equation, kernel)
        a, b = given_or_svd(layer, factors, lambda: svd.truncated_svd(matrix, rank))
        contracted, outs, _ = einsum_axes(layer.equation)
        settings = cls._settings_of(layer)
        settings.pop("use_bias", None)
        if name is not None:
            settings["name"] = name
        light = cls(layer.equation, layer.partial_output_shape, rank, bias_axes=layer.bias_axes, **settings)
        light.build(_einsum_input_shape(layer.equation, kernel.shape, layer.partial_output_shape))
        a = a.reshape(*[kernel.shape[i] for i in contracted], rank)
        b = b.reshape(rank, *[kernel.shape[i] for i in outs])
        bias = _bias_of(layer)
        light.set_weights([a, b] + ([bias] if bias is not None else []))
        return light


def _einsum_input_shape(equation, kernel_shape, full_output_shape=None):
    # full_output_shape: any trailing part of the output shape (EinsumDense's partial_output_shape)
    """An input shape the equation accepts: sizes from the kernel and the built output shape."""
    inputs, kernel, output = einsum_parts(equation)
    sizes = {}
    if full_output_shape is not None:  # the partial output shape: aligned to the last letters
        out_letters = output.replace("...", "")
        known = list(full_output_shape)
        sizes.update((ch, d) for ch, d in zip(out_letters[len(out_letters) - len(known):], known) if d is not None)
    sizes.update({ch: int(d) for ch, d in zip(kernel, kernel_shape)})
    shape = [sizes.get(ch) for ch in inputs.replace("...", "")]
    shape[0] = None
    if inputs.startswith("..."):
        shape = [None] + shape
    return tuple(shape)


# -- Embedding --------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package=PACKAGE)
class LightEmbedding(keras.layers.Layer):
    """An Embedding whose table (input_dim, output_dim) is two factors, ALBERT-style: each token
    looks up a ``rank``-wide row of ``embeddings_a``, then ``embeddings_b`` maps it to output_dim."""

    def __init__(self, input_dim, output_dim, rank, embeddings_initializer="uniform",
                 embeddings_regularizer=None, mask_zero=False, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = _positive_int("input_dim", input_dim)
        self.output_dim = _positive_int("output_dim", output_dim)
        self.rank = _positive_int("rank", rank)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero

    def build(self, input_shape=None):
        _rank_in_context(self, lambda: svd.check_rank(self.rank, (self.input_dim, self.output_dim)))
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
        table = _numpy(layer.embeddings)
        a, b = given_or_svd(layer, factors, lambda: svd.truncated_svd(table, rank))
        light = cls(table.shape[0], table.shape[1], rank, embeddings_initializer=config["embeddings_initializer"],
                    embeddings_regularizer=config.get("embeddings_regularizer"), mask_zero=config["mask_zero"],
                    name=f"{layer.name}_light", dtype=config.get("dtype"), trainable=config.get("trainable", True))
        light.build()
        light.set_weights([a, b])
        return light


# -- Dense inside TimeDistributed -------------------------------------------------------------

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
        from .core import LightDense

        inner = LightDense.from_dense(layer.layer, rank, factors)
        config = layer.get_config()
        light = cls(inner, name=f"{layer.name}_light", dtype=config.get("dtype"),
                    trainable=config.get("trainable", True))
        light.build((None, None, inner.kernel_a.shape[0]))
        return light


# -- MultiHeadAttention: its four projections -------------------------------------------------

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
        return _einsum_input_shape(sub.equation, kernel_shape, sub.partial_output_shape)

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
