"""Issue 39 (speed): each kernel's rank-independent decomposition is computed once per layer and
mode (Tucker-2's HOSVD bases: ``linalg.tucker2_basis``), every rank read from it with the values the
per-rank computation gave; modes that cannot help a kernel (spatial and Tucker-2 on a 1×1 conv)
are not tried."""

import json
from collections import Counter

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from lightcompress import linalg
from lightcompress.cli import app
from lightcompress.factorization.candidates import candidates
from lightcompress.layers.conv2d import CONV2D
from lightcompress.planning import FixedRank, LayerFilter, make_plan
from lightcompress.planning.plan import plan_from_dict


def _model(rng):
    """Three 3×3 convs and three 1×1 convs (a bottleneck stack); b3's kernel is exactly Tucker-2 of
    ranks (6, 8), so a budget plans it in tucker mode and applying it is exercised too."""
    inputs = keras.Input((12, 12, 8))
    x = keras.layers.Conv2D(24, 3, padding="same", name="a3")(inputs)
    x = keras.layers.Conv2D(48, 1, name="a1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", name="b3")(x)
    x = keras.layers.Conv2D(64, 1, name="b1")(x)
    x = keras.layers.Conv2D(40, 3, strides=2, name="c3")(x)
    x = keras.layers.Conv2D(16, 1, name="c1")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(5, name="head")(x))
    b3 = model.get_layer("b3")
    first, core, last = linalg.tucker2(rng.normal(size=tuple(b3.kernel.shape)), 8)
    b3.kernel.assign(linalg.tucker_kernel(first, core, last).astype("float32"))
    return model


def _old_tucker2(kernel, rank, cov=None, ridge=linalg.DEFAULT_RIDGE):
    """The reference: Tucker-2 at one rank computed from scratch, as before issue 39 (the output
    basis and the input basis recomputed for every rank)."""
    kernel = np.asarray(kernel)
    kh, kw, c, f = kernel.shape
    r1, r2 = linalg.tucker_ranks(rank, c, f)
    k = kernel.astype(np.float64)
    w = k.reshape(kh * kw * c, f)
    if cov is None:
        u2 = np.linalg.eigh(w.T @ w)[1][:, ::-1][:, :r2]
        root = inverse = np.eye(c)
    else:
        u2 = linalg._output_basis(w, cov, ridge)[1][:, :r2]
        root, inverse = linalg._sym_sqrt(linalg.mode_covariance(cov, kernel.shape, "input channels"), ridge)
    unfolded = (k @ u2).transpose(2, 0, 1, 3).reshape(c, kh * kw * r2)
    projected = root @ unfolded
    u1 = np.linalg.eigh(projected @ projected.T)[1][:, ::-1][:, :r1]
    core = (u1.T @ root @ unfolded).reshape(r1, kh, kw, r2).transpose(1, 2, 0, 3)
    dtype = kernel.dtype
    return ((inverse @ u1).reshape(1, 1, c, r1).astype(dtype), core.astype(dtype),
            u2.T.reshape(1, 1, r2, f).astype(dtype))


def _old_errors(kernel, cov):
    """The reference error curve of Candidate.errors("tucker") before issue 39: measured on the
    ladder of ranks with a Tucker-2 from scratch at each, interpolated in squared error."""
    kh, kw, c, f = kernel.shape
    base = kernel.reshape(-1, f)
    ranks = sorted({1, f, *np.unique(np.round(np.geomspace(1, f, 24)).astype(int))})
    measured = [linalg.output_error(base, linalg.tucker_kernel(*_old_tucker2(kernel, r, cov)).astype(kernel.dtype)
                                    .reshape(-1, f), cov) ** 2 for r in ranks]
    return np.sqrt(np.clip(np.interp(np.arange(1, f + 1), ranks, measured), 0, None))


