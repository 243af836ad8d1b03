"""Conv2D: its twin ``LightConv2D`` (two thinner convolutions through ``rank`` channels, or the
three of Tucker-2), the kernel <-> matrix reshapes of its modes, its MAC formulas, im2col (the
rows its kernel multiplies, for data-aware factors), its lowering and its registry entry.

A kernel (kh, kw, c, f) becomes a matrix in one of two modes:

- "channel": (kh·kw·c, f), factors a kh×kw conv c→r then a 1×1 conv r→f;
- "spatial": (kh·c, kw·f), factors a kh×1 conv c→r then a 1×kw conv r→f (Jaderberg et al. 2014);

and "tucker" (Tucker-2, ``linalg.tucker2``) is no matrix reshape: a 1×1 conv c→r1, the kh×kw
core r1→r, a 1×1 conv r→f. A 1×1 kernel is tried in channel mode only (``Conv2DType.modes_for``).

>>> import numpy as np
>>> kernel = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
>>> conv_kernel_to_matrix(kernel, "spatial").shape
(8, 15)
>>> bool((matrix_to_conv_kernel(conv_kernel_to_matrix(kernel, "spatial"), kernel.shape, "spatial") == kernel).all())
True
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .. import linalg
from ..errors import LightCompressError, RankError
from . import registry
from .base import (
    PACKAGE,
    _LightLayer,
    base_name,
    common_unsupported,
    conv_geometry,
    factor_settings,
    given_or_svd,
    kernel_of,
    numpy_of,
    output_settings,
    pair,
    positive_int,
    rank_in_context,
    spatial,
    with_weights,
)

CONV_MODES = ("channel", "spatial")
TUCKER = "tucker"  # the third mode (Tucker-2); not a matrix reshape, see linalg.tucker2
FACTORIZATIONS = ("channel", "spatial", "paper", "tucker")  # "paper": from scratch only


# -- the kernel as a matrix ------------------------------------------------------------------

def conv_matrix_shape(kernel_shape, mode: str) -> tuple[int, int]:
    """Shape of the matrix a (kh, kw, c, f) kernel is reshaped to in ``mode``."""
    kh, kw, c, f = _check_kernel_shape(kernel_shape)
    if mode == "channel":
        return kh * kw * c, f
    if mode == "spatial":
        return kh * c, kw * f
    raise RankError(f"conv mode {mode!r} is unknown; use one of {', '.join(CONV_MODES)}.")


def _check_kernel_shape(kernel_shape) -> tuple[int, int, int, int]:
    if len(kernel_shape) != 4:
        raise RankError(
            f"expected a Conv2D kernel of shape (kh, kw, in, out), got shape {tuple(kernel_shape)}."
        )
    return tuple(int(d) for d in kernel_shape)


def conv_kernel_to_matrix(kernel, mode: str) -> np.ndarray:
    """Reshape a Conv2D kernel (kh, kw, c, f) to the matrix factorised in ``mode``."""
    kernel = np.asarray(kernel)
    kh, kw, c, f = _check_kernel_shape(kernel.shape)
    shape = conv_matrix_shape(kernel.shape, mode)
    if mode == "channel":
        return kernel.reshape(shape)
    return kernel.transpose(0, 2, 1, 3).reshape(shape)  # rows (kh, c), columns (kw, f)


def matrix_to_conv_kernel(matrix, kernel_shape, mode: str) -> np.ndarray:
    """The inverse of ``conv_kernel_to_matrix``: a ``mode`` matrix back to (kh, kw, c, f)."""
    kh, kw, c, f = _check_kernel_shape(kernel_shape)
    matrix = np.asarray(matrix)
    if mode == "channel":
        return matrix.reshape(kh, kw, c, f)
    conv_matrix_shape(kernel_shape, mode)  # validates the mode
    return matrix.reshape(kh, c, kw, f).transpose(0, 2, 1, 3)


def conv_factor_shapes(kernel_shape, rank: int, mode: str) -> tuple[tuple, tuple]:
    """Shapes of the two conv kernels that replace a (kh, kw, c, f) kernel at ``rank``."""
    kh, kw, c, f = _check_kernel_shape(kernel_shape)
    if mode == "channel":
        return (kh, kw, c, rank), (1, 1, rank, f)
    if mode == "spatial":
        return (kh, 1, c, rank), (1, kw, rank, f)
    raise RankError(f"conv mode {mode!r} is unknown; use one of {', '.join(CONV_MODES)}.")


def factors_to_conv_kernels(a, b, kernel_shape, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Turn matrix factors A, B of a kernel's ``mode`` matrix into the two conv kernels.

    channel: (kh, kw, c, r) then (1, 1, r, f); spatial: (kh, 1, c, r) then (1, kw, r, f).
    """
    kh, kw, c, f = _check_kernel_shape(kernel_shape)
    rank = a.shape[1]
    first, second = conv_factor_shapes(kernel_shape, rank, mode)
    if mode == "channel":
        return a.reshape(first), b.reshape(second)
    # spatial: rows of A are (kh, c), columns of B are (kw, f)
    return a.reshape(first), b.reshape(rank, kw, f).transpose(1, 0, 2).reshape(second)


