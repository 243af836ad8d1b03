import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightcompress import linalg as svd
from lightcompress.errors import LightCompressError, RankError


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 24),
    m=st.integers(1, 24),
    data=st.data(),
)
def test_truncation_error_is_the_eckart_young_optimum(n, m, data):
    rank = data.draw(st.integers(1, min(n, m)))
    seed = data.draw(st.integers(0, 2**31 - 1))
    w = np.random.default_rng(seed).normal(size=(n, m))
    a, b = svd.truncated_svd(w, rank)
    s = np.linalg.svd(w, compute_uv=False)
    optimum = np.sqrt(np.sum(s[rank:] ** 2))
    assert a.shape == (n, rank) and b.shape == (rank, m)
    assert np.linalg.norm(w - a @ b) == pytest.approx(optimum, abs=1e-9 * max(1.0, s[0]))
    assert svd.reconstruction_error(s, rank) == pytest.approx(optimum / np.linalg.norm(w), abs=1e-9)


def test_factors_split_singular_values_evenly():
    w = np.random.default_rng(1).normal(size=(7, 5))
    a, b = svd.truncated_svd(w, 3)
    np.testing.assert_allclose(np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=1), rtol=1e-9)


def test_factors_keep_float32():
    a, b = svd.truncated_svd(np.ones((4, 3), np.float32), 1)
    assert a.dtype == np.float32 and b.dtype == np.float32


def test_energy_and_rank_for_energy():
    s = np.array([3.0, 2.0, 1.0])
    np.testing.assert_allclose(svd.retained_energy(s), [9 / 14, 13 / 14, 1.0])
    assert svd.rank_for_energy(s, 0.5) == 1
    assert svd.rank_for_energy(s, 9 / 14) == 1
    assert svd.rank_for_energy(s, 0.9) == 2
    assert svd.rank_for_energy(s, 1.0) == 3


def test_break_even_rank():
    # 10x10: rank r costs 20r weights; 4 (80) saves, 5 (100) does not.
    assert svd.break_even_rank(10, 10) == 4
    assert svd.break_even_rank(1600, 64) == 61  # 61*1664 = 101504 < 102400 <= 62*1664
    assert svd.break_even_rank(1, 10) == 0
    for n, m in [(3, 7), (64, 10), (128, 128)]:
        r = svd.break_even_rank(n, m)
        assert svd.factorized_params(n, m, r) < n * m <= svd.factorized_params(n, m, r + 1)


@pytest.mark.parametrize(
    "rank, message",
    [
        (0, r"rank=0 is out of range for a matrix of shape \(6, 4\); use a whole number from 1 to 4"),
        (5, r"rank=5 is out of range .* from 1 to 4"),
        (-1, r"rank=-1 is out of range"),
        (2.5, r"rank=2.5 is not an integer"),
        ("3", r"rank='3' is not an integer"),
        (True, r"rank=True is not an integer"),
    ],
)
def test_bad_rank_names_value_shape_and_range(rank, message):
    with pytest.raises(RankError, match=message):
        svd.truncated_svd(np.ones((6, 4)), rank)


@pytest.mark.parametrize("fraction", [0, 1.5, -0.1, "0.9", None])
def test_bad_energy_fraction(fraction):
    with pytest.raises(LightCompressError, match=rf"energy={fraction!r} is not a fraction"):
        svd.rank_for_energy([1.0, 0.5], fraction)


def test_bad_inputs():
    with pytest.raises(LightCompressError, match=r"2-D matrix, got an array of shape \(3,\)"):
        svd.truncated_svd(np.ones(3), 1)