def _assert_same_up_to_signs(new, old, atol):
    """The three kernels equal, up to the sign of each singular vector (eigenvectors have none)."""
    (f_new, core_new, l_new), (f_old, core_old, l_old) = new, old
    assert f_new.shape == f_old.shape and core_new.shape == core_old.shape and l_new.shape == l_old.shape
    s1 = np.sign(np.sum(f_new[0, 0] * f_old[0, 0], axis=0))
    s2 = np.sign(np.sum(l_new[0, 0] * l_old[0, 0], axis=1))
    np.testing.assert_allclose(f_new, f_old * s1, atol=atol)
    np.testing.assert_allclose(l_new, l_old * s2[:, None], atol=atol)
    np.testing.assert_allclose(core_new, core_old * s1[:, None] * s2[None, :], atol=atol)


# -- one decomposition per layer across a whole convert ---------------------------------------

def test_tucker2_bases_are_computed_once_per_layer_across_a_whole_convert(tmp_path, rng, monkeypatch):
    model = _model(rng)
    path = tmp_path / "m.keras"
    model.save(path)
    kernels = {layer.name: np.asarray(layer.kernel) for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}
    calls, per_rank = Counter(), Counter()
    real_basis, real_tucker2 = linalg.tucker2_basis, linalg.tucker2

    def basis_spy(kernel, *args, **kwargs):
        names = [n for n, k in kernels.items() if k.shape == np.shape(kernel) and np.array_equal(k, kernel)]
        calls[names[0] if names else "?"] += 1
        return real_basis(kernel, *args, **kwargs)

    def tucker2_spy(kernel, rank, *args, **kwargs):
        per_rank[rank] += 1
        return real_tucker2(kernel, rank, *args, **kwargs)

    monkeypatch.setattr(linalg, "tucker2_basis", basis_spy)
    monkeypatch.setattr(linalg, "tucker2", tucker2_spy)
    result = CliRunner().invoke(app, ["convert", str(path), "--target-params", "0.5", "--conv-mode", "auto",
                                      "--min-params", "0", "--json", "-o", str(tmp_path / "o.keras")])
    assert result.exit_code == 0, result.output
    layers = {p["name"]: p for p in json.loads(result.stdout)["layers"]}
    # every 3×3 conv: its HOSVD bases once (planning at every rank and applying); the 1×1 ones never
    assert dict(calls) == {"a3": 1, "b3": 1, "c3": 1}
    assert not per_rank  # no rank computed from scratch
    assert layers["b3"]["mode"] == "tucker" and layers["b3"]["error"] < 1e-3  # applied from that one basis
    for name in ("a1", "b1", "c1"):  # the plan and report still say the mode used
        assert layers[name]["mode"] in (None, "channel")
    converted = keras.models.load_model(tmp_path / "o.keras")
    assert converted.get_layer("b3_light").factorization == "tucker"
    x = rng.random((4, 12, 12, 8), dtype=np.float32)
    rebuilt = converted.get_layer("b3_light")
    first, core, last = (np.asarray(w) for w in rebuilt.weights[:3])
    expected = real_basis(kernels["b3"]).kernels(layers["b3"]["rank"])
    for got, want in zip((first, core, last), expected):
        assert got.shape == want.shape
    np.testing.assert_allclose(linalg.tucker_kernel(first, core, last), linalg.tucker_kernel(*expected), atol=1e-5)
    assert converted(x).shape == (4, 5)


# -- modes that cannot help a kernel ----------------------------------------------------------

def test_a_1x1_conv_is_tried_in_channel_mode_only(rng):
    model = _model(rng)
    found = {c.name: c for c in candidates(model)}
    for name in ("a1", "b1", "c1"):
        assert found[name].modes == ("channel",)
        # the reason: its spatial matrix is its channel matrix
        assert found[name].matrix_shape("spatial") == found[name].matrix_shape("channel")
        for mode in ("auto", "tucker", "spatial"):
            assert LayerFilter(min_params=0, conv_mode=mode).modes(found[name]) == ("channel",)
    for name in ("a3", "b3", "c3"):
        assert found[name].modes == ("channel", "spatial", "tucker") == CONV2D.modes
    # a rank rule in tucker mode: 3×3 convs in tucker, 1×1 convs in channel, and the plan says so
    plan = make_plan(model, FixedRank(4), LayerFilter(min_params=0, conv_mode="tucker", min_saving=0.0))
    modes = {p.name: p.mode for p in plan.layers if p.kind == "Conv2D"}
    assert modes == {"a3": "tucker", "a1": "channel", "b3": "tucker", "b1": "channel", "c3": "tucker",
                     "c1": "channel"}
    # a plan saved elsewhere may still name tucker for a 1×1 conv: every mode of the twin is accepted
    saved = plan.to_dict()
    for entry in saved["layers"]:
        if entry["name"] == "a1":
            entry["mode"] = "tucker"
    assert {p.name: p.mode for p in plan_from_dict(model, saved).layers}["a1"] == "tucker"


