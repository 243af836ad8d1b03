"""The one table of layer types lightcompress knows, keyed by class.

A factorisable type (``LayerType``) says, for each of its factorisation modes, how to read the
layer's kernel as a matrix and back, how to build its SVD-initialised LightLayer twin, how many
multiply-accumulates the original and each factorisation cost, and why a given layer of the type
cannot be factorised. Every other module (analyze, plan, factorize, sensitivity, reports) reads
this table; nothing dispatches on class names. ``MAC_COUNTERS`` counts MACs for the other layer
types that cost any (twins included).

Adding a layer type is one ``register(LayerType(...))`` call plus its tests (see
docs/ARCHITECTURE.md).

>>> import keras
>>> entry_for(keras.layers.Dense(4)).modes
('dense',)
>>> entry_for(keras.layers.Conv2D(4, 3)).modes
('channel', 'spatial', 'tucker')
>>> entry_for(keras.layers.Flatten()) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np

from . import lowering
from .. import linalg as svd
from .core import LightConv2D, LightDense
from . import twins


@dataclass(frozen=True)
class LayerType:
    """How lightcompress handles one Keras layer class."""

    cls: type
    modes: tuple  # factorisation modes, the first is the default
    twin: type  # the LightLayer class that replaces it
    kernel_rank: int  # ndim of the kernel, checked before anything reads it
    to_matrix: Callable  # (kernel, mode) -> 2-D matrix
    from_matrix: Callable  # (matrix, kernel_shape, mode) -> kernel
    matrix_shape: Callable  # (kernel_shape, mode) -> (n, m)
    build_twin: Callable  # (layer, rank, mode[, factors]) -> built LightLayer, SVD-initialised
    macs: Callable  # (layer, in_shape, out_shape, mode | None, rank | None) -> MACs per example
    twin_mode: Callable  # (twin layer) -> its mode
    unsupported: Callable = lambda layer: None  # (layer) -> reason it cannot be factorised, or None
    lower: Callable | None = None  # (twin layer, base=name) -> built standard layers computing the same
    # Data-aware factors and modes that are not matrix reshapes (all optional; defaults treat every
    # mode as the matrix ``to_matrix`` gives and the type as not calibratable):
    input_matrix: Callable | None = None  # (layer, inputs tensor) -> 2-D (rows, n): what multiplies the
    #                                       rows of the modes[0] matrix, one row per application
    mode_covariance: Callable = lambda cov, kernel_shape, mode: cov  # modes[0] second moment -> mode's
    factor_fn: Callable | None = None  # (kernel, rank, mode, cov | None) -> the twin's kernels, in order
    approximate_fn: Callable | None = None  # (kernel, rank, mode, cov | None) -> kernel the twin computes
    params_fn: Callable | None = None  # (kernel_shape, mode, rank) -> weights of the factors (no bias)
    max_rank_fn: Callable | None = None  # (kernel_shape, mode) -> the full rank
    kernel_of: Callable | None = None  # (layer) -> the kernel as this entry reads it (default layer.kernel)
    set_kernel: Callable | None = None  # (layer, kernel as read) -> writes it back (default kernel.assign)
    bias_of: Callable | None = None  # (layer) -> the bias variable or None (default layer.bias)
    takes_factors: bool = False  # build_twin accepts factors=(A, B) of the mode matrix (no own SVD)

    @property
    def name(self) -> str:
        return self.cls.__name__

    def kernel(self, layer) -> np.ndarray:
        if self.kernel_of is not None:
            return np.asarray(self.kernel_of(layer))
        return keras.ops.convert_to_numpy(layer.kernel)

    def kernel_info(self, layer) -> tuple[tuple, np.dtype]:
        """(shape, dtype) of the kernel as ``kernel`` reads it, without copying a plain kernel."""
        if self.kernel_of is not None:
            kernel = self.kernel(layer)
            return tuple(int(d) for d in kernel.shape), kernel.dtype
        return (tuple(int(d) for d in layer.kernel.shape),
                np.dtype(keras.backend.standardize_dtype(layer.kernel.dtype)))

    def assign_kernel(self, layer, kernel):
        """Write ``kernel`` (in the shape ``kernel`` reads) into ``layer``."""
        if self.set_kernel is not None:
            return self.set_kernel(layer, kernel)
        return layer.kernel.assign(kernel)

    def bias(self, layer):
        return self.bias_of(layer) if self.bias_of is not None else getattr(layer, "bias", None)

    def make_twin(self, layer, rank, mode, factors=None):
        """The built twin at ``rank`` in ``mode``, from matrix ``factors`` (A, B) decomposed
        elsewhere when given and this type takes them, else SVD-initialised by itself."""
        if factors is not None and self.takes_factors and mode in self.matrix_modes:
            return self.build_twin(layer, rank, mode, factors=factors)
        return self.build_twin(layer, rank, mode)

    def truncated_kernel(self, kernel, rank, mode) -> np.ndarray:
        """The rank-``rank`` approximation of ``kernel`` in ``mode``: what the twin computes."""
        return self.approximate(kernel, rank, mode)

    # -- generic over modes (issue 14) --

    def factor_params(self, kernel_shape, mode, rank) -> int:
        """Weights of the twin's factors at ``rank`` in ``mode``, bias not included."""
        if self.params_fn is not None:
            return int(self.params_fn(kernel_shape, mode, rank))
        n, m = self.matrix_shape(kernel_shape, mode)
        return svd.factorized_params(n, m, rank)

    def max_rank(self, kernel_shape, mode) -> int:
        if self.max_rank_fn is not None:
            return int(self.max_rank_fn(kernel_shape, mode))
        return int(min(self.matrix_shape(kernel_shape, mode)))

    def rank_limit(self, kernel_shape, mode, min_saving: float = 0.0) -> int:
        """Largest rank whose factors hold fewer weights than the kernel and at most
        ``1 - min_saving`` of them; 0 when none does (factor weights grow with the rank)."""
        size = int(np.prod(kernel_shape))
        allowed = min(size - 1, int(np.floor((1.0 - min_saving) * size + 1e-9)))
        lo, hi = 0, self.max_rank(kernel_shape, mode)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.factor_params(kernel_shape, mode, mid) <= allowed:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def mode_cov(self, cov, kernel_shape, mode):
        return None if cov is None else self.mode_covariance(cov, kernel_shape, mode)

    def factors(self, kernel, rank, mode, cov=None) -> list:
        """The twin's kernels at ``rank`` in ``mode``: plain SVD, or data-aware given ``cov`` (the
        second moment of the modes[0] matrix's input rows, see ``input_matrix``)."""
        if self.factor_fn is not None:
            return list(self.factor_fn(kernel, rank, mode, cov))
        return list(self._matrix_factors(kernel, rank, mode, cov))

    def _matrix_factors(self, kernel, rank, mode, cov):
        kernel = np.asarray(kernel)
        matrix = self.to_matrix(kernel, mode)
        mcov = self.mode_cov(cov, kernel.shape, mode)
        return svd.truncated_svd(matrix, rank) if mcov is None else svd.data_aware_svd(matrix, mcov, rank)

    def approximate(self, kernel, rank, mode, cov=None) -> np.ndarray:
        """The kernel (same shape and dtype) that the twin computes at ``rank`` in ``mode``."""
        kernel = np.asarray(kernel)
        if self.approximate_fn is not None:
            return np.asarray(self.approximate_fn(kernel, rank, mode, cov)).astype(kernel.dtype)
        a, b = self._matrix_factors(kernel, rank, mode, cov)
        return self.from_matrix(a @ b, kernel.shape, mode).astype(kernel.dtype)

    def spectrum(self, kernel, mode, cov=None):
        """Singular values of the ``mode`` matrix (output-space ones given ``cov``), or None for a
        mode that is not a matrix reshape."""
        if self.approximate_fn is not None and mode not in self.matrix_modes:
            return None
        matrix = self.to_matrix(np.asarray(kernel), mode)
        mcov = self.mode_cov(cov, np.shape(kernel), mode)
        return svd.singular_values(matrix) if mcov is None else svd.output_spectrum(matrix, mcov)

    @property
    def matrix_modes(self) -> tuple:
        """The modes that are a reshape of the kernel into one matrix."""
        return tuple(m for m in self.modes if m != svd.TUCKER)


