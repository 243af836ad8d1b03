"""Random inputs shaped for a model: what a conversion is checked on when no data set is given,
and what latency is timed on (token ids for inputs that feed an Embedding, floats otherwise)."""

from __future__ import annotations

import keras
import numpy as np

from ..errors import UnsupportedModelError


def _token_vocabularies(model) -> dict:
    """{index of a model input: vocabulary size} for inputs that feed an Embedding directly."""
    from .. import _keras_private as keras_private

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


def model_inputs_like(model, batch=32, seed=0):
    """Random inputs shaped for ``model``'s inputs (unknown sizes other than batch fail): token
    ids below the vocabulary size for inputs that feed an Embedding (or have an integer dtype),
    floats in [0, 1) otherwise."""
    rng = np.random.default_rng(seed)
    vocab = _token_vocabularies(model)
    arrays = []
    for i, tensor in enumerate(input_specs(model)):
        shape = tuple(tensor.shape)[1:]
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
    return arrays if len(arrays) > 1 else arrays[0]

