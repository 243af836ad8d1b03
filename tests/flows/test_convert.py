import dataclasses
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from lightcompress import LightConv2D, LightDense
from lightcompress.io import models as model_io
from lightcompress.factorization.apply import apply_plan
from lightcompress.flows.convert import convert
from lightcompress.data.synthetic import model_inputs_like
from lightcompress.planning import make_plan
from tests.models import policy
from lightcompress.linalg import break_even_rank

from ..conftest import real_model_path
from ..models import GRAPHS


def _full_rank(plan):
    for i, p in enumerate(plan.layers):
        if p.converted:
            shape = p.kernel_shape if p.kind == "Dense" else (
                np.prod(p.kernel_shape[:3]), p.kernel_shape[3])
            plan.layers[i] = dataclasses.replace(p, rank=int(min(shape)))
    return plan


def _predict(model, x):
    y = model.predict(x, verbose=0)
    return y if isinstance(y, list) else [y]


def _assert_close(a_model, b_model, x, atol):
    for a, b in zip(_predict(a_model, x), _predict(b_model, x)):
        np.testing.assert_allclose(a, b, atol=atol)


_LOADER = textwrap.dedent("""
    import json, sys, traceback
    import keras, lightcompress
    for line in sys.stdin:
        try:
            print(json.dumps([keras.models.load_model(path).count_params() for path in json.loads(line)]), flush=True)
        except Exception:
            print(json.dumps({"error": traceback.format_exc()}), flush=True)
""")


@pytest.fixture(scope="module")
def fresh_process(tmp_path_factory):
    """A new Python that imports only keras and lightcompress, shared by this module's tests (each
    start costs seconds): it loads the files a test sends and answers with their param counts."""
    log = tmp_path_factory.mktemp("fresh") / "stderr.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", _LOADER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, text=True)
    yield proc, log
    proc.stdin.close()
    proc.wait(timeout=60)


def _reload_in_fresh_process(fresh, paths):
    """Load each file in the fresh process; returns their param counts."""
    import json
    import select

    proc, log = fresh
    proc.stdin.write(json.dumps([str(p) for p in paths]) + "\n")
    proc.stdin.flush()
    ready, _, _ = select.select([proc.stdout], [], [], 300)
    line = proc.stdout.readline() if ready else ""
    assert line, f"no answer from the fresh process: {log.read_text()[-2000:]}"
    counts = json.loads(line)
    assert isinstance(counts, list), counts["error"][-2000:]
    return counts