REGISTRY: dict[type, LayerType] = {}
MAC_COUNTERS: dict[type, Callable] = {}  # (layer, in_shape, out_shape) -> MACs per example


def register(entry: LayerType) -> LayerType:
    """Add a factorisable layer type; its twin's MACs are counted through the same entry."""
    REGISTRY[entry.cls] = entry
    MAC_COUNTERS[entry.cls] = lambda layer, i, o: entry.macs(layer, i, o, None, None)
    MAC_COUNTERS[entry.twin] = lambda layer, i, o: entry.macs(layer, i, o, entry.twin_mode(layer), layer.rank)
    return entry


def entry_for(layer) -> LayerType | None:
    """The entry for ``layer``'s exact class (subclasses may change what the kernel means)."""
    return REGISTRY.get(type(layer))


def twin_entry(layer) -> LayerType | None:
    """The entry whose twin ``layer`` is (a LightLayer), or None."""
    return next((e for e in REGISTRY.values() if type(layer) is e.twin), None)


def light_info(layer) -> tuple:
    """(rank, mode) of a LightLayer; (None, None) for any other layer."""
    entry = twin_entry(layer)
    return (layer.rank, entry.twin_mode(layer)) if entry else (None, None)


def macs(layer, in_shape, out_shape) -> int | None:
    """MACs per example of one call of ``layer``; None when its type is not counted."""
    counter = MAC_COUNTERS.get(type(layer))
    return None if counter is None else int(counter(layer, in_shape, out_shape))