# -- the twin --------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package=PACKAGE)
class LightConv2D(_LightLayer):
    """A Conv2D computed as two thinner convolutions through ``rank`` channels.

    ``factorization``:

    - ``"channel"``: a kh×kw conv to ``rank`` channels (the layer's strides, padding, dilation,
      no bias), then a 1×1 conv to ``filters`` with the bias and activation;
    - ``"spatial"``: a kh×1 conv to ``rank`` channels, then a 1×kw conv to ``filters``
      (vertical strides/dilation in the first, horizontal in the second);
    - ``"paper"``: the LightLayers paper's layer (arXiv:2101.02268) for training from scratch:
      a kh×kw conv to ``rank`` channels with a bias and ReLU, then a kh×kw conv ("same", stride 1)
      to ``filters``. It is not linear in its factors, so it has no SVD initialisation.
    - ``"tucker"``: Tucker-2 (Kim et al. 2016): a 1×1 conv to ``input_rank`` channels, the
      kh×kw core to ``rank`` channels (strides, padding, dilation), a 1×1 conv to ``filters`` with
      the bias and activation. ``input_rank`` defaults to ``linalg.tucker_ranks(rank, c, filters)``.

    "channel", "spatial" and "tucker" reproduce a Conv2D exactly at full rank.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        rank,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
        activation=None,
        use_bias=True,
        factorization="channel",
        input_rank=None,
        **kwargs,
    ):
        super().__init__(rank=rank, activation=activation, use_bias=use_bias, **kwargs)
        self.filters = positive_int("filters", filters)
        self.input_rank = None if input_rank is None else positive_int("input_rank", input_rank)
        self.kernel_size = pair("kernel_size", kernel_size)
        self.strides = pair("strides", strides)
        self.dilation_rate = pair("dilation_rate", dilation_rate)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise LightCompressError(
                f"strides={self.strides} with dilation_rate={self.dilation_rate} is not supported "
                f"(nor by Conv2D); use strides of 1 or a dilation rate of 1."
            )
        padding = str(padding).lower()
        if padding not in ("valid", "same"):
            raise LightCompressError(f"padding={padding!r} is invalid; use 'valid' or 'same'.")
        self.padding = padding
        data_format = data_format or keras.config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise LightCompressError(
                f"data_format={data_format!r} is invalid; use 'channels_last' or 'channels_first'."
            )
        self.data_format = data_format
        if factorization not in FACTORIZATIONS:
            raise LightCompressError(
                f"factorization={factorization!r} is unknown; use one of {', '.join(FACTORIZATIONS)}."
            )
        self.factorization = factorization
        if input_rank is not None and factorization != "tucker":
            raise LightCompressError(
                f"input_rank={input_rank} only applies to factorization='tucker'; leave it out for "
                f"{factorization!r}."
            )
        self.input_spec = keras.layers.InputSpec(ndim=4)

    @property
    def _channel_axis(self):
        return -1 if self.data_format == "channels_last" else 1

    def build(self, input_shape):
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise LightCompressError(
                f"layer '{self.name}' needs a known number of input channels; got input shape "
                f"{tuple(input_shape)}."
            )
        kh, kw = self.kernel_size
        kernel_shape = (kh, kw, channels, self.filters)
        if self.factorization == "tucker":
            rank_in_context(self, lambda: linalg.check_rank(self.rank, (self.filters, self.filters)))
            if self.input_rank is None:
                self.input_rank = linalg.tucker_ranks(self.rank, channels, self.filters)[0]
            rank_in_context(self, lambda: linalg.check_rank(self.input_rank, (channels, channels)))
            self.kernel_a = self._kernel("kernel_a", (1, 1, channels, self.input_rank))
            self.kernel_core = self._kernel("kernel_core", (kh, kw, self.input_rank, self.rank))
            self.kernel_b = self._kernel("kernel_b", (1, 1, self.rank, self.filters))
            self.bias_a = None
            self.bias = self._bias("bias", self.filters) if self.use_bias else None
            self.input_spec = keras.layers.InputSpec(ndim=4, axes={self._channel_axis: channels})
            return
        if self.factorization == "paper":
            first, second = (kh, kw, channels, self.rank), (kh, kw, self.rank, self.filters)
        else:
            matrix = conv_matrix_shape(kernel_shape, self.factorization)
            rank_in_context(self, lambda: linalg.check_rank(self.rank, matrix))
            first, second = conv_factor_shapes(kernel_shape, self.rank, self.factorization)
        self.kernel_a = self._kernel("kernel_a", first)
        self.bias_a = self._bias("bias_a", self.rank) if self.factorization == "paper" else None
        self.kernel_b = self._kernel("kernel_b", second)
        self.bias = self._bias("bias", self.filters) if self.use_bias else None
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={self._channel_axis: channels})

    def _conv(self, x, kernel, strides, padding, dilation):
        return ops.conv(
            x,
            kernel,
            strides=strides,
            padding=padding,
            data_format=self.data_format,
            dilation_rate=dilation,
        )

    def _add_bias(self, x, bias):
        if self.data_format == "channels_first":
            bias = ops.reshape(bias, (1, -1, 1, 1))
        return ops.add(x, bias)

    def call(self, inputs):
        (sh, sw), (dh, dw) = self.strides, self.dilation_rate
        if self.factorization == "channel":
            x = self._conv(inputs, self.kernel_a, self.strides, self.padding, self.dilation_rate)
            x = self._conv(x, self.kernel_b, 1, "valid", 1)
        elif self.factorization == "spatial":
            x = self._conv(inputs, self.kernel_a, (sh, 1), self.padding, (dh, 1))
            x = self._conv(x, self.kernel_b, (1, sw), self.padding, (1, dw))
        elif self.factorization == "tucker":
            x = self._conv(inputs, self.kernel_a, 1, "valid", 1)
            x = self._conv(x, self.kernel_core, self.strides, self.padding, self.dilation_rate)
            x = self._conv(x, self.kernel_b, 1, "valid", 1)
        else:
            x = self._conv(inputs, self.kernel_a, self.strides, self.padding, self.dilation_rate)
            x = ops.relu(self._add_bias(x, self.bias_a))
            x = self._conv(x, self.kernel_b, 1, "same", 1)
        if self.bias is not None:
            x = self._add_bias(x, self.bias)
        return self.activation(x) if self.activation is not None else x

    def compute_output_shape(self, input_shape):
        # The same shape as the Conv2D this layer stands for: a symbolic conv says it.
        channels = input_shape[self._channel_axis]
        kernel = keras.KerasTensor((*self.kernel_size, channels, self.filters))
        return self._conv(keras.KerasTensor(input_shape), kernel, self.strides, self.padding,
                          self.dilation_rate).shape

    def get_config(self):
        tucker = {"input_rank": self.input_rank} if self.factorization == "tucker" else {}
        return {
            **super().get_config(),
            **tucker,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "factorization": self.factorization,
        }

    @classmethod
    def from_conv2d(cls, layer, rank, factorization="channel", factors=None):
        """The LightConv2D twin of a built ``keras.layers.Conv2D``, initialised by truncated SVD.

        ``factorization`` is "channel", "spatial" or "tucker" (HOSVD); "paper" has no SVD
        initialisation. ``factors``: computed elsewhere, matrix factors (A, B) of the
        ``factorization`` matrix (channel and spatial) or the three Tucker-2 kernels (tucker, from
        the candidate's one ``linalg.Tucker2``).
        """
        if factorization not in CONV_MODES + (TUCKER,):
            raise LightCompressError(
                f"factorization={factorization!r} cannot be initialised from a trained Conv2D; "
                f"use one of {', '.join(CONV_MODES + (TUCKER,))}."
            )
        config = layer.get_config()
        if config.get("groups", 1) != 1:
            raise LightCompressError(
                f"layer '{layer.name}' is a grouped Conv2D (groups={config['groups']}); "
                f"only groups=1 can be factorised."
            )
        kernel = kernel_of(layer, 4, "Conv2D", read=factors is None)
        if factors is not None and factorization == TUCKER:
            kernels = tuple(factors)
            if [np.shape(k) for k in kernels] != list(linalg.tucker_shapes(kernel.shape, rank)):
                raise LightCompressError("factors=(A, B) initialise the channel and spatial factorisations; "
                                         "tucker decomposes the kernel itself: leave factors out (or give "
                                         "its three kernels, linalg.Tucker2.kernels).")
        elif factorization == TUCKER:
            kernels = rank_in_context(layer, lambda: linalg.tucker2(kernel, rank))
        else:
            matrix = (lambda: conv_kernel_to_matrix(kernel, factorization))
            a, b = given_or_svd(layer, factors, lambda: linalg.truncated_svd(matrix(), rank))
            kernels = factors_to_conv_kernels(a, b, kernel.shape, factorization)
        light = cls(
            filters=kernel.shape[3],
            kernel_size=kernel.shape[:2],
            rank=rank,
            strides=config["strides"],
            padding=config["padding"],
            data_format=config.get("data_format"),
            dilation_rate=config["dilation_rate"],
            factorization=factorization,
            **cls._settings_of(layer),
        )
        channels = kernel.shape[2]
        shape = (None, None, None, channels)
        if light.data_format == "channels_first":
            shape = (None, channels, None, None)
        light.build(shape)
        bias = ops.convert_to_numpy(layer.bias) if light.use_bias else None
        return light._set_factors(kernels, bias)


# -- lowering ------------------------------------------------------------------------------

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
    base = base_name(layer, base)
    if layer.factorization == "tucker":
        return lower_tucker_conv2d(layer, base)
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
    kernel_a, kernel_b = numpy_of(layer.kernel_a), numpy_of(layer.kernel_b)
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
                                **first_args, **factor_settings(layer))
    second = keras.layers.Conv2D(layer.filters, name=f"{base}_b", data_format=layer.data_format,
                                 **second_args, **factor_settings(layer), **output_settings(layer))
    channels = kernel_a.shape[2]
    if layer.data_format == "channels_last":
        shape_in, shape_mid = (None, None, None, channels), (None, None, None, layer.rank)
    else:
        shape_in, shape_mid = (None, channels, None, None), (None, layer.rank, None, None)
    weights_a = [kernel_a] + ([numpy_of(layer.bias_a)] if mode == "paper" else [])
    weights_b = [kernel_b] + ([numpy_of(layer.bias)] if layer.use_bias else [])
    return [with_weights(first, shape_in, weights_a), with_weights(second, shape_mid, weights_b)]


def lower_tucker_conv2d(layer: LightConv2D, base: str | None = None) -> list:
    """A Tucker-2 LightConv2D as three ``Conv2D`` layers: ``<base>_a`` 1×1 to ``input_rank`` (no
    bias), ``<base>_core`` kh×kw to ``rank`` (strides, padding, dilation; no bias), ``<base>_b``
    1×1 to ``filters`` with the bias and activation."""
    base = base_name(layer, base)
    fmt = layer.data_format
    kernels = [numpy_of(layer.kernel_a), numpy_of(layer.kernel_core), numpy_of(layer.kernel_b)]
    first = keras.layers.Conv2D(layer.input_rank, 1, use_bias=False, name=f"{base}_a", data_format=fmt,
                                **factor_settings(layer))
    core = keras.layers.Conv2D(layer.rank, layer.kernel_size, strides=layer.strides, padding=layer.padding,
                               dilation_rate=layer.dilation_rate, use_bias=False, name=f"{base}_core",
                               data_format=fmt, **factor_settings(layer))
    last = keras.layers.Conv2D(layer.filters, 1, name=f"{base}_b", data_format=fmt, **factor_settings(layer),
                               **output_settings(layer))

    def shape(channels):
        return (None, None, None, channels) if fmt == "channels_last" else (None, channels, None, None)

    bias = [numpy_of(layer.bias)] if layer.use_bias else []
    return [with_weights(first, shape(kernels[0].shape[2]), [kernels[0]]),
            with_weights(core, shape(layer.input_rank), [kernels[1]]),
            with_weights(last, shape(layer.rank), [kernels[2], *bias])]


# -- MACs ------------------------------------------------------------------------------------

def factorized_conv_macs(mode, rank, kernel_size, channels, filters, out_hw, in_width):
    """MACs per example of a k×k conv c→f at ``rank`` in ``mode`` (None: the full conv)."""
    (kh, kw), (out_h, out_w), c, f, r = kernel_size, out_hw, channels, filters, rank
    if r is None:
        return out_h * out_w * kh * kw * c * f
    if mode == "channel":
        return out_h * out_w * (kh * kw * c * r + r * f)
    if mode == "spatial":
        # kh×1 conv keeps the input width (stride 1 across), then 1×kw conv to the output
        return out_h * in_width * kh * c * r + out_h * out_w * kw * r * f
    return out_h * out_w * (kh * kw * c * r + kh * kw * r * f)  # paper: k×k then k×k ("same")


def conv2d_macs(layer, in_shape, out_shape, mode, rank):
    """MACs per example of a Conv2D (``rank`` None) or of its twin in ``mode``."""
    c, f, out_hw, in_w = conv_geometry(layer, in_shape, out_shape)
    groups = getattr(layer, "groups", 1)
    if mode == TUCKER and rank is not None:
        in_h = spatial(in_shape, getattr(layer, "data_format", "channels_last"))[0]
        return tucker_conv_macs(rank, getattr(layer, "input_rank", None), layer.kernel_size, c, f, out_hw,
                                (in_h, in_w))
    return factorized_conv_macs(mode, rank, layer.kernel_size, c // groups, f, out_hw, in_w)


def tucker_conv_macs(rank, input_rank, kernel_size, channels, filters, out_hw, in_hw):
    """MACs per example of Tucker-2: 1×1 c→r1 on the input, kh×kw r1→r2 and 1×1 r2→f on the output."""
    r1 = input_rank or linalg.tucker_ranks(rank, channels, filters)[0]
    (kh, kw), (oh, ow), (ih, iw) = kernel_size, out_hw, in_hw
    return ih * iw * channels * r1 + oh * ow * (kh * kw * r1 * rank + rank * filters)


def conv2d_input_matrix(layer, x):
    """im2col: every patch the conv multiplies, one row each in (kh, kw, c) order (the rows of the
    channel matrix), gathered by strided slices of the padded input with the layer's strides,
    padding and dilation (Keras/TensorFlow "same": the extra row or column of padding at the end)."""
    x = np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float32)
    if layer.data_format == "channels_first":
        x = x.transpose(0, 2, 3, 1)
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
    _, h, w, c = x.shape
    span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if layer.padding == "same":
        oh, ow = -(-h // sh), -(-w // sw)
        pad_h, pad_w = max((oh - 1) * sh + span_h - h, 0), max((ow - 1) * sw + span_w - w, 0)
        x = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    else:
        oh, ow = (h - span_h) // sh + 1, (w - span_w) // sw + 1
    patches = np.empty((x.shape[0], oh, ow, kh, kw, c), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            patches[:, :, :, i, j, :] = x[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw, :]
    return patches.reshape(-1, kh * kw * c)


def conv2d_unsupported(layer):
    groups = layer.get_config().get("groups", 1)
    if groups != 1:
        return f"grouped convolution (groups={groups})"
    return common_unsupported(layer)


class Conv2DType(registry.LayerType):
    """The Conv2D entry: two matrix modes (channel, spatial) and Tucker-2, which is not one matrix."""

    @property
    def matrix_modes(self) -> tuple:
        return tuple(m for m in self.modes if m != TUCKER)

    def factor_params(self, kernel_shape, mode, rank) -> int:
        if mode == TUCKER:
            return int(linalg.tucker_params(kernel_shape, rank))
        return linalg.factorized_params(*conv_matrix_shape(kernel_shape, mode), rank)

    def max_rank(self, kernel_shape, mode) -> int:
        return int(kernel_shape[3]) if mode == TUCKER else int(min(conv_matrix_shape(kernel_shape, mode)))

    def mode_cov(self, cov, kernel_shape, mode):
        return linalg.mode_covariance(cov, kernel_shape, mode)

    def modes_for(self, kernel_shape) -> tuple:
        """Only "channel" for a 1×1 kernel: its spatial matrix (kh·c, kw·f) is the channel matrix
        (c, f) itself, so spatial mode is the same factorisation again; and Tucker-2's
        c→r1→r2→f approximation U1·U1ᵀ·W·U2·U2ᵀ has rank at most min(r1, r2), so it never has
        less error than the plain SVD at that rank and always costs more (c·r1 + r1·r2 + r2·f
        weights against (c + f)·min(r1, r2)). Trying them only costs time (Tucker-2 on every
        MobileNet or ResNet-bottleneck 1×1 conv)."""
        if tuple(kernel_shape[:2]) == (1, 1):
            return ("channel",)
        return tuple(self.modes)

    def prepare(self, kernel, mode, cov=None):
        return linalg.tucker2_basis(kernel, cov) if mode == TUCKER else None

    def factors(self, kernel, rank, mode, cov=None) -> list:
        if mode == TUCKER:
            return list(linalg.tucker2(kernel, rank, cov))
        a, b = self._matrix_factors(kernel, rank, mode, cov)
        return list(factors_to_conv_kernels(a, b, np.shape(kernel), mode))

    def approximate(self, kernel, rank, mode, cov=None) -> np.ndarray:
        kernel = np.asarray(kernel)
        if mode == TUCKER:
            approx = linalg.tucker2_basis(kernel, cov).approximate(rank)
        else:
            a, b = self._matrix_factors(kernel, rank, mode, cov)
            approx = matrix_to_conv_kernel(a @ b, np.shape(kernel), mode)
        return np.asarray(approx).astype(kernel.dtype)


def example():
    """A tiny model holding one strided Conv2D named "target", and its input shape."""
    inputs = keras.Input((9, 8, 6))
    layer = keras.layers.Conv2D(10, (3, 2), strides=(2, 1), padding="same", name="target")
    return keras.Model(inputs, layer(inputs)), inputs.shape


CONV2D = registry.register(Conv2DType(
    cls=keras.layers.Conv2D,
    twin=LightConv2D,
    modes=CONV_MODES + (TUCKER,),
    build_twin=lambda layer, rank, mode, factors=None: LightConv2D.from_conv2d(layer, rank, mode, factors),
    macs=conv2d_macs,
    lower=lower_light_conv2d,
    kernel_rank=4,
    to_matrix=conv_kernel_to_matrix,
    from_matrix=matrix_to_conv_kernel,
    matrix_shape=conv_matrix_shape,
    twin_mode=lambda layer: layer.factorization,
    unsupported=conv2d_unsupported,
    input_matrix=conv2d_input_matrix,
    example=example,
))
