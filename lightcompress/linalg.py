"""Truncated SVD, spectra, data-aware factors and Tucker-2 behind every factorisation. NumPy only:
no Keras here. (How each layer type's kernel becomes a matrix is in that type's module in
``lightcompress.layers``.)

A weight matrix W (n, m) is approximated by two factors A (n, r) and B (r, m) with
A = U_r·sqrt(S_r) and B = sqrt(S_r)·V_rᵀ, the best rank-r approximation (Eckart–Young).

>>> import numpy as np
>>> w = np.arange(12.0).reshape(4, 3)
>>> a, b = truncated_svd(w, 2)
>>> a.shape, b.shape, bool(np.allclose(a @ b, w))
((4, 2), (2, 3), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._deferred import deferred
from .errors import RankError

scipy_linalg = deferred("scipy.linalg")  # LAPACK drivers NumPy lacks; SciPy comes with scikit-learn


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
    """Singular values of ``matrix``, largest first, in float64 (``decompose`` without vectors)."""
    return decompose(matrix, vectors=False).s


def truncated_svd(matrix, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Factors A (n, rank) and B (rank, m) of the best rank-``rank`` approximation of ``matrix``.

    The singular values are split as a square root on both sides, so neither factor dominates
    when both are fine-tuned. The factors keep the input's floating dtype. One ``decompose``
    (the fastest accurate method for the shape and rank, see there).
    """
    matrix = _check_matrix(matrix)
    rank = check_rank(rank, matrix.shape)
    return decompose(matrix, rank).factors(rank, matrix)


# -- one decomposition per kernel, by the fastest accurate method for its shape -----------------

GRAM64_SIDE = 512  # smaller side at most this: the Gram route in float64 (accurate to ~1e-8·s_max;
# a 4608x512 VGG16 conv matrix with vectors: 0.04 s here, against 0.3 s for LAPACK's SVD)
RANDOMIZED_SHARE = 8  # leading ranks up to min(n, m) / this: randomized SVD (Halko et al. 2011)
POWER_ITERATIONS = 2  # subspace iterations; VGG16 fc1 (25088x4096) at rank 64 takes ~1 s here
OVERSAMPLES = 10


@dataclass
class Decomposition:
    """Leading singular values and vectors of one matrix W (n, m), and its squared norm.

    ``s`` holds the whole spectrum when ``complete`` (else the leading ones), largest first, in
    float64. ``u`` (n, k) and ``vt`` (k, m) hold leading singular vectors; either may hold fewer
    (even none) and is then completed from W by one product (U_r = W·V_r / s_r). ``total`` is
    ||W||², so retained energy and errors need no more than the leading values.

    >>> w = np.diag([3.0, 2.0, 1.0])
    >>> d = decompose(w)
    >>> d.s.tolist(), d.complete, round(d.energy(1), 4), round(d.error(2), 4)
    ([3.0, 2.0, 1.0], True, 0.6429, 0.2673)
    >>> a, b = d.factors(3, w)
    >>> bool(np.allclose(a @ b, w))
    True
    """

    s: np.ndarray
    total: float
    complete: bool
    method: str
    u: np.ndarray | None = None
    vt: np.ndarray | None = None

    @property
    def vectors(self) -> int:
        """How many leading singular vector pairs ``factors`` can give (one side suffices)."""
        held = max(0 if self.u is None else self.u.shape[1], 0 if self.vt is None else self.vt.shape[0])
        return min(len(self.s), held)

    def energy(self, rank: int) -> float:
        """Fraction of ||W||² kept at ``rank`` (needs the leading ``rank`` values)."""
        if self.total == 0.0:
            return 1.0
        return float(min(1.0, np.sum(self.s[:rank] ** 2) / self.total))

    def error(self, rank: int) -> float:
        """Relative Frobenius error of the rank-``rank`` truncation (Eckart–Young)."""
        return float(np.sqrt(max(0.0, 1.0 - self.energy(rank))))

    def trimmed(self, rank: int) -> "Decomposition":
        """The same values with only the leading ``rank`` vectors (what factorising at ``rank`` needs)."""
        u = None if self.u is None else self.u[:, :rank].copy()
        vt = None if self.vt is None else self.vt[:rank].copy()
        return Decomposition(self.s, self.total, self.complete, self.method, u, vt)

    def completes(self, rank: int) -> bool:
        """Whether ``factors`` at ``rank`` needs the matrix (one side holds fewer vectors)."""
        return min(0 if x is None else min(x.shape) for x in (self.u, self.vt)) < rank

    def factors(self, rank: int, matrix=None, dtype=None) -> tuple[np.ndarray, np.ndarray]:
        """A = U_r·sqrt(S_r), B = sqrt(S_r)·V_rᵀ in ``dtype`` (default: ``matrix``'s floating dtype,
        else float32). ``matrix``, the W this decomposes, is needed only when ``completes(rank)``."""
        if rank > self.vectors:
            raise RankError(f"this decomposition holds {self.vectors} singular vectors, not rank={rank}; "
                            f"decompose again with rank={rank}.")
        if dtype is None:
            floating = matrix is not None and np.issubdtype(np.asarray(matrix).dtype, np.floating)
            dtype = np.asarray(matrix).dtype if floating else np.float32
        if self.completes(rank):
            if matrix is None:
                raise RankError(f"completing rank={rank} singular vectors needs the matrix; pass matrix=W.")
            matrix = np.asarray(matrix)
        s = self.s[:rank]
        inverse = np.where(s > s[0] * 1e-12, 1.0 / np.maximum(s, 1e-300), 0.0)  # zero directions stay zero
        u, vt = self.u, self.vt
        if u is None or u.shape[1] < rank:
            u = (matrix @ vt[:rank].T) * inverse
        if vt is None or vt.shape[0] < rank:
            vt = (u[:, :rank].T @ matrix) * inverse[:, None]
        root = np.sqrt(s)
        a = (u[:, :rank] * root).astype(dtype)
        b = (root[:, None] * vt[:rank]).astype(dtype)
        return a, b


