"""One decomposition per kernel, shared by inspect, planning and factorising; the fast methods
(float32 Gram eigendecomposition, randomized SVD) against the float64 SVD on real kernels."""

import keras
import numpy as np
import pytest

from lightcompress.factorization import candidates as analyze
from lightcompress import flows
from lightcompress.layers import registry
from lightcompress import linalg as svd
from lightcompress.factorization.apply import apply_plan
from lightcompress.flows.convert import convert
from lightcompress.errors import LightCompressError
from lightcompress.layers import LightConv2D, dense
from lightcompress.planning import Energy, FixedRank, LayerFilter, Ratio, decide, make_plan, plan_from_dict

from ..conftest import real_model_path

# Stated tolerances, against the float64 LAPACK SVD on every kernel of the real Fashion-MNIST CNN
# (measured: gram values 2.3e-6, products 3.2e-6; randomized with 2 power iterations at ranks up
# to min side / 8: error 1.0031x the optimum):
GRAM_VALUES = 1e-5  # |s_gram - s_exact| / s_max
GRAM_PRODUCT = 1e-5  # ||A·B_gram - A·B_exact|| / ||W||
RANDOMIZED_ERROR = 1.005  # randomized truncation error / Eckart–Young optimum, rank <= min side / 8
RANDOMIZED_VALUES = 1e-2  # |s_rand - s_exact| / s_max for the leading values


def real_kernels():
    model = keras.models.load_model(real_model_path("fmnist_cnn_keras3.h5"), compile=False)
    return [(f"{c.name}/{mode}", c.matrix(mode)) for c in analyze.candidates(model) for mode in c.entry.matrix_modes
            if min(c.matrix_shape(mode)) >= 8]


