"""EinsumDense: its twin ``LightEinsumDense`` (the contracted kernel axes to ``rank``, then
``rank`` to the output axes), the kernel <-> (contracted, output) matrix reshapes read from the
equation, its MAC formula, its lowering (two EinsumDense layers) and its registry entry.

>>> einsum_axes("abc,cde->abde")
([0], [1, 2], None)
>>> einsum_factor_equations("abc,cde->abde")
('abc,cf->abf', 'abf,fde->abde')
"""

from __future__ import annotations

import string

import keras
import numpy as np
from keras import ops

from .. import _keras_private as keras_private
from .. import linalg
from ..errors import LightCompressError
from . import registry
from .base import (
    PACKAGE,
    _LightLayer,
    base_name,
    bias_of,
    common_unsupported,
    factor_settings,
    given_or_svd,
    numpy_of,
    rank_in_context,
)

# -- the kernel as a matrix ----------------------------------------------------------------

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


# -- the twin ------------------------------------------------------------------------------

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
        rank_in_context(self, lambda: linalg.check_rank(self.rank, (n, m)))
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
        kernel = numpy_of(layer.kernel)
        matrix = einsum_matrix(layer.equation, kernel)
        a, b = given_or_svd(layer, factors, lambda: linalg.truncated_svd(matrix, rank))
        contracted, outs, _ = einsum_axes(layer.equation)
        settings = cls._settings_of(layer)
        settings.pop("use_bias", None)
        if name is not None:
            settings["name"] = name
        light = cls(layer.equation, layer.partial_output_shape, rank, bias_axes=layer.bias_axes, **settings)
        light.build(einsum_input_shape(layer.equation, kernel.shape, layer.partial_output_shape))
        a = a.reshape(*[kernel.shape[i] for i in contracted], rank)
        b = b.reshape(rank, *[kernel.shape[i] for i in outs])
        bias = bias_of(layer)
        light.set_weights([a, b] + ([bias] if bias is not None else []))
        return light


def einsum_input_shape(equation, kernel_shape, full_output_shape=None):
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


# -- lowering ------------------------------------------------------------------------------

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
    base = base_name(layer, base)
    kernel_a, kernel_b = numpy_of(layer.kernel_a), numpy_of(layer.kernel_b)
    common = {k: v for k, v in factor_settings(layer).items()}

    in_shape = einsum_input_shape(layer.equation, layer.kernel_shape, layer.partial_output_shape)
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
    second.set_weights([kernel_b] + ([numpy_of(layer.bias)] if layer.bias is not None else []))
    return [first, second]


# -- MACs and the entry --------------------------------------------------------------------

def einsum_macs(layer, in_shape, out_shape, mode, rank):
    kernel_shape = getattr(layer, "kernel_shape", None) or tuple(layer.kernel.shape)
    n, m = einsum_matrix_shape(layer.equation, kernel_shape)
    outputs = int(np.prod([d for d in out_shape[1:]]))
    positions = outputs // max(1, int(np.prod([d for d in _einsum_out_dims(layer, kernel_shape)])))
    return positions * (n * m if rank is None else rank * (n + m))


def _einsum_out_dims(layer, kernel_shape):
    _, outs, _ = einsum_axes(layer.equation)
    return [kernel_shape[i] for i in outs]


def einsum_unsupported(layer):
    _, _, reason = einsum_axes(layer.equation)
    return reason or common_unsupported(layer)


def _einsum_kernel(layer):
    return einsum_matrix(layer.equation, keras.ops.convert_to_numpy(layer.kernel))


def _set_einsum_kernel(layer, matrix):
    layer.kernel.assign(einsum_kernel(layer.equation, matrix, tuple(layer.kernel.shape)))


def example():
    """A tiny model holding one EinsumDense named "target" (a MultiHeadAttention-style query
    projection), and its input shape."""
    inputs = keras.Input((4, 12))
    layer = keras.layers.EinsumDense("abc,cde->abde", (4, 3, 5), bias_axes="de", name="target")
    return keras.Model(inputs, layer(inputs)), inputs.shape


EINSUM_DENSE = registry.register(registry.LayerType(
    cls=keras.layers.EinsumDense,
    twin=LightEinsumDense,
    modes=("einsum",),
    build_twin=lambda layer, rank, mode, factors=None: LightEinsumDense.from_einsum_dense(
        layer, rank, name=f"{layer.name}_light", factors=factors),
    macs=einsum_macs,
    lower=lower_light_einsum_dense,
    unsupported=einsum_unsupported,
    kernel_of=_einsum_kernel,
    set_kernel=_set_einsum_kernel,
    example=example,
))
