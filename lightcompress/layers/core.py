"""LightDense and LightConv2D: layers whose kernel is stored as two thin factors.

Written with ``keras.ops`` only, so they run on the TensorFlow, JAX and PyTorch backends. Both
are registered serializable: once ``lightcompress`` is imported, a model holding them loads from
``.keras`` or ``.h5`` with no ``custom_objects``.

>>> import keras
>>> from lightcompress import LightDense
>>> dense = keras.layers.Dense(16)
>>> dense.build((None, 32))
>>> light = LightDense.from_dense(dense, rank=4)
>>> light.count_params() == 4 * (32 + 16) + 16
True
"""

from __future__ import annotations

import numpy as np
import keras
from keras import activations, constraints, initializers, ops, regularizers

from .. import linalg as svd
from ..errors import LightCompressError, RankError

FACTORIZATIONS = ("channel", "spatial", "paper", "tucker")
PACKAGE = "lightcompress"


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise LightCompressError(f"{name}={value!r} is invalid; use a positive whole number.")
    return value


def _pair(name, value):
    """An int or a pair of ints -> a tuple of two positive ints (as Conv2D accepts them)."""
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        pair = tuple(pair)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair
    ):
        raise LightCompressError(
            f"{name}={value!r} is invalid; use a positive whole number or a pair of them."
        )
    return pair


class _LightLayer(keras.layers.Layer):
    """Settings shared by both LightLayers: the rank and how kernels and bias are made."""

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
        self.rank = _positive_int("rank", rank)
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


def _kernel_of(layer, kind, read=True):
    """The layer's kernel as NumPy (``read`` False: an array of its shape only, no copy)."""
    if not layer.built:
        raise LightCompressError(
            f"layer '{layer.name}' is not built, so it has no weights to factorise; "
            f"call the model on data or build it first."
        )
    kernel = ops.convert_to_numpy(layer.kernel) if read else np.broadcast_to(np.int8(0), tuple(layer.kernel.shape))
    if kernel.ndim != {"Dense": 2, "Conv2D": 4}[kind]:
        raise LightCompressError(
            f"layer '{layer.name}' has a kernel of shape {kernel.shape}, not a {kind} kernel."
        )
    return kernel


def given_or_svd(layer, factors, compute):
    """Matrix factors (A, B): ``factors`` when given (decomposed once elsewhere, e.g. by
    ``analyze.Candidate.factors``), else ``compute()``, a RankError naming the layer."""
    return tuple(factors) if factors is not None else _rank_in_context(layer, compute)


def _rank_in_context(layer, fn):
    """Run ``fn`` and prefix a RankError with the layer it was computed for."""
    try:
        return fn()
    except RankError as err:
        raise RankError(f"layer '{layer.name}': {err}") from None


@keras.saving.register_keras_serializable(package=PACKAGE)
class LightDense(_LightLayer):
    """A Dense layer whose kernel is the product of two factors: ``y = act((x·A)·B + bias)``.

    A has shape (input_dim, rank) and B (rank, units); the layer holds
    ``rank·(input_dim + units) (+ units)`` parameters instead of ``input_dim·units (+ units)``.
    ``kernel_initializer``, ``kernel_regularizer`` and ``kernel_constraint`` apply to each factor.
    """

    def __init__(self, units, rank, activation=None, use_bias=True, **kwargs):
        super().__init__(rank=rank, activation=activation, use_bias=use_bias, **kwargs)
        self.units = _positive_int("units", units)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        self.supports_masking = True

    def build(self, input_shape):
        input_dim = input_shape[-1]
        _rank_in_context(self, lambda: svd.check_rank(self.rank, (input_dim, self.units)))
        self.kernel_a = self._kernel("kernel_a", (input_dim, self.rank))
        self.kernel_b = self._kernel("kernel_b", (self.rank, self.units))
        self.bias = self._bias("bias", self.units) if self.use_bias else None
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: input_dim})

    def call(self, inputs):
        return self._bias_and_activation(ops.matmul(ops.matmul(inputs, self.kernel_a), self.kernel_b))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units}

    @classmethod
    def from_dense(cls, layer, rank, factors=None):
        """The LightDense twin of a built ``keras.layers.Dense``, initialised by truncated SVD
        (or from given matrix ``factors`` (A, B) of its kernel)."""
        kernel = _kernel_of(layer, "Dense", read=factors is None)
        a, b = given_or_svd(layer, factors, lambda: svd.truncated_svd(kernel, rank))
        light = cls(units=kernel.shape[1], rank=rank, **cls._settings_of(layer))
        light.build((None, kernel.shape[0]))
        bias = ops.convert_to_numpy(layer.bias) if light.use_bias else None
        return light._set_factors((a, b), bias)


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
      the bias and activation. ``input_rank`` defaults to ``svd.tucker_ranks(rank, c, filters)``.

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
        self.filters = _positive_int("filters", filters)
        self.input_rank = None if input_rank is None else _positive_int("input_rank", input_rank)
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.strides = _pair("strides", strides)
        self.dilation_rate = _pair("dilation_rate", dilation_rate)
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
            _rank_in_context(self, lambda: svd.check_rank(self.rank, (self.filters, self.filters)))
            if self.input_rank is None:
                self.input_rank = svd.tucker_ranks(self.rank, channels, self.filters)[0]
            _rank_in_context(self, lambda: svd.check_rank(self.input_rank, (channels, channels)))
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
            matrix = svd.conv_matrix_shape(kernel_shape, self.factorization)
            _rank_in_context(self, lambda: svd.check_rank(self.rank, matrix))
            first, second = svd.conv_factor_shapes(kernel_shape, self.rank, self.factorization)
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
        initialisation. ``factors``: matrix factors (A, B) of the ``factorization`` matrix
        computed elsewhere (channel and spatial).
        """
        if factorization not in svd.CONV_MODES + (svd.TUCKER,):
            raise LightCompressError(
                f"factorization={factorization!r} cannot be initialised from a trained Conv2D; "
                f"use one of {', '.join(svd.CONV_MODES + (svd.TUCKER,))}."
            )
        config = layer.get_config()
        if config.get("groups", 1) != 1:
            raise LightCompressError(
                f"layer '{layer.name}' is a grouped Conv2D (groups={config['groups']}); "
                f"only groups=1 can be factorised."
            )
        if factors is not None and factorization == svd.TUCKER:
            raise LightCompressError("factors=(A, B) initialise the channel and spatial factorisations; "
                                     "tucker decomposes the kernel itself: leave factors out.")
        kernel = _kernel_of(layer, "Conv2D", read=factors is None)
        if factorization == svd.TUCKER:
            kernels = _rank_in_context(layer, lambda: svd.tucker2(kernel, rank))
        else:
            matrix = (lambda: svd.conv_kernel_to_matrix(kernel, factorization))
            a, b = given_or_svd(layer, factors, lambda: svd.truncated_svd(matrix(), rank))
            kernels = svd.factors_to_conv_kernels(a, b, kernel.shape, factorization)
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