# -- geometry shared by the entries ---------------------------------------------------------

def positions(out_shape) -> int:
    """How many times a Dense applies its kernel per example (1 for 2-D inputs)."""
    return int(np.prod([d for d in out_shape[1:-1]])) if len(out_shape) > 2 else 1


def _spatial(shape, data_format):
    """(height, width, channels) of an image tensor shape with batch."""
    if data_format == "channels_first":
        return shape[2], shape[3], shape[1]
    return shape[1], shape[2], shape[3]


def conv_geometry(layer, in_shape, out_shape):
    """(channels in, filters out, (out_h, out_w), input width) of a conv call."""
    fmt = getattr(layer, "data_format", "channels_last")
    _, in_w, c = _spatial(in_shape, fmt)
    out_h, out_w, f = _spatial(out_shape, fmt)
    return c, f, (out_h, out_w), in_w


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


# -- Dense ----------------------------------------------------------------------------------

def _dense_macs(layer, in_shape, out_shape, mode, rank):
    n, m = in_shape[-1], out_shape[-1]
    return positions(out_shape) * (n * m if rank is None else rank * (n + m))


def _common_unsupported(layer):
    if getattr(layer, "quantization_mode", None):
        return f"quantized layer ({layer.quantization_mode})"
    if getattr(layer, "lora_enabled", False):
        return "LoRA is enabled on this layer"
    if not layer.built:
        return "layer is not built"
    return None


DENSE = register(LayerType(
    cls=keras.layers.Dense,
    modes=("dense",),
    twin=LightDense,
    kernel_rank=2,
    to_matrix=lambda kernel, mode: np.asarray(kernel),
    from_matrix=lambda matrix, shape, mode: np.asarray(matrix).reshape(shape),
    matrix_shape=lambda shape, mode: (int(shape[0]), int(shape[1])),
    build_twin=lambda layer, rank, mode, factors=None: LightDense.from_dense(layer, rank, factors),
    takes_factors=True,
    macs=_dense_macs,
    twin_mode=lambda layer: "dense",
    unsupported=_common_unsupported,
    lower=lowering.lower_light_dense,
    input_matrix=lambda layer, x: keras.ops.reshape(x, (-1, keras.ops.shape(x)[-1])),
))


# -- Conv2D ---------------------------------------------------------------------------------

