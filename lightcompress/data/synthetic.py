"""Random inputs shaped for a model: what a conversion is checked on when no data set is given,
and what latency is timed on (token ids for inputs that feed an Embedding, floats otherwise)."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from .. import _keras_private as keras_private
from ..errors import OptionError, UnsupportedModelError


def token_vocabularies(model) -> dict:
    """{index of a model input: vocabulary size} for inputs that feed an Embedding directly."""
    positions = {id(t): i for i, t in enumerate(getattr(model, "inputs", None) or [])}
    vocab = {}
    for nodes in keras_private.graph_nodes(model).values():
        for node in nodes:
            size = getattr(node.operation, "input_dim", None)
            if size is None or not isinstance(node.operation, keras.layers.Layer):
                continue
            for tensor in node.input_tensors:
                i = positions.get(id(tensor))
                if i is not None:
                    vocab[i] = min(vocab.get(i, size), int(size))
    return vocab


def input_specs(model) -> list:
    """``model.inputs``; for a subclassed model (no graph inputs) tensors shaped as it was built."""
    inputs = getattr(model, "inputs", None)
    if inputs:
        return list(inputs)
    shape = (model.get_build_config() or {}).get("input_shape") if hasattr(model, "get_build_config") else None
    if not isinstance(shape, (list, tuple)):
        raise UnsupportedModelError(
            f"model '{model.name}' ({type(model).__name__}) declares no input shape (never built, or built on "
            f"a dict of inputs); give a data set so real inputs can be used.")
    shapes = shape if shape and isinstance(shape[0], (list, tuple)) else [shape]
    return [keras.KerasTensor(tuple(s), name=f"input_{i}") for i, s in enumerate(shapes)]


def model_inputs_like(model, batch=32, seed=0, sizes: InputSizes | None = None, named=False):
    """Random inputs shaped for ``model``'s inputs (unknown sizes other than batch fail, unless
    ``sizes`` (``input_sizes``) fills them): token ids below the vocabulary size for inputs that
    feed an Embedding (or have an integer dtype), floats in [0, 1) otherwise. ``named``: a dict by
    input name for a model called on a dict of inputs (a keras-hub task), as ``predict`` wants it."""
    rng = np.random.default_rng(seed)
    vocab = token_vocabularies(model)
    specs = input_specs(model)
    shapes = sizes.shapes if sizes is not None else [tuple(t.shape)[1:] for t in specs]
    arrays = []
    for i, (tensor, shape) in enumerate(zip(specs, shapes)):
        if any(d is None for d in shape):
            raise UnsupportedModelError(
                f"input '{tensor.name}' has an unknown size {tuple(tensor.shape)}; give a data set so "
                f"real inputs can be used."
            )
        integer = "int" in str(tensor.dtype)
        if i in vocab or integer:
            dtype = str(tensor.dtype) if integer else "float32"
            arrays.append(rng.integers(0, vocab.get(i, 2), size=(batch, *shape)).astype(dtype))
        else:
            arrays.append(rng.random((batch, *shape), dtype=np.float32))
    structure = _input_structure(model) if named else None
    if isinstance(structure, dict):
        by_tensor = {id(t): a for t, a in zip(specs, arrays)}
        if all(id(t) in by_tensor for t in structure.values()):
            return {key: by_tensor[id(t)] for key, t in structure.items()}
    return arrays if len(arrays) > 1 else arrays[0]


def _input_structure(model):
    """What ``model`` is called on (a dict of named inputs for a keras-hub task), or None."""
    try:
        return model.input
    except (AttributeError, ValueError):  # never called, or several calls
        return None


# -- sizes for inputs of unknown size ----------------------------------------------------------

@dataclass(frozen=True)
class InputSizes:
    """The size of one example of each of a model's inputs, unknown sizes filled where something
    said them, and what said them."""

    shapes: tuple  # per input, without the batch axis; None where nothing said the size
    source: str | None = None  # "the backbone's max_sequence_length (64)"; None: the model fixes them all
    unknown: str | None = None  # why a size stays unknown ("input 'x' has an unknown size (None, None)")

    @property
    def note(self) -> str | None:
        """"inputs sized from ..." when a size was filled, else None."""
        return None if self.source is None else f"inputs sized from {self.source}"


def shape_text(dims) -> str:
    """``(224, 224, 3)`` as the option is written: ``224,224,3``."""
    return ",".join("N" if d is None else str(d) for d in dims)


def check_input_shape(value) -> tuple | None:
    """``input_shape`` (one example's size: ``128``, ``(224, 224, 3)`` or ``"224,224,3"``) as a
    tuple of positive whole numbers; None stays None."""
    if value is None:
        return None
    try:
        if isinstance(value, str):
            dims = tuple(int(part) for part in value.replace(" ", "").strip("()").split(","))
        else:
            dims = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    except ValueError:
        dims = ()
    if not dims or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in dims):
        raise OptionError("is not the size of one example", option="input_shape", value=value,
                          allowed="positive whole numbers separated by commas, e.g. input_shape=128 (a sequence "
                                  "length) or input_shape=224,224,3")
    return tuple(int(d) for d in dims)


def _positive(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def _sized(value) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(_positive(d) for d in value)


def declared_size(model) -> tuple | None:
    """(sizes, what declared them) for a model that says its inputs' size where its graph does not:
    a keras-hub task's preprocessor (``sequence_length``, its image converter's ``image_size``), a
    keras-hub backbone (``max_sequence_length``, ``image_shape``), the task's or the model's own;
    None when nothing does."""
    preprocessor = getattr(model, "preprocessor", None)
    length = getattr(preprocessor, "sequence_length", None)
    if _positive(length):
        return (int(length),), f"the preprocessor's sequence_length ({length})"
    image = getattr(getattr(preprocessor, "image_converter", None), "image_size", None)
    if _sized(image):
        return tuple(int(d) for d in image), f"the preprocessor's image_size ({shape_text(image)})"
    for owner, whose in ((getattr(model, "backbone", None), "the backbone's"), (model, "the model's")):
        length = getattr(owner, "max_sequence_length", None)
        if _positive(length):
            return (int(length),), f"{whose} max_sequence_length ({length})"
        image = getattr(owner, "image_shape", None)
        if _sized(image):
            return tuple(int(d) for d in image), f"{whose} image_shape ({shape_text(image)})"
    return None


def _fill(shape, dims):
    """``shape`` (one example, None where unknown) with ``dims`` put in: all its sizes (the known
    ones must agree) or only its unknown ones, in order; None when ``dims`` fits neither way."""
    unknown = [i for i, d in enumerate(shape) if d is None]
    if len(dims) == len(shape):
        if any(d is not None and d != g for d, g in zip(shape, dims)):
            return None
        return tuple(dims)
    if len(dims) == len(unknown):
        filled = list(shape)
        for i, d in zip(unknown, dims):
            filled[i] = d
        return tuple(filled)
    return None


def input_sizes(model, input_shape=None) -> InputSizes:
    """One example's size for each of ``model``'s inputs: as the model's inputs fix them, their
    unknown sizes filled from ``input_shape`` (one example's size, see ``check_input_shape``: all
    of an input's sizes, or only its unknown ones) when given, else from what the model declares
    (``declared_size``). A given size that does not fit an input is refused; a declared one that
    does not fit is not used. What stays unknown is said in ``unknown``, not raised."""
    given = check_input_shape(input_shape)
    specs = input_specs(model)
    shapes = [tuple(t.shape)[1:] for t in specs]
    if given is not None:
        filled = []
        for tensor, shape in zip(specs, shapes):
            if None not in shape and len(given) != len(shape):
                filled.append(shape)  # an input the model sizes itself, of another rank (a mask, a scalar)
                continue
            fitted = _fill(shape, given)
            if fitted is None:
                unknown = sum(d is None for d in shape)
                only = (f" or only its unknown ones (input_shape={shape_text([None] * unknown)})"
                        if 0 < unknown < len(shape) else "")
                raise OptionError(
                    f"input_shape={shape_text(given)} does not fit input '{tensor.name}' of shape "
                    f"{tuple(tensor.shape)}; give one example's size (input_shape={shape_text(shape)}){only}, "
                    f"or drop it.")
            filled.append(fitted)
        source = f"the input shape given ({shape_text(given)})" if filled != shapes else None
        return InputSizes(tuple(filled), source)
    if all(None not in shape for shape in shapes):
        return InputSizes(tuple(shapes))
    declared = declared_size(model)
    if declared is not None:
        fitted = [shape if None not in shape else _fill(shape, declared[0]) for shape in shapes]
        if all(f is not None for f in fitted):
            return InputSizes(tuple(fitted), declared[1])
    tensor = next(t for t, shape in zip(specs, shapes) if None in shape)
    return InputSizes(tuple(shapes), None, f"input '{tensor.name}' has an unknown size {tuple(tensor.shape)} and "
                                           f"the model declares none")
