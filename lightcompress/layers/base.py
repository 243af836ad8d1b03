"""What every LightLayer twin shares: the ``_LightLayer`` base (rank, bias, activation and how
factors are made), argument checks, SVD-or-given factors, and the helpers the lowerings share.

A twin's own module (``dense.py``, ``conv2d.py``, ...) holds the twin class, its kernel reshapes,
its MAC formula and its lowering; ``registry.py`` holds the table they register in.

>>> pair("strides", 2)
(2, 2)
>>> base_name(keras.layers.Dense(3, name="fc_light"), None)
'fc'
"""

from __future__ import annotations

import keras
import numpy as np
from keras import activations, constraints, initializers, ops, regularizers

from ..errors import LightCompressError, RankError

PACKAGE = "lightcompress"
LIGHT_SUFFIX = "_light"


def positive_int(name, value):
    """``value`` when it is a positive int, else a one-line error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise LightCompressError(f"{name}={value!r} is invalid; use a positive whole number.")
    return value


def pair(name, value):
    """An int or a pair of ints -> a tuple of two positive ints (as Conv2D accepts them)."""
    both = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        both = tuple(both)
    except TypeError:
        both = ()
    if len(both) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in both
    ):
        raise LightCompressError(
            f"{name}={value!r} is invalid; use a positive whole number or a pair of them."
        )
    return both


class _LightLayer(keras.layers.Layer):
    """Settings shared by the LightLayers: the rank and how kernels and bias are made."""

    def __init__(
        self,
        rank,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.rank = positive_int("rank", rank)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

    def _bias_and_activation(self, x):
        """``x`` plus the bias, then the activation (each where the layer has one)."""
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x) if self.activation is not None else x

    def _kernel(self, name, shape):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )

    def _bias(self, name, size):
        return self.add_weight(
            name=name,
            shape=(size,),
            initializer=self.bias_initializer,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "rank": self.rank,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
        }

    @staticmethod
    def _settings_of(layer):
        """The constructor arguments a LightLayer copies from the Dense/Conv2D it replaces.

        The kernel constraint is not copied: projected onto each factor, a constraint on W (a
        max-norm, non-negativity) would change the product A·B at every training step. The plan
        notes it as dropped."""
        config = layer.get_config()
        keys = (
            "activation",
            "use_bias",
            "kernel_initializer",
            "bias_initializer",
            "kernel_regularizer",
            "bias_regularizer",
            "activity_regularizer",
            "bias_constraint",
            "trainable",
            "dtype",
        )
        settings = {k: config[k] for k in keys if k in config}
        settings["name"] = f"{layer.name}_light"
        return settings

    def _set_factors(self, kernels, bias):
        weights = list(kernels) + ([bias] if self.use_bias else [])
        self.set_weights(weights)
        return self


def kernel_of(layer, ndim, kind, read=True):
    """The layer's kernel as NumPy (``read`` False: an array of its shape only, no copy), checked
    to have ``ndim`` axes (``kind`` names the layer type in the error)."""
    if not layer.built:
        raise LightCompressError(
            f"layer '{layer.name}' is not built, so it has no weights to factorise; "
            f"call the model on data or build it first."
        )
    kernel = ops.convert_to_numpy(layer.kernel) if read else np.broadcast_to(np.int8(0), tuple(layer.kernel.shape))
    if kernel.ndim != ndim:
        raise LightCompressError(
            f"layer '{layer.name}' has a kernel of shape {kernel.shape}, not a {kind} kernel."
        )
    return kernel


def given_or_svd(layer, factors, compute):
    """Matrix factors (A, B): ``factors`` when given (decomposed once elsewhere, e.g. by
    ``analyze.Candidate.factors``), else ``compute()``, a RankError naming the layer."""
    return tuple(factors) if factors is not None else rank_in_context(layer, compute)


def rank_in_context(layer, fn):
    """Run ``fn`` and prefix a RankError with the layer it was computed for."""
    try:
        return fn()
    except RankError as err:
        raise RankError(f"layer '{layer.name}': {err}") from None


def numpy_of(variable):
    """A variable (or tensor) as a NumPy array."""
    return ops.convert_to_numpy(variable)


def bias_of(layer):
    """The layer's bias as NumPy, or None when it has none."""
    bias = getattr(layer, "bias", None)
    return None if bias is None else numpy_of(bias)


def single(value):
    """``(k,)`` -> ``k`` (Conv1D keeps its sizes as 1-tuples); anything else as given."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        return value[0]
    return value


# -- what the lowerings share ---------------------------------------------------------------

def base_name(layer, base):
    """``base`` when given, else the layer's name without a trailing ``_light``."""
    if base is not None:
        return base
    return layer.name.removesuffix(LIGHT_SUFFIX)


def factor_settings(layer):
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


def output_settings(layer):
    """What belongs to the second factor: the layer's bias, activation and output regularizer."""
    return {
        "activation": layer.activation,
        "use_bias": layer.use_bias,
        "bias_initializer": layer.bias_initializer,
        "bias_regularizer": layer.bias_regularizer,
        "bias_constraint": layer.bias_constraint,
        "activity_regularizer": layer.activity_regularizer,
    }


def with_weights(new_layer, input_shape, weights):
    """``new_layer`` built for ``input_shape`` and holding ``weights``."""
    new_layer.build(input_shape)
    new_layer.set_weights(weights)
    return new_layer


# -- what the registry entries share ----------------------------------------------------------

def common_unsupported(layer):
    """Why no layer of any type can be factorised: quantized, LoRA enabled, not built; or None."""
    if getattr(layer, "quantization_mode", None):
        return f"quantized layer ({layer.quantization_mode})"
    if getattr(layer, "lora_enabled", False):
        return "LoRA is enabled on this layer"
    if not layer.built:
        return "layer is not built"
    return None


def channels_last_conv_unsupported(layer):
    """``common_unsupported``, and grouped or channels-first convolutions."""
    config = layer.get_config()
    if config.get("groups", 1) != 1:
        return f"grouped convolution (groups={config['groups']}): each group is its own kernel"
    if config.get("data_format", "channels_last") != "channels_last":
        return f"data_format={config['data_format']} (only channels_last is factorised)"
    return common_unsupported(layer)


def positions(out_shape) -> int:
    """How many times a Dense applies its kernel per example (1 for 2-D inputs)."""
    return int(np.prod([d for d in out_shape[1:-1]])) if len(out_shape) > 2 else 1


def spatial(shape, data_format):
    """(height, width, channels) of an image tensor shape with batch."""
    if data_format == "channels_first":
        return shape[2], shape[3], shape[1]
    return shape[1], shape[2], shape[3]


def conv_geometry(layer, in_shape, out_shape):
    """(channels in, filters out, (out_h, out_w), input width) of a conv call."""
    fmt = getattr(layer, "data_format", "channels_last")
    _, in_w, c = spatial(in_shape, fmt)
    out_h, out_w, f = spatial(out_shape, fmt)
    return c, f, (out_h, out_w), in_w