@pytest.mark.parametrize("float64_side, tolerance", [(0, 1.0), (svd.GRAM64_SIDE, 1e-4)])
def test_gram_equals_the_float64_svd_on_real_kernels(monkeypatch, float64_side, tolerance):
    """The Gram route in float32 (forced on these small kernels) and in float64 (what they get)."""
    monkeypatch.setattr(svd, "GRAM64_SIDE", float64_side)
    for name, w in real_kernels():
        exact, gram = svd.decompose(w, method="exact"), svd.decompose(w, method="gram")
        assert np.max(np.abs(gram.s - exact.s)) <= tolerance * GRAM_VALUES * exact.s[0], name
        for rank in (1, min(w.shape) // 4, min(w.shape)):
            a, b = exact.factors(rank, w)
            a2, b2 = gram.factors(rank, w)
            assert a2.dtype == np.float32
            assert np.linalg.norm(a2 @ b2 - a @ b) <= tolerance * GRAM_PRODUCT * np.linalg.norm(w), (name, rank)


def test_randomized_is_near_optimal_on_real_kernels():
    for name, w in real_kernels():
        exact = svd.decompose(w, method="exact")
        rank = max(1, min(w.shape) // 8)
        fast = svd.decompose(w, rank, method="randomized")
        assert not fast.complete and len(fast.s) == rank
        a, b = fast.factors(rank, w)
        error = np.linalg.norm(w - a @ b) / np.linalg.norm(w)
        assert error <= RANDOMIZED_ERROR * exact.error(rank) + 1e-7, name
        assert np.max(np.abs(fast.s - exact.s[:rank])) <= RANDOMIZED_VALUES * exact.s[0], name
        assert fast.energy(rank) == pytest.approx(exact.energy(rank), abs=5e-3)  # measured 3.1e-3


def test_gram_of_a_wide_matrix_and_rank_deficiency():
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((5, 2)) @ rng.standard_normal((2, 40))).astype(np.float32)  # rank 2, wide
    d = svd.decompose(w, method="gram")
    assert d.u is not None and d.vt is None
    a, b = d.factors(3, w)  # the third direction has no energy: it stays zero, never NaN
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    np.testing.assert_allclose(a @ b, w, atol=1e-5)


def test_auto_picks_by_shape_and_rank():
    assert svd.choose_method((600, 200)) == "gram"
    assert svd.choose_method((4608, 512), 8) == "gram"  # float64: small enough for the whole spectrum
    assert svd.choose_method((25088, 4096), 64) == "randomized"
    assert svd.choose_method((25088, 4096), 1024) == "gram"
    assert svd.choose_method((4096, 4096)) == "gram"
    with pytest.raises(svd.RankError, match="leading values only"):
        svd.decompose(np.ones((4, 4)), method="randomized")


@pytest.fixture
def counted(monkeypatch):
    calls = []
    real = svd._decompose

    def counting(matrix, rank, vectors, method, seed):
        calls.append((matrix.shape, rank, vectors, method))
        return real(matrix, rank, vectors, method, seed)

    monkeypatch.setattr(svd, "_decompose", counting)
    return calls


def small_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(10, name="head")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("rule", [FixedRank(4), Energy(0.5)])
def test_convert_decomposes_each_kernel_once(counted, rule):
    model = small_model()
    result = convert(model, rule, LayerFilter(min_params=0, conv_mode="channel"), x=np.zeros((2, 8, 8, 3), np.float32))
    assert len(result.plan.converted) == 3
    assert len(counted) == 3, counted  # one per kernel: planning and factorising share it


def test_inspect_decomposes_each_kernel_once_without_vectors(counted):
    flows.inspect_model(small_model(), "m.keras")
    assert len(counted) == 3 and not any(vectors for _, _, vectors, _ in counted)


def test_saved_plan_is_applied_from_its_own_decompositions(counted):
    model = small_model()
    plan = make_plan(model, FixedRank(4), LayerFilter(min_params=0, conv_mode="channel"))
    counted.clear()
    again = plan_from_dict(model, plan.to_dict())
    apply_plan(model, again)
    assert len(counted) == 3


@pytest.mark.parametrize("mode", ["channel", "spatial"])
def test_twins_from_shared_factors_equal_the_direct_twins(mode):
    model = small_model()
    plan = make_plan(model, FixedRank(4), LayerFilter(min_params=0, conv_mode=mode))
    shared = apply_plan(model, plan)
    for p in plan.converted:
        twin = shared.get_layer(f"{p.name}_light")
        layer = model.get_layer(p.name)
        direct = registry.entry_for(layer).build_twin(layer, p.rank, p.mode)  # decomposes itself
        for w1, w2 in zip(twin.get_weights(), direct.get_weights()):
            np.testing.assert_allclose(w1, w2, atol=1e-5)


def test_progress_follows_the_decompositions():
    steps = []
    model = small_model()
    with flows.decomposition_progress(model, lambda d, t, text: steps.append((d, t)), LayerFilter(min_params=0, conv_mode="channel")):
        make_plan(model, FixedRank(4), LayerFilter(min_params=0, conv_mode="channel"))
    assert steps[0][0] == 0 and steps[-1][0] == steps[-1][1]
    assert [d for d, _ in steps] == sorted(d for d, _ in steps)


def wide_model():
    """Kernels over ``svd.GRAM64_SIDE`` on their smaller side, so the float32 methods run."""
    inputs = keras.Input((600,))
    x = keras.layers.Dense(530, name="big", activation="relu")(inputs)
    outputs = keras.layers.Dense(10, name="head")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("rule, method", [(FixedRank(8), "randomized"), (Energy(0.5), "gram")])  # float32
def test_big_kernels_take_the_fast_method_once_and_factor_near_the_optimum(counted, rule, method):
    model = wide_model()
    big = model.get_layer("big")
    rng = np.random.default_rng(0)  # a decaying spectrum, as trained kernels have
    u, _ = np.linalg.qr(rng.standard_normal((600, 530)))
    v, _ = np.linalg.qr(rng.standard_normal((530, 530)))
    big.kernel.assign(((u * (0.9 ** np.arange(530))) @ v.T).astype(np.float32))
    result = convert(model, rule, LayerFilter(min_params=0, conv_mode="channel"), x=np.zeros((2, 600), np.float32))
    assert [m for (shape, _, _, m) in counted if shape == (600, 530)] == [method]
    p = next(p for p in result.plan.converted if p.name == "big")
    twin = result.model.get_layer("big_light")
    a, b = (np.asarray(w) for w in twin.get_weights()[:2])
    kernel = np.asarray(big.kernel)
    exact = svd.decompose(kernel.astype(np.float64), method="exact")
    error = np.linalg.norm(kernel - a @ b) / np.linalg.norm(kernel)
    assert error <= RANDOMIZED_ERROR * exact.error(p.rank) + 1e-6
    assert p.error == pytest.approx(error, abs=1e-4)  # the plan reports the factors actually used


def test_a_plan_applied_after_the_weights_changed_uses_the_new_weights():
    model = small_model()
    plan = make_plan(model, FixedRank(4), LayerFilter(min_params=0, conv_mode="channel"))
    rng = np.random.default_rng(1)
    for name in ("hidden", "head"):
        layer = model.get_layer(name)
        layer.kernel.assign(rng.standard_normal(tuple(layer.kernel.shape)).astype(np.float32))
    new = apply_plan(model, plan)
    assert "sources" not in vars(plan)  # a plain record: it never holds the model's layers
    for name in ("hidden", "head"):
        kernel = np.asarray(model.get_layer(name).kernel)
        a, b = (np.asarray(w) for w in new.get_layer(f"{name}_light").get_weights()[:2])
        np.testing.assert_allclose(a @ b, dense.DENSE.truncated_kernel(kernel, 4, "dense"), atol=1e-5)


def test_ratio_with_every_conv_mode_decomposes_each_kernel_and_mode_once(counted):
    model = small_model()
    plan, sources = decide(model, Ratio(0.3), LayerFilter(min_params=0, conv_mode="auto"))
    apply_plan(model, plan, sources=sources)
    modes = [(shape, rank) for shape, rank, _, _ in counted]
    assert len(counted) == len({shape for shape, _ in modes}), counted  # (shapes differ per kernel and mode here)


def test_tucker_twins_refuse_matrix_factors():
    layer = small_model().get_layer("conv")
    with pytest.raises(LightCompressError, match="tucker decomposes the kernel itself"):
        LightConv2D.from_conv2d(layer, 4, "tucker", factors=(np.zeros((27, 4)), np.zeros((4, 16))))