def _conv_macs(layer, in_shape, out_shape, mode, rank):
    c, f, out_hw, in_w = conv_geometry(layer, in_shape, out_shape)
    groups = getattr(layer, "groups", 1)
    if mode == svd.TUCKER and rank is not None:
        in_h = _spatial(in_shape, getattr(layer, "data_format", "channels_last"))[0]
        return tucker_conv_macs(rank, getattr(layer, "input_rank", None), layer.kernel_size, c, f, out_hw,
                                (in_h, in_w))
    return factorized_conv_macs(mode, rank, layer.kernel_size, c // groups, f, out_hw, in_w)


def tucker_conv_macs(rank, input_rank, kernel_size, channels, filters, out_hw, in_hw):
    """MACs per example of Tucker-2: 1×1 c→r1 on the input, kh×kw r1→r2 and 1×1 r2→f on the output."""
    r1 = input_rank or svd.tucker_ranks(rank, channels, filters)[0]
    (kh, kw), (oh, ow), (ih, iw) = kernel_size, out_hw, in_hw
    return ih * iw * channels * r1 + oh * ow * (kh * kw * r1 * rank + rank * filters)


def _conv_input_matrix(layer, x):
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


def _conv_factors(kernel, rank, mode, cov):
    if mode == svd.TUCKER:
        return svd.tucker2(kernel, rank, cov)
    a, b = CONV2D._matrix_factors(kernel, rank, mode, cov)
    return svd.factors_to_conv_kernels(a, b, np.shape(kernel), mode)


def _conv_approximate(kernel, rank, mode, cov):
    if mode == svd.TUCKER:
        return svd.tucker_kernel(*svd.tucker2(kernel, rank, cov))
    a, b = CONV2D._matrix_factors(kernel, rank, mode, cov)
    return svd.matrix_to_conv_kernel(a @ b, np.shape(kernel), mode)


def _conv_params(kernel_shape, mode, rank):
    if mode == svd.TUCKER:
        return svd.tucker_params(kernel_shape, rank)
    return svd.factorized_params(*svd.conv_matrix_shape(kernel_shape, mode), rank)


def _conv_max_rank(kernel_shape, mode):
    return int(kernel_shape[3]) if mode == svd.TUCKER else int(min(svd.conv_matrix_shape(kernel_shape, mode)))


def _conv_unsupported(layer):
    groups = layer.get_config().get("groups", 1)
    if groups != 1:
        return f"grouped convolution (groups={groups})"
    return _common_unsupported(layer)


CONV2D = register(LayerType(
    cls=keras.layers.Conv2D,
    modes=svd.CONV_MODES + (svd.TUCKER,),
    twin=LightConv2D,
    kernel_rank=4,
    to_matrix=svd.conv_kernel_to_matrix,
    from_matrix=svd.matrix_to_conv_kernel,
    matrix_shape=svd.conv_matrix_shape,
    build_twin=lambda layer, rank, mode, factors=None: LightConv2D.from_conv2d(layer, rank, mode, factors),
    takes_factors=True,
    macs=_conv_macs,
    twin_mode=lambda layer: layer.factorization,
    unsupported=_conv_unsupported,
    lower=lowering.lower_light_conv2d,
    input_matrix=_conv_input_matrix,
    mode_covariance=svd.mode_covariance,
    factor_fn=_conv_factors,
    approximate_fn=_conv_approximate,
    params_fn=_conv_params,
    max_rank_fn=_conv_max_rank,
))


# -- layers counted but not factorised ------------------------------------------------------

def _depthwise_macs(layer, in_shape, out_shape):
    c, _, (h, w), _ = conv_geometry(layer, in_shape, out_shape)
    kh, kw = layer.kernel_size
    return h * w * kh * kw * c * layer.depth_multiplier


def _separable_macs(layer, in_shape, out_shape):
    c, f, (h, w), _ = conv_geometry(layer, in_shape, out_shape)
    kh, kw = layer.kernel_size
    mid = c * layer.depth_multiplier
    return h * w * (kh * kw * mid + mid * f)


MAC_COUNTERS[keras.layers.DepthwiseConv2D] = _depthwise_macs
MAC_COUNTERS[keras.layers.SeparableConv2D] = _separable_macs


# -- why the layers that are not factorised are left alone -----------------------------------

NOT_FACTORISED: dict[type, str] = {
    keras.layers.DepthwiseConv2D: "depthwise conv: one kh×kw filter per channel, no channel-mixing matrix to "
                                  "factorise (its cost is already that of a rank-1 layer per channel)",
    keras.layers.DepthwiseConv1D: "depthwise conv: one filter per channel, no channel-mixing matrix to factorise",
    keras.layers.BatchNormalization: "per-channel scale and shift, not a matrix",
    keras.layers.LayerNormalization: "per-channel scale and shift, not a matrix",
    keras.layers.GroupNormalization: "per-channel scale and shift, not a matrix",
    keras.layers.Normalization: "per-feature mean and variance, not a matrix",
}
ALREADY_LIGHT = "already factorised (a LightLayer)"


def not_factorised_reason(layer) -> str:
    """Why a weighted layer that is no candidate is left alone."""
    if twin_entry(layer) is not None or type(layer) in COMPOSITE_TWINS:
        return ALREADY_LIGHT
    reason = NOT_FACTORISED.get(type(layer))
    if reason:
        return reason
    if type(layer) in REGISTRY or type(layer) in COMPOSITES:
        return "not a candidate"
    return f"{type(layer).__name__} is not a layer type lightcompress factorises"


def kernel_constraint(layer):
    """The constraint on ``layer``'s factorised kernel, or None (never copied to the factors)."""
    for attr in ("kernel_constraint", "embeddings_constraint", "pointwise_constraint"):
        constraint = getattr(layer, attr, None)
        if constraint is not None:
            return constraint
    inner = getattr(layer, "layer", None)
    return None if inner is None or inner is layer else kernel_constraint(inner)


# -- Conv1D ---------------------------------------------------------------------------------

def _conv1d_macs(layer, in_shape, out_shape, mode, rank):
    length, c = in_shape[1], in_shape[2]
    out_len, f = out_shape[1], out_shape[2]
    k = layer.kernel_size[0] if isinstance(layer.kernel_size, (tuple, list)) else layer.kernel_size
    if rank is None:
        return out_len * k * (c // getattr(layer, "groups", 1)) * f
    if mode == "channel":
        return out_len * (k * c * rank + rank * f)
    return length * c * rank + out_len * k * rank * f


def _channels_last_conv_unsupported(layer):
    config = layer.get_config()
    if config.get("groups", 1) != 1:
        return f"grouped convolution (groups={config['groups']}): each group is its own kernel"
    if config.get("data_format", "channels_last") != "channels_last":
        return f"data_format={config['data_format']} (only channels_last is factorised)"
    return _common_unsupported(layer)


CONV1D = register(LayerType(
    cls=keras.layers.Conv1D,
    modes=twins.CONV1D_MODES,
    twin=twins.LightConv1D,
    kernel_rank=3,
    to_matrix=twins.conv1d_matrix,
    from_matrix=twins.conv1d_kernel,
    matrix_shape=twins.conv1d_matrix_shape,
    build_twin=lambda layer, rank, mode, factors=None: twins.LightConv1D.from_conv1d(layer, rank, mode, factors),
    takes_factors=True,
    macs=_conv1d_macs,
    twin_mode=lambda layer: layer.factorization,
    unsupported=_channels_last_conv_unsupported,
    lower=lowering.lower_light_conv1d,
))


# -- Conv2DTranspose ------------------------------------------------------------------------

def _transpose_macs(layer, in_shape, out_shape, mode, rank):
    _, h, w, c = in_shape
    _, oh, ow, f = out_shape
    kh, kw = layer.kernel_size
    if rank is None:
        return h * w * kh * kw * c * f
    return h * w * kh * kw * c * rank + oh * ow * rank * f


CONV2D_TRANSPOSE = register(LayerType(
    cls=keras.layers.Conv2DTranspose,
    modes=("channel",),
    twin=twins.LightConv2DTranspose,
    kernel_rank=4,
    to_matrix=twins.transpose_matrix,
    from_matrix=twins.transpose_kernel,
    matrix_shape=twins.transpose_matrix_shape,
    build_twin=lambda layer, rank, mode, factors=None: twins.LightConv2DTranspose.from_conv2d_transpose(
        layer, rank, factors),
    takes_factors=True,
    macs=_transpose_macs,
    twin_mode=lambda layer: "channel",
    unsupported=_channels_last_conv_unsupported,
    lower=lowering.lower_light_conv2d_transpose,
))


# -- SeparableConv2D: the pointwise kernel --------------------------------------------------

def _identity_matrix(kernel, mode):
    return np.asarray(kernel)


def _reshaped(matrix, shape, mode):
    return np.asarray(matrix).reshape(shape)


def _matrix_shape_2d(shape, mode):
    return int(shape[0]), int(shape[1])


def _separable_twin_macs(layer, in_shape, out_shape, mode, rank):
    c, f, (h, w), _ = conv_geometry(layer, in_shape, out_shape)
    kh, kw = layer.kernel_size
    mid = c * layer.depth_multiplier
    if rank is None:
        return h * w * (kh * kw * mid + mid * f)
    return h * w * (kh * kw * mid + mid * rank + rank * f)


def _separable_unsupported(layer):
    if layer.get_config().get("data_format", "channels_last") != "channels_last":
        return "data_format=channels_first (only channels_last is factorised)"
    return _common_unsupported(layer)


def _set_pointwise(layer, matrix):
    layer.pointwise_kernel.assign(np.asarray(matrix).reshape(layer.pointwise_kernel.shape))


SEPARABLE_CONV2D = register(LayerType(
    cls=keras.layers.SeparableConv2D,
    modes=("pointwise",),
    twin=twins.LightSeparableConv2D,
    kernel_rank=2,
    to_matrix=_identity_matrix,
    from_matrix=_reshaped,
    matrix_shape=_matrix_shape_2d,
    build_twin=lambda layer, rank, mode, factors=None: twins.LightSeparableConv2D.from_separable(layer, rank, factors),
    takes_factors=True,
    macs=_separable_twin_macs,
    twin_mode=lambda layer: "pointwise",
    unsupported=_separable_unsupported,
    lower=lowering.lower_light_separable_conv2d,
    kernel_of=lambda layer: keras.ops.convert_to_numpy(layer.pointwise_kernel)[0, 0],
    set_kernel=_set_pointwise,
))


# -- EinsumDense ----------------------------------------------------------------------------

def _einsum_macs(layer, in_shape, out_shape, mode, rank):
    kernel_shape = getattr(layer, "kernel_shape", None) or tuple(layer.kernel.shape)
    n, m = twins.einsum_matrix_shape(layer.equation, kernel_shape)
    outputs = int(np.prod([d for d in out_shape[1:]]))
    positions = outputs // max(1, int(np.prod([d for d in _einsum_out_dims(layer, kernel_shape)])))
    return positions * (n * m if rank is None else rank * (n + m))


def _einsum_out_dims(layer, kernel_shape):
    _, outs, _ = twins.einsum_axes(layer.equation)
    return [kernel_shape[i] for i in outs]


def _einsum_unsupported(layer):
    _, _, reason = twins.einsum_axes(layer.equation)
    return reason or _common_unsupported(layer)


def _einsum_kernel(layer):
    return twins.einsum_matrix(layer.equation, keras.ops.convert_to_numpy(layer.kernel))


def _set_einsum_kernel(layer, matrix):
    layer.kernel.assign(twins.einsum_kernel(layer.equation, matrix, tuple(layer.kernel.shape)))


EINSUM_DENSE = register(LayerType(
    cls=keras.layers.EinsumDense,
    modes=("einsum",),
    twin=twins.LightEinsumDense,
    kernel_rank=2,
    to_matrix=_identity_matrix,
    from_matrix=_reshaped,
    matrix_shape=_matrix_shape_2d,
    build_twin=lambda layer, rank, mode, factors=None: twins.LightEinsumDense.from_einsum_dense(
        layer, rank, name=f"{layer.name}_light", factors=factors),
    takes_factors=True,
    macs=_einsum_macs,
    twin_mode=lambda layer: "einsum",
    unsupported=_einsum_unsupported,
    lower=lowering.lower_light_einsum_dense,
    kernel_of=_einsum_kernel,
    set_kernel=_set_einsum_kernel,
))


# -- Embedding ------------------------------------------------------------------------------

def _embedding_macs(layer, in_shape, out_shape, mode, rank):
    """A lookup costs no MACs; the factorised table adds a rank × output_dim product per token."""
    if rank is None:
        return 0
    return positions(out_shape) * rank * out_shape[-1]


def _set_embeddings(layer, table):
    layer.embeddings.assign(table)


EMBEDDING = register(LayerType(
    cls=keras.layers.Embedding,
    modes=("table",),
    twin=twins.LightEmbedding,
    kernel_rank=2,
    to_matrix=_identity_matrix,
    from_matrix=_reshaped,
    matrix_shape=_matrix_shape_2d,
    build_twin=lambda layer, rank, mode, factors=None: twins.LightEmbedding.from_embedding(layer, rank, factors),
    takes_factors=True,
    macs=_embedding_macs,
    twin_mode=lambda layer: "table",
    unsupported=_common_unsupported,
    lower=lowering.lower_light_embedding,
    kernel_of=lambda layer: keras.ops.convert_to_numpy(layer.embeddings),
    set_kernel=_set_embeddings,
    bias_of=lambda layer: None,
))


# -- Dense inside TimeDistributed -----------------------------------------------------------

def _time_distributed_unsupported(layer):
    inner = layer.layer
    if type(inner) is not keras.layers.Dense:
        return f"wraps a {type(inner).__name__}, not a Dense"
    return _common_unsupported(inner) or _common_unsupported(layer)


def _set_inner_kernel(layer, kernel):
    layer.layer.kernel.assign(kernel)


TIME_DISTRIBUTED = register(LayerType(
    cls=keras.layers.TimeDistributed,
    modes=("dense",),
    twin=twins.LightTimeDistributed,
    kernel_rank=2,
    to_matrix=_identity_matrix,
    from_matrix=_reshaped,
    matrix_shape=_matrix_shape_2d,
    build_twin=lambda layer, rank, mode, factors=None: twins.LightTimeDistributed.from_time_distributed(
        layer, rank, factors),
    takes_factors=True,
    macs=_dense_macs,
    twin_mode=lambda layer: "dense",
    unsupported=_time_distributed_unsupported,
    lower=lowering.lower_light_time_distributed,
    kernel_of=lambda layer: keras.ops.convert_to_numpy(layer.layer.kernel),
    set_kernel=_set_inner_kernel,
    bias_of=lambda layer: getattr(layer.layer, "bias", None),
))


# -- composite layers: factorisable parts inside one layer (MultiHeadAttention) ---------------

@dataclass(frozen=True)
class Composite:
    """A layer whose sublayers are factorised (each through its own entry), not the layer itself."""

    cls: type
    twin: type
    parts: Callable  # (layer) -> [(part name, sublayer)]
    build_twin: Callable  # (layer, {part: (rank, mode)}) -> built twin


COMPOSITES: dict[type, Composite] = {}
COMPOSITE_TWINS: dict[type, Composite] = {}
ALL_INPUT_SHAPES: set = set()  # MAC counters given every input's shape (a list), not the first


def register_composite(composite: Composite) -> Composite:
    COMPOSITES[composite.cls] = composite
    COMPOSITE_TWINS[composite.twin] = composite
    for cls in (composite.cls, composite.twin):
        MAC_COUNTERS[cls] = _mha_macs
        ALL_INPUT_SHAPES.add(cls)
    return composite


def _mha_macs(layer, in_shapes, out_shape):
    """Projections (each as its entry counts it) plus the score (Q·Kᵀ) and value (A·V) products."""
    query = in_shapes[0]
    value = in_shapes[1] if len(in_shapes) > 1 else query
    tq, tk = int(np.prod(query[1:-1])), int(np.prod(value[1:-1]))
    total = 0
    for part, sub in twins.mha_parts(layer):
        entry = twin_entry(sub) or entry_for(sub)
        kernel_shape = getattr(sub, "kernel_shape", None) or tuple(sub.kernel.shape)
        n, m = twins.einsum_matrix_shape(sub.equation, kernel_shape)
        rank = getattr(sub, "rank", None) if twin_entry(sub) is entry else None
        per_position = n * m if rank is None else rank * (n + m)
        total += (tk if part in ("key", "value") else tq) * per_position
    heads = layer.num_heads
    return total + heads * tq * tk * layer.key_dim + heads * tq * tk * (layer.value_dim or layer.key_dim)


MULTI_HEAD_ATTENTION = register_composite(Composite(
    cls=keras.layers.MultiHeadAttention,
    twin=twins.LightMultiHeadAttention,
    parts=twins.mha_parts,
    build_twin=lambda layer, ranks: twins.LightMultiHeadAttention.from_mha(
        layer, {part: rank for part, (rank, mode) in ranks.items()}),
))


def composite_for(layer) -> Composite | None:
    return COMPOSITES.get(type(layer))
