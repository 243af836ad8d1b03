"""Truncated SVD and the kernel reshapes behind every factorisation. NumPy only: no Keras here.

A weight matrix W (n, m) is approximated by two factors A (n, r) and B (r, m) with
A = U_r·sqrt(S_r) and B = sqrt(S_r)·V_rᵀ, the best rank-r approximation (Eckart–Young).

>>> import numpy as np
>>> w = np.arange(12.0).reshape(4, 3)
>>> a, b = truncated_svd(w, 2)
>>> a.shape, b.shape, bool(np.allclose(a @ b, w))
((4, 2), (2, 3), True)

Conv2D kernels (kh, kw, c, f) become matrices in one of two modes:

- "channel": (kh·kw·c, f), factors a kh×kw conv c→r then a 1×1 conv r→f;
- "spatial": (kh·c, kw·f), factors a kh×1 conv c→r then a 1×kw conv r→f (Jaderberg et al. 2014).
"""

from __future__ import annotations

import numpy as np

from .errors import RankError

CONV_MODES = ("channel", "spatial")


def check_rank(rank, shape) -> int:
    """Return ``rank`` as an int if it is a valid rank for a matrix of ``shape``, else raise."""
    limit = min(shape)
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)):
        raise RankError(
            f"rank={rank!r} is not an integer; use a whole number from 1 to {limit} "
            f"for a matrix of shape {tuple(shape)}."
        )
    if not 1 <= rank <= limit:
        raise RankError(
            f"rank={rank} is out of range for a matrix of shape {tuple(shape)}; "
            f"use a whole number from 1 to {limit}."
        )
    return int(rank)


def _check_matrix(matrix) -> np.ndarray:
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise RankError(f"expected a non-empty 2-D matrix, got an array of shape {matrix.shape}.")
    return matrix


def singular_values(matrix) -> np.ndarray:
    """Singular values of ``matrix``, largest first, in float64."""
    return np.linalg.svd(_check_matrix(matrix).astype(np.float64), compute_uv=False)


def truncated_svd(matrix, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Factors A (n, rank) and B (rank, m) of the best rank-``rank`` approximation of ``matrix``.

    The singular values are split as a square root on both sides, so neither factor dominates
    when both are fine-tuned. The factors keep the input's floating dtype.
    """
    matrix = _check_matrix(matrix)
    rank = check_rank(rank, matrix.shape)
    u, s, vt = np.linalg.svd(matrix.astype(np.float64), full_matrices=False)
    root = np.sqrt(s[:rank])
    dtype = matrix.dtype if np.issubdtype(matrix.dtype, np.floating) else np.float32
    a = (u[:, :rank] * root).astype(dtype)
    b = (root[:, None] * vt[:rank]).astype(dtype)
    return a, b


def retained_energy(s) -> np.ndarray:
    """Fraction of the squared Frobenius norm kept at each rank: element k is for rank k + 1."""
    power = np.square(np.asarray(s, dtype=np.float64))
    total = power.sum()
    if total == 0.0:
        return np.ones_like(power)
    return np.cumsum(power) / total


def reconstruction_error(s, rank: int) -> float:
    """Relative Frobenius error ||W - A·B|| / ||W|| of the rank-``rank`` truncation.

    By Eckart–Young this is sqrt(sum of the dropped squared singular values) / ||W||.
    """
    s = np.asarray(s, dtype=np.float64)
    rank = check_rank(rank, (len(s), len(s)))
    total = float(np.sum(s**2))
    if total == 0.0:
        return 0.0
    return float(np.sqrt(np.sum(s[rank:] ** 2) / total))


def rank_for_energy(s, fraction: float) -> int:
    """Smallest rank that keeps at least ``fraction`` (0 < fraction <= 1) of the energy."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise RankError(f"energy={fraction!r} is not a fraction; use a number in (0, 1], e.g. 0.95.")
    energy = retained_energy(s)
    # Guard against round-off: a fraction of 1.0 must select the full rank, never past it.
    rank = int(np.searchsorted(energy, fraction - 1e-12)) + 1
    return min(rank, len(energy))


def factorized_params(n: int, m: int, rank: int) -> int:
    """Weights of the two factors of an (n, m) matrix at ``rank``, bias not included."""
    return rank * (n + m)


def break_even_rank(n: int, m: int) -> int:
    """Largest rank whose factors hold fewer weights than the (n, m) matrix; 0 when none does."""
    return (n * m - 1) // (n + m)


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


def truncated_kernel(kernel, rank: int, mode: str) -> np.ndarray:
    """The rank-``rank`` approximation of a Dense (mode "dense") or Conv2D kernel, same shape and
    dtype: what the LightLayer made from it computes."""
    kernel = np.asarray(kernel)
    matrix = kernel if mode == "dense" else conv_kernel_to_matrix(kernel, mode)
    a, b = truncated_svd(matrix, rank)
    product = a @ b
    if mode != "dense":
        product = matrix_to_conv_kernel(product, kernel.shape, mode)
    return product.astype(kernel.dtype)


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


def conv_factors(kernel, rank: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """The two SVD-initialised conv kernels replacing ``kernel`` at ``rank`` in ``mode``."""
    kernel = np.asarray(kernel)
    a, b = truncated_svd(conv_kernel_to_matrix(kernel, mode), rank)
    return factors_to_conv_kernels(a, b, kernel.shape, mode)