def test_tucker_on_a_1x1_kernel_never_beats_channel_mode(rng):
    """What dropping it rests on: at every rank Tucker-2 of a 1×1 kernel has at least the error of
    the plain SVD at rank min(r1, r2), and more weights than it."""
    kernel = rng.normal(size=(1, 1, 24, 48))
    decomposition = linalg.decompose(kernel.reshape(24, 48))
    basis = linalg.tucker2_basis(kernel)
    for rank in range(1, 49):
        r1, r2 = linalg.tucker_ranks(rank, 24, 48)
        assert basis.weight_error(rank) >= decomposition.error(min(r1, r2)) - 1e-6
        assert linalg.tucker_params(kernel.shape, rank) >= CONV2D.factor_params(kernel.shape, "channel", min(r1, r2))


# -- the same values as the per-rank computation ----------------------------------------------

@pytest.mark.parametrize("calibrated", [False, True])
def test_every_rank_equals_the_per_rank_computation(rng, calibrated):
    kernel = rng.normal(size=(3, 3, 6, 10)).astype(np.float32)
    patches = rng.normal(size=(400, 54)) * np.linspace(2.0, 0.2, 54)
    cov = patches.T @ patches / 400 if calibrated else None
    basis = linalg.tucker2_basis(kernel, cov)
    order = list(rng.permutation(np.arange(1, 11)))  # any order: the Gram sums are extended or rebuilt
    for rank in order + order[::-1]:
        old = _old_tucker2(kernel, int(rank), cov)
        _assert_same_up_to_signs(basis.kernels(int(rank)), old, atol=2e-5)
        measured = linalg.output_error(kernel.reshape(-1, 1), linalg.tucker_kernel(*old).reshape(-1, 1))
        assert basis.weight_error(int(rank)) == pytest.approx(measured, abs=2e-6)
    assert basis.weight_error(10) == pytest.approx(0.0, abs=1e-6)  # exact at full rank


@pytest.mark.parametrize("calibrated", [False, True])
def test_candidate_errors_and_factors_equal_the_per_rank_computation(rng, calibrated):
    model = _model(rng)
    c = {c.name: c for c in candidates(model)}["c3"]
    kernel = c.kernel
    if calibrated:
        patches = rng.normal(size=(800, 3 * 3 * 64)) * np.linspace(2.0, 0.1, 3 * 3 * 64)
        c.cov = patches.T @ patches / 800
    base = kernel.reshape(-1, 40)
    for rank in (1, 7, 23, 40):  # one rank at a time, no curve yet
        old = _old_tucker2(kernel, rank, c.cov)
        measured = linalg.output_error(kernel.reshape(-1, 1), linalg.tucker_kernel(*old).reshape(-1, 1))
        assert c.weight_error("tucker", rank) == pytest.approx(measured, abs=2e-6)
        expected = linalg.output_error(base, linalg.tucker_kernel(*old).reshape(-1, 40), c.cov)
        assert c.error("tucker", rank) == pytest.approx(expected, abs=2e-6)
        np.testing.assert_allclose(c.approximate("tucker", rank), linalg.tucker_kernel(*old), atol=2e-5)
        _assert_same_up_to_signs(c.factors("tucker", rank), _old_tucker2(kernel, rank), atol=2e-5)  # plain factors
    old_curve = _old_errors(kernel, c.cov)
    np.testing.assert_allclose(c.errors("tucker"), old_curve, atol=2e-6)
    assert c.error("tucker", 7) == pytest.approx(old_curve[6], abs=2e-6)
    assert sum(1 for p in c._prepared.values() if p is not None) == (2 if calibrated else 1)  # own (and plain)