def choose_method(shape, rank=None) -> str:
    """The method ``decompose`` uses for a matrix of ``shape`` (``rank`` None: the whole spectrum).

    - "randomized": float32 randomized SVD of the leading ``rank`` triplets, when the smaller side
      is over ``GRAM64_SIDE`` and ``rank`` at most 1/``RANDOMIZED_SHARE`` of it (cost ~ n·m·rank
      instead of n·m·min(n, m));
    - "gram" otherwise: eigendecomposition of the Gram matrix of the smaller side (WᵀW or WWᵀ),
      one matrix product and one symmetric eigensolve, several times faster than an SVD; in
      float64 up to ``GRAM64_SIDE``, float32 above (memory and time of the big kernels).

    "exact" (LAPACK's SVD in float64) is the reference the tests compare both with.

    >>> choose_method((512, 10)), choose_method((25088, 4096), 64), choose_method((25088, 4096))
    ('gram', 'randomized', 'gram')
    """
    side = min(shape)
    if side > GRAM64_SIDE and rank is not None and rank * RANDOMIZED_SHARE <= side:
        return "randomized"
    return "gram"


def squared_norm(matrix) -> float:
    """||W||² accumulated in float64, a block of rows at a time (no float64 copy of W).

    >>> squared_norm(np.ones((3, 4), np.float32))
    12.0
    """
    matrix = np.asarray(matrix)
    rows = max(1, (1 << 22) // max(1, matrix.shape[-1]))
    return float(sum(np.square(matrix[i:i + rows], dtype=np.float64).sum() for i in range(0, len(matrix), rows)))


def decompose(matrix, rank=None, vectors=True, method="auto", seed=0) -> Decomposition:
    """Singular values (all of them when ``rank`` is None, else at least the leading ``rank``)
    and, with ``vectors``, the leading singular vectors of ``matrix``.

    ``method``: "auto" (``choose_method``), "exact", "gram" or "randomized". Every plain SVD
    lightcompress makes goes through here (data-aware factors and Tucker-2 have their own
    eigensolves), once per kernel and mode (see ``analyze.Candidate``). Accuracy against the
    float64 SVD is tested on real kernels (tests/linalg/test_decompose.py).
    """
    matrix = _check_matrix(matrix)
    if rank is not None:
        rank = check_rank(rank, matrix.shape)
    method = choose_method(matrix.shape, rank) if method == "auto" else method
    if method == "randomized" and rank is None:
        raise RankError("a randomized decomposition gives leading values only; give rank=N or method='gram'.")
    d = _decompose(matrix, rank, vectors, method, seed)
    return d if rank is None or d.vectors <= rank else d.trimmed(rank)


def _decompose(matrix, rank, vectors, method, seed) -> Decomposition:
    """The one place a matrix is decomposed (tests count calls here)."""
    precise = method == "exact" or (method == "gram" and min(matrix.shape) <= GRAM64_SIDE)
    work = matrix.astype(np.float64 if precise else np.float32, copy=False)
    total = squared_norm(work)
    if method == "exact":
        if not vectors:
            return Decomposition(np.linalg.svd(work, compute_uv=False), total, True, method)
        u, s, vt = np.linalg.svd(work, full_matrices=False)
        if work.shape[0] >= work.shape[1]:  # keep the smaller side's vectors; factors complete the other
            return Decomposition(s, total, True, method, vt=vt)
        return Decomposition(s, total, True, method, u=u)
    if method == "gram":
        return _gram(work, total, vectors)
    if method == "randomized":
        u, s, vt = _randomized(work, rank, seed)
        return Decomposition(s, total, False, method, u, vt)
    raise RankError(f"method={method!r} is unknown; use one of auto, exact, gram, randomized.")


def _gram(work, total, vectors) -> Decomposition:
    """Eigendecomposition of the Gram matrix of the smaller side (float32): s = sqrt(eigenvalues),
    the eigenvectors are the singular vectors of that side. SciPy's LAPACK drivers: MRRR (evr)
    for values only, divide and conquer (evd) with vectors, 2-4x faster than NumPy's here."""
    tall = work.shape[0] >= work.shape[1]
    gram = work.T @ work if tall else work @ work.T
    if not vectors:
        values = scipy_linalg.eigh(gram, eigvals_only=True, driver="evr", overwrite_a=True, check_finite=False)
        return Decomposition(_roots(values[::-1]), total, True, "gram")
    values, basis = scipy_linalg.eigh(gram, driver="evd", overwrite_a=True, check_finite=False)
    del gram
    basis = np.ascontiguousarray(basis[:, ::-1])
    s = _roots(values[::-1])
    return Decomposition(s, total, True, "gram", vt=basis.T) if tall else Decomposition(s, total, True, "gram", u=basis)


def _roots(values) -> np.ndarray:
    return np.sqrt(np.clip(np.asarray(values, dtype=np.float64), 0, None))


def _randomized(work, rank, seed):
    """Leading ``rank`` singular triplets by randomized subspace iteration (Halko, Martinsson and
    Tropp 2011, algorithms 4.4 and 5.1): a Gaussian sketch of ``rank + OVERSAMPLES`` columns,
    ``POWER_ITERATIONS`` passes through WᵀW renormalised by LU (cheaper than QR on these tall
    blocks, as scikit-learn does), one QR, then the exact SVD of the small projection."""
    n, m = work.shape
    k = min(rank + OVERSAMPLES, n, m)
    q = work @ np.random.default_rng(seed).standard_normal((m, k)).astype(work.dtype)
    for _ in range(POWER_ITERATIONS):
        inner = scipy_linalg.lu(q, permute_l=True, check_finite=False)[0]
        q = work @ scipy_linalg.lu(work.T @ inner, permute_l=True, check_finite=False)[0]
    q = scipy_linalg.qr(q, mode="economic", check_finite=False)[0]
    small_u, s, vt = np.linalg.svd(q.T @ work, full_matrices=False)
    return (q @ small_u[:, :rank]), s[:rank].astype(np.float64), vt[:rank]


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


def _check_kernel_shape(kernel_shape) -> tuple[int, int, int, int]:
    if len(kernel_shape) != 4:
        raise RankError(
            f"expected a Conv2D kernel of shape (kh, kw, in, out), got shape {tuple(kernel_shape)}."
        )
    return tuple(int(d) for d in kernel_shape)


# -- data-aware factors (output error on calibration inputs) ----------------------------------
#
# With inputs X (rows: samples, columns: the n rows of W) and their second moment C = XᵀX / N,
# the rank-r W_r minimising ||X·(W − W_r)|| (DRONE, NeurIPS 2021; SVD-LLM's whitening) is
# L⁻ᵀ·trunc_r(Lᵀ·W) for C = L·Lᵀ. Writing Lᵀ·W = U·S·Vᵀ, that is W·V_r·V_rᵀ: W projected onto the
# top-r eigenvectors of Wᵀ·C·W (the principal directions of the layer's *outputs*). This form
# needs no Cholesky factor and no inverse, so it is safe when C is rank-deficient (ReLU zeros,
# padding, dead channels); a small ridge (``ridge`` times the mean eigenvalue of C) decides the
# directions the calibration inputs never excite, where it falls back to plain SVD.

DEFAULT_RIDGE = 1e-6


def regularised(cov, ridge: float = DEFAULT_RIDGE) -> np.ndarray:
    """``cov`` symmetrised in float64, plus ``ridge`` times its mean eigenvalue on the diagonal
    (the identity when ``cov`` is all zeros)."""
    cov = np.asarray(cov, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise RankError(f"expected a square covariance matrix, got an array of shape {cov.shape}.")
    cov = (cov + cov.T) / 2
    scale = float(np.trace(cov)) / len(cov)
    if not np.isfinite(scale):
        raise RankError("the covariance holds NaN or inf values; calibrate on finite inputs.")
    if scale <= 0.0:
        return np.eye(len(cov))
    return cov + ridge * scale * np.eye(len(cov))


def _output_basis(matrix, cov, ridge):
    """Eigenvalues (descending) and eigenvectors of Wᵀ·C·W (C regularised)."""
    w = _check_matrix(matrix).astype(np.float64)
    c = regularised(cov, ridge)
    if c.shape[0] != w.shape[0]:
        raise RankError(f"covariance of shape {c.shape} does not match a matrix with {w.shape[0]} rows.")
    values, vectors = np.linalg.eigh(w.T @ c @ w)
    order = np.argsort(values)[::-1]
    return np.clip(values[order], 0.0, None), vectors[:, order]


def output_spectrum(matrix, cov, ridge: float = DEFAULT_RIDGE) -> np.ndarray:
    """Singular values of Lᵀ·W (C = L·Lᵀ), largest first: the spectrum of the layer's outputs on
    the calibration inputs. ``reconstruction_error`` of it is the relative output error.

    With white inputs (C = I) it is the plain spectrum:

    >>> w = np.random.default_rng(0).normal(size=(6, 4))
    >>> bool(np.allclose(output_spectrum(w, np.eye(6), ridge=0.0), singular_values(w)))
    True
    """
    values, _ = _output_basis(matrix, cov, ridge)
    return np.sqrt(values[: min(np.shape(matrix))])


def data_aware_svd(matrix, cov, rank: int, ridge: float = DEFAULT_RIDGE) -> tuple[np.ndarray, np.ndarray]:
    """Factors A (n, rank), B (rank, m) with A·B minimising ||X·(W − A·B)|| for inputs whose second
    moment is ``cov`` (n, n): A = W·V_r, B = V_rᵀ, rescaled so each column of A and row of B have
    the same norm (as ``truncated_svd`` splits √S). With C = I they are the plain SVD factors.

    >>> w = np.random.default_rng(0).normal(size=(6, 4))
    >>> a, b = data_aware_svd(w, np.eye(6), 2, ridge=0.0)
    >>> a0, b0 = truncated_svd(w, 2)
    >>> bool(np.allclose(a @ b, a0 @ b0))
    True
    """
    matrix = _check_matrix(matrix)
    rank = check_rank(rank, matrix.shape)
    _, vectors = _output_basis(matrix, cov, ridge)
    v = vectors[:, :rank]
    a = matrix.astype(np.float64) @ v
    norms = np.sqrt(np.linalg.norm(a, axis=0))
    norms[norms == 0.0] = 1.0
    dtype = matrix.dtype if np.issubdtype(matrix.dtype, np.floating) else np.float32
    return (a / norms).astype(dtype), (norms[:, None] * v.T).astype(dtype)


def output_error(matrix, approx, cov=None) -> float:
    """Relative error sqrt(tr(ΔᵀCΔ) / tr(WᵀCW)) of ``approx`` for ``matrix`` (Δ = W − approx) on
    inputs with second moment ``cov`` (None: white inputs, the relative Frobenius error)."""
    w = np.asarray(matrix, dtype=np.float64)
    d = w - np.asarray(approx, dtype=np.float64)
    if cov is None:
        num, den = float(np.sum(d * d)), float(np.sum(w * w))
    else:
        c = np.asarray(cov, dtype=np.float64)
        num, den = float(np.sum(d * (c @ d))), float(np.sum(w * (c @ w)))
    return float(np.sqrt(max(num, 0.0) / den)) if den > 0 else 0.0


def mode_covariance(cov, kernel_shape, mode: str) -> np.ndarray:
    """The second moment of the rows of a conv kernel's ``mode`` matrix, from the second moment
    ``cov`` of its im2col patches in (kh, kw, c) order (the rows of the channel matrix).

    spatial: the kh×1 column patches (kh, c) the first factor sees, averaged over the kw column
    offsets; "input channels": the per-pixel (c, c) block averaged over the kh·kw offsets (the
    input projection of Tucker-2); channel and tucker: ``cov`` itself.
    """
    kh, kw, c, f = _check_kernel_shape(kernel_shape)
    cov = np.asarray(cov, dtype=np.float64)
    if cov.shape != (kh * kw * c, kh * kw * c):
        raise RankError(f"patch covariance of shape {cov.shape} does not fit a kernel of shape {tuple(kernel_shape)}.")
    if mode in ("channel", "tucker"):
        return cov
    six = cov.reshape(kh, kw, c, kh, kw, c)
    if mode == "spatial":
        blocks = np.einsum("iajkal->ijkl", six) / kw  # (kh, c, kh, c), same column offset a
        return blocks.reshape(kh * c, kh * c)
    if mode == "input channels":
        return np.einsum("abiabj->ij", six) / (kh * kw)
    raise RankError(f"conv mode {mode!r} is unknown; use one of channel, spatial.")


# -- Tucker-2 for convolutions (Kim et al., ICLR 2016) ----------------------------------------
#
# A (kh, kw, c, f) kernel becomes a 1×1 conv c→r1 (input projection), a kh×kw conv r1→r2 (the
# core, with the layer's strides, padding and dilation) and a 1×1 conv r2→f (output projection).
# One rank r (1..f) sets both: r2 = r and r1 = round(r·c/f) clipped to [1, c], so both channel
# modes are cut in the same proportion and the full rank r = f gives r1 = c, r2 = f (exact).

def tucker_ranks(rank: int, channels: int, filters: int) -> tuple[int, int]:
    """(r1, r2) of Tucker-2 at ``rank`` for a conv c→f.

    >>> tucker_ranks(16, 32, 64), tucker_ranks(64, 32, 64), tucker_ranks(3, 1, 64)
    ((8, 16), (32, 64), (1, 3))
    """
    rank = check_rank(rank, (filters, filters))
    return min(channels, max(1, int(round(rank * channels / filters)))), rank


def tucker_params(kernel_shape, rank: int) -> int:
    """Weights of the three Tucker-2 kernels at ``rank`` (bias not included)."""
    kh, kw, c, f = _check_kernel_shape(kernel_shape)
    r1, r2 = tucker_ranks(rank, c, f)
    return c * r1 + kh * kw * r1 * r2 + r2 * f


def tucker_shapes(kernel_shape, rank: int) -> tuple[tuple, tuple, tuple]:
    kh, kw, c, f = _check_kernel_shape(kernel_shape)
    r1, r2 = tucker_ranks(rank, c, f)
    return (1, 1, c, r1), (kh, kw, r1, r2), (1, 1, r2, f)


def _sym_sqrt(cov, ridge):
    values, vectors = np.linalg.eigh(regularised(cov, ridge))
    values = np.clip(values, values.max() * 1e-12, None)
    root = np.sqrt(values)
    return (vectors * root) @ vectors.T, (vectors / root) @ vectors.T


def tucker2(kernel, rank: int, cov=None, ridge: float = DEFAULT_RIDGE):
    """The Tucker-2 kernels (first (1, 1, c, r1), core (kh, kw, r1, r2), last (1, 1, r2, f)) of a
    Conv2D kernel, by truncated HOSVD: without ``cov`` the leading singular vectors of the output
    and input channel unfoldings; with the patch second moment ``cov`` (channel-mode order) the
    output projection keeps the principal directions of the layer's outputs and the input
    projection is whitened by the per-pixel channel covariance. Equal to the kernel at full rank.
    One rank: ``tucker2_basis`` computes the rank-independent part once for many ranks.

    >>> k = np.random.default_rng(0).normal(size=(3, 3, 4, 6))
    >>> bool(np.allclose(tucker_kernel(*tucker2(k, 6)), k))
    True
    """
    return tucker2_basis(kernel, cov, ridge).kernels(rank)


def tucker2_basis(kernel, cov=None, ridge: float = DEFAULT_RIDGE) -> "Tucker2":
    """The rank-independent part of ``tucker2`` for ``kernel`` (the expensive part: the output
    channel unfolding's eigendecomposition and the kernel projected on all its directions),
    from which every rank's kernels and error are read (``Tucker2``)."""
    return Tucker2(kernel, cov, ridge)


class Tucker2:
    """Tucker-2 (sequentially truncated HOSVD) of one (kh, kw, c, f) kernel at any rank, its
    rank-independent part computed once.

    The output projection at rank r is the leading r2 columns of one f×f eigenbasis (of WᵀW, or
    of WᵀCW with ``cov``), so that basis and the kernel projected on all of it (K·U2, kernel-sized,
    float64) are computed here, once. The input projection depends on r2 (it is fitted to the
    kernel already projected on the leading r2 output directions): the c×c Gram matrix of that
    projection is a sum over the r2 output directions, extended from the last rank asked (ranks
    asked in increasing order cost one Gram matrix in all), then one c×c eigendecomposition.

    Without ``cov`` both projections are orthogonal, so the relative error at a rank is read from
    that c×c eigendecomposition's values: ||K − K_r||² = ||K||² − (the r1 leading eigenvalues)
    (``weight_error``), with no kernel rebuilt. Values are the same as the per-rank ``tucker2``
    computed from scratch (tests/factorization/test_decompose_once.py).

    >>> k = np.random.default_rng(0).normal(size=(3, 3, 4, 6))
    >>> t = tucker2_basis(k)
    >>> bool(np.isclose(t.weight_error(3), output_error(k.reshape(-1, 1), t.approximate(3).reshape(-1, 1))))
    True
    """

    def __init__(self, kernel, cov=None, ridge: float = DEFAULT_RIDGE):
        kernel = np.asarray(kernel)
        self.shape = _check_kernel_shape(kernel.shape)
        kh, kw, c, f = self.shape
        self.dtype = kernel.dtype if np.issubdtype(kernel.dtype, np.floating) else np.float32
        k = kernel.astype(np.float64)
        w = k.reshape(kh * kw * c, f)
        self.total = float(np.sum(w * w))
        self.whitened = cov is not None
        if cov is None:
            self.u2 = _leading_eigenvectors(w.T @ w, f)  # left singular vectors of wᵀ, all f
            self.root = self.inverse = None
        else:
            self.u2 = _output_basis(w, cov, ridge)[1]
            self.root, self.inverse = _sym_sqrt(mode_covariance(cov, kernel.shape, "input channels"), ridge)
        self.projected = k @ self.u2  # (kh, kw, c, f): K on every output direction, best first
        self._errors: dict = {}  # {rank: weight error} (without cov: read from eigenvalues)
        self._last = None  # (rank, kernels): planning asks a rank's kernels and error in turn
        self._sum = (0, np.zeros((c, c)))  # (r2, the unwhitened input Gram matrix of the leading r2)

    def ranks(self, rank) -> tuple[int, int]:
        return tucker_ranks(rank, self.shape[2], self.shape[3])

    def _unfolded(self, start, stop) -> np.ndarray:
        """The input channel unfolding (c, kh·kw·(stop − start)) of K·U2[:, start:stop]."""
        kh, kw, c, _ = self.shape
        return self.projected[..., start:stop].transpose(2, 0, 1, 3).reshape(c, -1)

    def _input_gram(self, r2) -> np.ndarray:
        """The c×c Gram matrix of the input channel unfolding of K·U2[:, :r2] (whitened with
        ``cov``), extended from (or, for a smaller r2, rebuilt below) the last one."""
        done, gram = self._sum
        if r2 < done:
            done, gram = 0, np.zeros_like(gram)
        if r2 > done:
            part = self._unfolded(done, r2)
            gram = gram + part @ part.T
            self._sum = (r2, gram)
        return gram if self.root is None else self.root @ gram @ self.root

    def kernels(self, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The three Tucker-2 kernels at ``rank`` (as ``tucker2``), in the kernel's dtype."""
        rank = check_rank(rank, (self.shape[3], self.shape[3]))
        if self._last is not None and self._last[0] == rank:
            return self._last[1]
        kh, kw, c, f = self.shape
        r1, r2 = self.ranks(rank)
        u1 = _leading_eigenvectors(self._input_gram(r2), r1)  # left singular vectors of the unfolding
        unfolded = self._unfolded(0, r2)
        root = np.eye(c) if self.root is None else self.root
        first = u1 if self.inverse is None else self.inverse @ u1  # (c, r1)
        core = (u1.T @ root @ unfolded).reshape(r1, kh, kw, r2).transpose(1, 2, 0, 3)
        out = (first.reshape(1, 1, c, r1).astype(self.dtype), core.astype(self.dtype),
               self.u2[:, :r2].T.reshape(1, 1, r2, f).astype(self.dtype))
        self._last = (rank, out)
        return out

    def approximate(self, rank: int) -> np.ndarray:
        """The kernel the three kernels at ``rank`` compute, in the kernel's dtype."""
        return tucker_kernel(*self.kernels(rank)).astype(self.dtype)

    def weight_error(self, rank: int) -> float:
        """Relative Frobenius error ||K − K_r|| / ||K|| at ``rank``: from the input Gram matrix's
        eigenvalues without ``cov`` (orthogonal projections), else measured on ``approximate``."""
        rank = check_rank(rank, (self.shape[3], self.shape[3]))
        if rank not in self._errors:
            if self.whitened:
                kernel = (self.projected @ self.u2.T).reshape(-1, 1)  # K itself (U2 is a complete basis)
                self._errors[rank] = output_error(kernel, self.approximate(rank).reshape(-1, 1))
            elif self.total == 0.0:
                self._errors[rank] = 0.0
            else:
                r1, r2 = self.ranks(rank)
                kh, kw, c, _ = self.shape
                if kh * kw * r2 < c:  # the same nonzero eigenvalues from the smaller Gram matrix
                    part = self._unfolded(0, r2)
                    values = np.linalg.eigvalsh(part.T @ part)
                else:
                    values = np.linalg.eigvalsh(self._input_gram(r2))
                kept = float(np.sum(values[::-1][:r1]))
                self._errors[rank] = float(np.sqrt(max(0.0, 1.0 - kept / self.total)))
        return self._errors[rank]


def _leading_eigenvectors(gram, count) -> np.ndarray:
    """The ``count`` leading eigenvectors of a symmetric (c, c) Gram matrix M·Mᵀ: M's left singular
    vectors (a complete basis even where M has fewer columns than c), without the (columns ×
    columns) right vectors a full SVD of M would also compute."""
    values, vectors = np.linalg.eigh(gram)
    return vectors[:, ::-1][:, :count]


def tucker_kernel(first, core, last) -> np.ndarray:
    """The (kh, kw, c, f) kernel that the three Tucker-2 kernels compute together."""
    return np.einsum("ca,ijab,bf->ijcf", np.asarray(first)[0, 0], np.asarray(core), np.asarray(last)[0, 0],
                     optimize=True)  # contracted pairwise: seconds, not minutes, for 3x3x512x512


def sequential_target(matrix, cov, cross, ridge: float = DEFAULT_RIDGE) -> np.ndarray:
    """W' = C_ĥĥ⁻¹·C_ĥx·W: with inputs x̂ from already-factorised earlier layers (second moment
    ``cov``) standing in for the original inputs x (cross moment ``cross`` = E[x̂·xᵀ]), the full
    matrix W' minimises ||X·W − X̂·W'||; factorising W' data-aware on ``cov`` then minimises
    ||X·W − X̂·W_r|| over rank-r W_r. Equal to W when x̂ = x.

    >>> x = np.random.default_rng(0).normal(size=(50, 4)); w = np.ones((4, 2))
    >>> c = x.T @ x / 50
    >>> bool(np.allclose(sequential_target(w, c, c, ridge=0.0), w))
    True
    """
    c = regularised(cov, ridge)
    return np.linalg.solve(c, np.asarray(cross, dtype=np.float64) @ np.asarray(matrix, dtype=np.float64))
