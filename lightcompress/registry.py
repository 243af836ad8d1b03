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
('channel', 'spatial')
>>> entry_for(keras.layers.Flatten()) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np

from . import lowering, svd
from .layers import LightConv2D, LightDense


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
    build_twin: Callable  # (layer, rank, mode) -> built LightLayer, SVD-initialised
    macs: Callable  # (layer, in_shape, out_shape, mode | None, rank | None) -> MACs per example
    twin_mode: Callable  # (twin layer) -> its mode
    unsupported: Callable = lambda layer: None  # (layer) -> reason it cannot be factorised, or None
    lower: Callable | None = None  # (twin layer, base=name) -> built standard layers computing the same

    @property
    def name(self) -> str:
        return self.cls.__name__

    def kernel(self, layer) -> np.ndarray:
        return keras.ops.convert_to_numpy(layer.kernel)

    def truncated_kernel(self, kernel, rank, mode) -> np.ndarray:
        """The rank-``rank`` approximation of ``kernel`` in ``mode``: what the twin computes."""
        kernel = np.asarray(kernel)
        a, b = svd.truncated_svd(self.to_matrix(kernel, mode), rank)
        return self.from_matrix(a @ b, kernel.shape, mode).astype(kernel.dtype)


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
    build_twin=lambda layer, rank, mode: LightDense.from_dense(layer, rank),
    macs=_dense_macs,
    twin_mode=lambda layer: "dense",
    unsupported=_common_unsupported,
    lower=lowering.lower_light_dense,
))


# -- Conv2D ---------------------------------------------------------------------------------

def _conv_macs(layer, in_shape, out_shape, mode, rank):
    c, f, out_hw, in_w = conv_geometry(layer, in_shape, out_shape)
    groups = getattr(layer, "groups", 1)
    return factorized_conv_macs(mode, rank, layer.kernel_size, c // groups, f, out_hw, in_w)


def _conv_unsupported(layer):
    groups = layer.get_config().get("groups", 1)
    if groups != 1:
        return f"grouped convolution (groups={groups})"
    return _common_unsupported(layer)


CONV2D = register(LayerType(
    cls=keras.layers.Conv2D,
    modes=svd.CONV_MODES,
    twin=LightConv2D,
    kernel_rank=4,
    to_matrix=svd.conv_kernel_to_matrix,
    from_matrix=svd.matrix_to_conv_kernel,
    matrix_shape=svd.conv_matrix_shape,
    build_twin=lambda layer, rank, mode: LightConv2D.from_conv2d(layer, rank, factorization=mode),
    macs=_conv_macs,
    twin_mode=lambda layer: layer.factorization,
    unsupported=_conv_unsupported,
    lower=lowering.lower_light_conv2d,
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