@pytest.mark.parametrize("name", ["fmnist_cnn_keras2.h5", "fmnist_cnn_keras3.h5"])
def test_real_models_convert_at_several_ranks(name, tmp_path, fresh_process):
    original = model_io.load_model(real_model_path(name))
    x = model_inputs_like(original, batch=16)
    before = original.get_weights()
    for rank in (2, 8, 24):
        result = convert(original, *policy(rank=rank, min_params=0), x)
        assert result.model.count_params() == result.params_after
        assert result.params_after < result.params_before
        kinds = {type(layer) for layer in result.model.layers}
        assert LightDense in kinds and LightConv2D in kinds
    # The input model is untouched.
    for a, b in zip(before, original.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Full rank reproduces the original.
    plan = _full_rank(make_plan(original, *policy(rank=8, min_params=0)))
    full = apply_plan(original, plan)
    _assert_close(original, full, x, atol=1e-4)
    paths = [model_io.save_model(result.model, tmp_path / f"light{s}") for s in (".keras", ".h5")]
    assert _reload_in_fresh_process(fresh_process, paths) == [result.params_after] * 2


@pytest.mark.slow  # many graph shapes through .keras and .h5 (~10 s); .ci/run runs -m slow
def test_graph_shapes_convert_and_round_trip(tmp_path, fresh_process):
    paths, expected = [], []
    for graph in sorted(GRAPHS):
        original = GRAPHS[graph]()
        x = model_inputs_like(original, batch=8)
        result = convert(original, *policy(rank=3, min_params=0, conv_mode="auto"), x)
        assert result.model.count_params() == result.params_after < result.params_before, graph
        assert len(result.plan.converted) >= 2, graph
        full = apply_plan(original, _full_rank(make_plan(original, *policy(rank=3, min_params=0))))
        _assert_close(original, full, x, atol=1e-4)
        for suffix in (".keras", ".h5"):
            path = model_io.save_model(result.model, tmp_path / f"{graph}{suffix}")
            _assert_close(result.model, keras.models.load_model(path), x, atol=1e-6)
            paths.append(path)
            expected.append(result.params_after)
    assert _reload_in_fresh_process(fresh_process, paths) == expected


@pytest.mark.backend
def test_shared_layer_stays_shared():
    original = GRAPHS["shared"]()
    result = convert(original, *policy(rank=4, min_params=0))
    lights = [layer.name for layer in result.model.layers if isinstance(layer, LightDense)]
    assert lights == ["shared_fc_light", "out_light"]  # one shared LightDense, applied twice
    assert result.params_after == 4 * (50 + 50) + 50 + 2 * (50 + 3) + 3  # out clipped to rank 2


@pytest.mark.backend
def test_nested_layers_are_named_by_path_and_converted():
    original = GRAPHS["nested"]()
    plan = make_plan(original, *policy(rank=4, min_params=0))
    assert [p.name for p in plan.layers] == ["block/inner_a", "block/inner_b", "out"]
    result = convert(original, *policy(rank=4, min_params=0, include=("block/*",)))
    inner = result.model.get_layer("block")
    assert [type(layer).__name__ for layer in inner.layers] == ["LightDense", "LightDense"]
    assert type(result.model.get_layer("out")) is keras.layers.Dense


@pytest.mark.backend
def test_converted_model_shares_nothing_with_original():
    original = GRAPHS["residual"]()
    result = convert(original, *policy(rank=4))
    ids = {id(v) for v in original.weights}
    assert not ids & {id(v) for v in result.model.weights}
    bn = result.model.get_layer("bn")
    np.testing.assert_array_equal(bn.get_weights()[2], original.get_layer("bn").get_weights()[2])


def _two_layer_model(decay_a, decay_b, n=64):
    """Two Dense layers with known spectra: singular values decaying at different rates."""
    rng = np.random.default_rng(3)
    model = keras.Sequential([keras.Input((n,)), keras.layers.Dense(n, name="fast"),
                              keras.layers.Dense(n, name="flat")])
    for layer, decay in (("fast", decay_a), ("flat", decay_b)):
        u, _ = np.linalg.qr(rng.normal(size=(n, n)))
        v, _ = np.linalg.qr(rng.normal(size=(n, n)))
        s = decay ** np.arange(n)
        model.get_layer(layer).set_weights([(u * s) @ v.T, np.zeros(n)])
    return model


@pytest.mark.backend
@pytest.mark.parametrize("ratio", [0.15, 0.3, 0.45])
def test_ratio_meets_budget_and_gives_unequal_ranks(ratio):
    model = _two_layer_model(0.5, 0.99)
    plan = make_plan(model, *policy(ratio=ratio))
    before = sum(p.params_before for p in plan.layers)
    after = sum(p.params_after for p in plan.layers)
    assert after <= ratio * before * 1.03 and after >= ratio * before * 0.9
    ranks = {p.name: p.rank for p in plan.layers}
    assert ranks["fast"] < ranks["flat"]


def test_ratio_on_real_model_is_within_a_few_percent():
    model = model_io.load_model(real_model_path("fmnist_cnn_keras3.h5"))
    plan = make_plan(model, *policy(ratio=0.25))
    converted = plan.converted
    before = sum(p.params_before for p in converted)
    after = sum(p.params_after for p in converted)
    assert abs(after / before - 0.25) < 0.03
    assert len({p.rank for p in converted}) > 1


@pytest.mark.backend
def test_rank_is_clipped_to_break_even_and_tiny_layers_skipped():
    model = GRAPHS["sequential"]()
    plan = make_plan(model, *policy(rank=1000, min_params=0))
    by = {p.name: p for p in plan.layers}
    # default min_saving 0.2: the largest rank keeping at most 80% of the kernel (32·64)
    assert by["h1"].rank == int(0.8 * 32 * 64) // (32 + 64) and "clipped" in by["h1"].note
    assert all(p.params_after < p.params_before for p in plan.converted)
    rule, layer_filter = policy(rank=1000, min_params=0)
    plan = make_plan(model, rule, dataclasses.replace(layer_filter, min_saving=0.0))
    assert {p.name: p for p in plan.layers}["h1"].rank == break_even_rank(32, 64)
    plan = make_plan(model, *policy(rank=4))
    assert by["out"].params_before < 1000 and "below min_params=" in {p.name: p for p in plan.layers}["out"].skipped


@pytest.mark.backend
def test_energy_policy_keeps_the_asked_fraction():
    model = _two_layer_model(0.8, 0.95)
    plan = make_plan(model, *policy(energy=0.9))
    assert plan.converted
    kernels = {name: layer.kernel.numpy() for name, layer in ((l.name, l) for l in model.layers) if hasattr(layer, "kernel")}
    for p in plan.converted:
        assert p.energy >= 0.9
        # the smallest such rank, not just any rank keeping it
        from lightcompress import linalg as svd
        assert p.rank == svd.rank_for_energy(svd.singular_values(kernels[p.name]), 0.9), p
    skipped = make_plan(model, *policy(energy=0.9999))
    assert any("above the largest rank saving" in (p.skipped or "") for p in skipped.layers)


@pytest.mark.backend
def test_include_exclude_patterns():
    model = GRAPHS["residual"]()
    plan = make_plan(model, *policy(rank=2, min_params=0, include=("branch_*", "fc"), exclude=("branch_b",)))
    status = {p.name: (p.converted, p.skipped) for p in plan.layers}
    assert status["branch_a"][0] and status["fc"][0]
    assert status["branch_b"] == (False, "excluded by exclude 'branch_b'")
    assert status["stem"] == (False, "not matched by include")


@pytest.mark.backend
def test_auto_mode_picks_the_lower_error():
    from lightcompress import linalg as svd
    from lightcompress.layers.conv2d import conv_kernel_to_matrix, conv_matrix_shape
    model = GRAPHS["residual"]()
    plan = make_plan(model, *policy(rank=4, conv_mode="auto"))
    conv = next(p for p in plan.layers if p.name == "branch_a")
    kernel = keras.ops.convert_to_numpy(model.get_layer("branch_a").kernel)
    errors = {}
    for mode in ("channel", "spatial"):  # a fixed rank: every mode keeps rank 4, auto takes the lower error
        n, m = conv_matrix_shape(kernel.shape, mode)
        s = svd.singular_values(conv_kernel_to_matrix(kernel, mode))
        rank = min(4, svd.break_even_rank(n, m))
        errors[mode] = svd.reconstruction_error(s, rank)
    assert conv.mode == min(errors, key=errors.get)
    assert conv.error == pytest.approx(errors[conv.mode])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "choose exactly one rank rule"),
        ({"rank": 4, "ratio": 0.5}, r"choose exactly one rank rule: .* \(got rank=4, ratio=0.5\)"),
        ({"rank": 0}, "rank=0 is invalid"),
        ({"energy": 1.5}, "energy=1.5 is not a fraction"),
        ({"ratio": 1.0}, "ratio=1.0 is not a fraction"),
        ({"rank": 2, "conv_mode": "depth"}, "conv_mode='depth' is unknown"),
        ({"rank": 2, "min_params": -1}, "min_params=-1 is invalid"),
    ],
)
@pytest.mark.backend
def test_policy_errors(kwargs, message):
    from lightcompress.errors import LightCompressError
    with pytest.raises(LightCompressError, match=message):
        policy(**kwargs)


@pytest.mark.backend
@pytest.mark.parametrize("target", [0.2, 0.5])
def test_target_params_sizes_the_whole_model(target):
    model = model_io.load_model(real_model_path("fmnist_cnn_keras2.h5"))
    plan = make_plan(model, *policy(target_params=target))
    total = model.count_params()
    assert abs((total - plan.params_saved()) / total - target) < 0.02
    from lightcompress.errors import RankError
    with pytest.raises(RankError, match="cannot be met: the layers left as they are already hold"):
        make_plan(model, *policy(target_params=0.001, min_params=50_000))
