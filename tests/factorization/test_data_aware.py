"""Issue 14: data-aware factors, calibration, Tucker-2 convs, plans that do not spend accuracy for nothing."""

import json

import keras
import numpy as np
import pytest

from lightcompress import LightConv2D, linalg as svd
from lightcompress.layers import registry
from lightcompress.factorization.methods import resolve_method
from lightcompress.factorization.statistics import calibration_images, collect
from lightcompress.data.sets import Prepared
from lightcompress.errors import OptionError
from lightcompress.factorization.apply import apply_plan
from lightcompress.flows.convert import convert
from lightcompress.layers.conv2d import CONV2D, lower_light_conv2d
from lightcompress.planning import FixedRank, LayerFilter, TargetParams, make_plan
from lightcompress.flows.compress import CompressSettings


def _low_rank_inputs(rng, n=40, samples=4000, rank=6):
    """Inputs living (mostly) in a ``rank``-dimensional subspace of R^n, scaled unevenly."""
    basis = rng.normal(size=(rank, n)) * np.linspace(3, 0.5, rank)[:, None]
    return rng.normal(size=(samples, rank)) @ basis + 0.01 * rng.normal(size=(samples, n))


# -- the maths (svd.py) -----------------------------------------------------------------------

def test_data_aware_beats_plain_svd_on_low_rank_inputs(rng):
    w = rng.normal(size=(40, 30))
    x = _low_rank_inputs(rng)
    cov = x.T @ x / len(x)
    for rank in (2, 4, 6):
        a, b = svd.data_aware_svd(w, cov, rank)
        a0, b0 = svd.truncated_svd(w, rank)
        aware = np.linalg.norm(x @ (w - a @ b))
        plain = np.linalg.norm(x @ (w - a0 @ b0))
        assert aware < 0.8 * plain
        # the error it reports is the one it achieves
        expected = svd.reconstruction_error(svd.output_spectrum(w, cov), rank)
        assert abs(svd.output_error(w, a @ b, cov) - expected) < 1e-3
    # at the input's rank the outputs are (almost) exact, though the weights are not
    a, b = svd.data_aware_svd(w, cov, 6)
    assert np.linalg.norm(x @ (w - a @ b)) / np.linalg.norm(x @ w) < 0.01
    assert np.linalg.norm(w - a @ b) / np.linalg.norm(w) > 0.3


def test_data_aware_equals_plain_svd_on_white_inputs(rng):
    w = rng.normal(size=(20, 12))
    for cov in (np.eye(20), 3.0 * np.eye(20)):
        for rank in (1, 5, 12):
            a, b = svd.data_aware_svd(w, cov, rank)
            a0, b0 = svd.truncated_svd(w, rank)
            np.testing.assert_allclose(a @ b, a0 @ b0, atol=1e-10)
            np.testing.assert_allclose(np.linalg.norm(a, axis=0), np.linalg.norm(a0, axis=0), rtol=1e-8)
        np.testing.assert_allclose(svd.output_spectrum(w, cov, ridge=0.0), np.sqrt(cov[0, 0]) * svd.singular_values(w))


@pytest.mark.parametrize("case", ["dead inputs", "fewer samples than inputs", "all zero", "constant"])
def test_rank_deficient_covariances_give_finite_factors(rng, case):
    w = rng.normal(size=(30, 8)).astype(np.float32)
    x = rng.normal(size=(500, 30))
    if case == "dead inputs":
        x[:, ::2] = 0.0  # ReLU zeros / dead channels
    elif case == "fewer samples than inputs":
        x = x[:5]
    elif case == "all zero":
        x = np.zeros_like(x)
    else:
        x = np.ones_like(x)
    cov = x.T @ x / len(x)
    for rank in (1, 4, 8):
        a, b = svd.data_aware_svd(w, cov, rank)
        assert np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and a.dtype == np.float32
        assert np.all(np.isfinite(svd.output_spectrum(w, cov)))
    kernel = rng.normal(size=(3, 3, 4, 6))
    patches = rng.normal(size=(50, 36))
    patches[:, 4:8] = 0.0
    patches = patches if case != "all zero" else np.zeros_like(patches)
    kernels = svd.tucker2(kernel, 3, patches.T @ patches / 50)
    assert all(np.all(np.isfinite(k)) for k in kernels)


def test_nan_in_a_covariance_is_refused_in_one_line():
    with pytest.raises(Exception, match="NaN or inf") as err:
        svd.data_aware_svd(np.ones((3, 2)), np.full((3, 3), np.nan), 1)
    assert "\n" not in str(err.value)


def test_sequential_target_and_mode_covariances(rng):
    x = rng.normal(size=(300, 2 * 2 * 3))
    cov = x.T @ x / 300
    spatial = svd.mode_covariance(cov, (2, 2, 3, 5), "spatial")
    # rows (kh, c) of the spatial matrix: the kh×1 column patches at each column offset
    six = x.reshape(300, 2, 2, 3)
    cols = np.concatenate([six[:, :, j, :].reshape(300, 6) for j in range(2)])
    np.testing.assert_allclose(spatial, cols.T @ cols / 600)
    w = rng.normal(size=(12, 5))
    np.testing.assert_allclose(svd.sequential_target(w, cov, cov, ridge=0.0), w, atol=1e-10)


# -- Tucker-2 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("settings", [
    dict(strides=1, padding="valid"),
    dict(strides=2, padding="same"),
    dict(strides=(2, 1), padding="valid"),
    dict(dilation_rate=2, padding="same"),
    dict(dilation_rate=(1, 2), padding="valid", activation="relu"),
])
def test_full_rank_tucker_equals_conv2d(settings, rng):
    conv = keras.layers.Conv2D(6, (3, 2), **settings)
    x = rng.normal(size=(2, 9, 8, 4)).astype("float32")
    expected = np.asarray(conv(x))
    conv.bias.assign(rng.normal(size=6).astype("float32"))
    expected = np.asarray(conv(x))
    light = LightConv2D.from_conv2d(conv, 6, factorization="tucker")
    assert light.input_rank == 4
    np.testing.assert_allclose(np.asarray(light(x)), expected, atol=1e-4)
    lowered = lower_light_conv2d(light)
    assert [layer.name for layer in lowered] == [f"{conv.name}_a", f"{conv.name}_core", f"{conv.name}_b"]
    y = x
    for layer in lowered:
        y = layer(y)
    np.testing.assert_allclose(np.asarray(y), expected, atol=1e-4)
    # data-aware HOSVD is exact at full rank too
    patches = CONV2D.input_matrix(conv, x)
    cov = patches.T.astype(np.float64) @ patches / len(patches)
    kernels = CONV2D.factors(np.asarray(conv.kernel), 6, "tucker", cov)
    light.set_weights([*kernels, np.asarray(conv.bias)])
    np.testing.assert_allclose(np.asarray(light(x)), expected, atol=1e-4)


def test_tucker_params_and_macs_formulas_match_the_layer(rng):
    conv = keras.layers.Conv2D(16, 3, padding="same")
    model = keras.Sequential([keras.Input((10, 10, 8)), conv])
    light = LightConv2D.from_conv2d(conv, 6, factorization="tucker")
    r1, r2 = svd.tucker_ranks(6, 8, 16)
    assert (r1, r2) == (3, 6) and light.input_rank == 3
    assert light.count_params() == svd.tucker_params((3, 3, 8, 16), 6) + 16 == 8 * 3 + 9 * 3 * 6 + 6 * 16 + 16
    assert CONV2D.factor_params((3, 3, 8, 16), "tucker", 6) == light.count_params() - 16
    macs = registry.macs(light, (None, 10, 10, 8), (None, 10, 10, 16))
    assert macs == 100 * 8 * 3 + 100 * (9 * 3 * 6 + 6 * 16)
    assert model.count_params() == 3 * 3 * 8 * 16 + 16


def test_tucker_twin_round_trips_through_keras_and_h5(tmp_path, rng):
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(12, 3, strides=2, padding="same", name="c2")(x)
    outputs = keras.layers.Dense(4)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    rule, layer_filter = FixedRank(4), LayerFilter(min_params=0, conv_mode="tucker", min_saving=0.0)
    new = convert(model, rule, layer_filter).model
    assert any(getattr(layer, "factorization", None) == "tucker" for layer in new.layers)
    x = rng.random((3, 12, 12, 3), dtype=np.float32)
    for suffix in (".keras", ".h5"):
        new.save(tmp_path / f"m{suffix}")
        back = keras.models.load_model(tmp_path / f"m{suffix}")
        np.testing.assert_allclose(np.asarray(back(x)), np.asarray(new(x)), atol=1e-5)


# -- calibration ----------------------------------------------------------------------------

def _conv_model():
    inputs = keras.Input((10, 10, 2))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, name="c2")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(24, activation="relu", name="d1")(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="d2")(x))


def test_covariance_over_batches_equals_one_shot(rng):
    model = _conv_model()
    x = rng.random((37, 10, 10, 2), dtype=np.float32)
    streamed = collect(model, x, batch_size=8)
    assert set(streamed.layers) == {"c1", "c2", "d1", "d2"} and streamed.samples == 37
    probe = keras.Model(model.inputs, [model.get_layer(n).input for n in ("c1", "c2", "d1", "d2")])
    for name, inputs in zip(("c1", "c2", "d1", "d2"), probe(x)):
        layer = model.get_layer(name)
        rows = np.asarray(registry.entry_for(layer).input_matrix(layer, inputs), dtype=np.float64)
        moments = streamed.layers[name]
        np.testing.assert_allclose(moments.cov, rows.T @ rows / len(rows), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(moments.mean, rows.mean(axis=0), rtol=1e-4, atol=1e-6)
        assert moments.rows == len(rows)


def test_calibrated_convert_lowers_output_error_and_says_so(rng):
    model = _conv_model()
    x = rng.random((300, 10, 10, 2), dtype=np.float32) * np.linspace(0, 1, 10)[None, :, None, None]
    rule, layer_filter = FixedRank(3), LayerFilter(min_params=0, conv_mode="channel")
    plain = convert(model, rule, layer_filter, x[:100])
    aware = convert(model, rule, layer_filter, x[:100], calibration_x=x[100:])
    assert plain.method == "svd" and plain.plan.method == "svd" and plain.calibration_seconds is None
    one = "data-aware"  # the default here: 200 images are under 3 per input of d1 (256 wide) to go layer by layer
    assert aware.method == one and aware.plan.method == one and aware.calibration_samples == 200
    assert aware.difference.relative < plain.difference.relative
    assert all(p.output_error is not None for p in aware.plan.converted)
    forced = convert(model, rule, layer_filter, x[:100], calibration_x=x[100:], method="svd")
    assert forced.method == "svd" and forced.difference.relative == pytest.approx(plain.difference.relative)
    assert json.loads(json.dumps(aware.plan.to_dict()))["method"] == one
    more = np.concatenate([x[100:]] * 4)  # 800 images: layer by layer
    layered = convert(model, rule, layer_filter, x[:100], calibration_x=more)
    assert layered.method == "data-aware+sequential" and layered.difference.relative < plain.difference.relative


def test_sequential_calibration_and_bias_correction_run_and_stay_finite(rng):
    model = _conv_model()
    x = rng.random((120, 10, 10, 2), dtype=np.float32)
    rule, layer_filter = FixedRank(2), LayerFilter(min_params=0, conv_mode="channel")
    for method in ("data-aware+sequential", "data-aware+bias", "data-aware+sequential+bias"):
        result = convert(model, rule, layer_filter, x[:40], calibration_x=x[40:], method=method)
        assert result.method == result.plan.method == method
        assert all(np.all(np.isfinite(w)) for w in result.model.get_weights())
        assert result.difference.relative < 1.0


def test_method_errors_are_one_line():
    with pytest.raises(OptionError, match="method='data-aware' needs calibration inputs") as err:
        resolve_method("data-aware", False)
    assert "\n" not in str(err.value)
    with pytest.raises(OptionError, match="method='fisher' is unknown; use one of svd, data-aware"):
        resolve_method("fisher", True)


def test_calibration_never_reads_test_images(rng, monkeypatch, tmp_path):
    """Test images are marked (all pixels 1.0, train pixels < 0.5): no calibration pass sees one."""
    import importlib

    from lightcompress.factorization import statistics as calibration, apply as factorize

    compression = importlib.import_module("lightcompress.flows.compress")  # the module, not flows.compress()

    model = _conv_model()
    train = rng.random((150, 10, 10, 2), dtype=np.float32) * 0.5
    test = np.ones((40, 10, 10, 2), dtype=np.float32)
    prepared = Prepared("marked", train, rng.integers(0, 5, 150), test, rng.integers(0, 5, 40), 5)
    seen = []
    real_collect = calibration.collect

    def spy(m, x, *args, **kwargs):
        seen.append(np.asarray(x))
        return real_collect(m, x, *args, **kwargs)

    monkeypatch.setattr(calibration, "collect", spy)
    monkeypatch.setattr(factorize, "collect", spy, raising=False)
    monkeypatch.setattr(compression, "collect", spy)
    monkeypatch.setattr(importlib.import_module("lightcompress.flows.convert"), "collect", spy)
    picked = calibration_images(prepared, 1000)
    assert len(picked) == 150 and picked.max() < 0.5
    convert(model, FixedRank(2), LayerFilter(min_params=0, conv_mode="channel"), test, calibration_x=picked)
    from lightcompress.training.finetune import FitSettings

    compression.compress(model, prepared, CompressSettings.make(target_params=0.5, layer_filter=LayerFilter(min_params=0, conv_mode="channel"), settings=FitSettings(epochs=1, batch_size=32), holdout_size=20, use_cache=False, calibration_samples=100, allow_slower=True))  # no latency profile: it reads no images
    assert seen and all(x.max() < 0.5 for x in seen)


# -- plans --------------------------------------------------------------------------------

def test_min_saving_keeps_layers_that_would_save_little():
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(60, name="square"),
                              keras.layers.Dense(4, name="thin")])
    plan = make_plan(model, FixedRank(1000), LayerFilter(min_params=0, min_saving=0.8, conv_mode="channel"))
    by = {p.name: p for p in plan.layers}
    assert by["square"].converted and by["square"].params_after - 60 <= 0.2 * 64 * 60
    # rank 1 of the 60×4 kernel keeps 64 of 240 weights: a saving of 73%, under 80%
    assert not by["thin"].converted and "min_saving=0.8" in by["thin"].skipped
    with pytest.raises(OptionError, match="min_saving"):
        LayerFilter(min_saving=1.5, conv_mode="channel")


def test_auto_considers_tucker_and_target_params_is_met(rng):
    inputs = keras.Input((12, 12, 16))
    x = keras.layers.Conv2D(32, 3, name="wide")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.MaxPooling2D(4)(x))))
    kernel = np.asarray(model.get_layer("wide").kernel)
    first, core, last = svd.tucker2(rng.normal(size=kernel.shape), 4)
    model.get_layer("wide").kernel.assign(svd.tucker_kernel(first, core, last).astype("float32"))  # ranks (2, 4)
    layer_filter = LayerFilter(min_params=0, conv_mode="auto", include=("wide",))
    plan = make_plan(model, TargetParams(0.2), layer_filter)
    wide = {p.name: p for p in plan.layers}["wide"]
    assert wide.mode == "tucker" and wide.error < 1e-3
    new = apply_plan(model, plan)
    assert new.count_params() <= 0.2 * model.count_params() * 1.02


def test_cli_convert_reports_the_method(tmp_path, rng):
    from typer.testing import CliRunner

    from lightcompress.cli import app

    model = _conv_model()
    path = tmp_path / "m.keras"
    model.save(path)
    data = tmp_path / "d.npz"
    np.savez(data, x_train=rng.random((120, 10, 10, 2), dtype=np.float32), y_train=rng.integers(0, 5, 120),
             x_test=rng.random((30, 10, 10, 2), dtype=np.float32), y_test=rng.integers(0, 5, 30))
    runner = CliRunner()
    result = runner.invoke(app, ["convert", str(path), "--rank", "2", "--min-params", "0", "--dataset", str(data),
                                 "--calibration", "100", "--json", "-o", str(tmp_path / "a.keras")])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["method"] == "data-aware" and out["calibration"]["samples"] == 100  # too few to go layer by layer
    result = runner.invoke(app, ["convert", str(path), "--rank", "2", "--min-params", "0", "--dataset", str(data),
                                 "--method", "svd", "--json", "-o", str(tmp_path / "b.keras")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["method"] == "svd"
    result = runner.invoke(app, ["convert", str(path), "--rank", "2", "--method", "data-aware",
                                 "-o", str(tmp_path / "c.keras")])
    assert result.exit_code != 0 and "--method" in result.output and "data-aware" in result.output


def test_inspect_shows_weight_and_output_errors(tmp_path, rng):
    from typer.testing import CliRunner

    from lightcompress.cli import app

    path = tmp_path / "m.keras"
    _conv_model().save(path)
    data = tmp_path / "d.npz"
    np.savez(data, x_train=rng.random((80, 10, 10, 2), dtype=np.float32), y_train=rng.integers(0, 5, 80),
             x_test=rng.random((20, 10, 10, 2), dtype=np.float32), y_test=rng.integers(0, 5, 20))
    result = CliRunner().invoke(app, ["inspect", str(path), "--dataset", str(data), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["errors"]["layers"]
    assert {r["name"] for r in rows} == {"c1", "c2", "d1", "d2"}
    for r in rows:  # data-aware factors are never worse on the outputs they were fitted to
        assert r["data_aware_output_error"] <= r["svd_output_error"] + 1e-6
        assert r["svd_weight_error"] <= r["data_aware_weight_error"] + 1e-6


# -- methods as strategies ------------------------------------------------------------------

def test_a_method_added_as_one_module_converts_through_python_and_the_cli(rng, tmp_path):
    from typer.testing import CliRunner

    from lightcompress.cli import app
    from tests import toy_method  # noqa: F401  (registers "diagonal-aware")

    model = _conv_model()
    x = rng.random((120, 10, 10, 2), dtype=np.float32) * np.linspace(0, 1, 10)[None, :, None, None]
    result = convert(model, FixedRank(2), LayerFilter(min_params=0, conv_mode="channel"), x[:40], calibration_x=x[40:],
                     method="diagonal-aware")
    assert result.method == result.plan.method == "diagonal-aware"
    d2 = model.get_layer("d2")  # its factors are the whitened SVD on the diagonal second moment
    probe = keras.Model(model.inputs, d2.input)
    rows = np.asarray(probe(x[40:]), dtype=np.float64)
    a, b = svd.data_aware_svd(np.asarray(d2.kernel), np.diag(np.mean(rows ** 2, axis=0)), 2)
    twin = next(layer for layer in result.model.layers if layer.name in ("d2", "d2_light"))
    np.testing.assert_allclose(np.asarray(twin.kernel_a) @ np.asarray(twin.kernel_b), a @ b, atol=1e-4)

    path, data = tmp_path / "m.keras", tmp_path / "d.npz"
    model.save(path)
    np.savez(data, x_train=x[40:], y_train=rng.integers(0, 5, 80), x_test=x[:40], y_test=rng.integers(0, 5, 40))
    out = CliRunner().invoke(app, ["convert", str(path), "--rank", "2", "--min-params", "0", "--dataset", str(data),
                                   "--method", "diagonal-aware", "--json", "-o", str(tmp_path / "t.keras")])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["method"] == "diagonal-aware"


def test_sensitivity_measures_the_bias_correction_from_the_original_kernel(rng):
    """Inputs whose mean (along e0) is weaker than their spread (along e1): the rank-1 factors keep
    the spread and drop the mean, and only the bias corrected from the original kernel (E[x]·W −
    E[x]·W_r) takes the lost mean output back (from the truncated kernel it is about zero)."""
    from lightcompress.factorization.methods import get_method
    from lightcompress.planning import analyse

    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(6, name="d")(inputs))
    model.get_layer("d").kernel.assign(rng.normal(size=(8, 6)).astype("float32"))
    x = rng.normal(size=(200, 8)) * 0.05
    x[:, 0] += 2.0
    x[:, 1] += 6.0 * rng.normal(size=200)
    x = x.astype("float32")
    y = model.predict(x, verbose=0).argmax(axis=1)
    data = Prepared("shifted", x[:100], y[:100], x[100:], y[100:], 6)
    stats = collect(model, x[:100], needs=get_method("data-aware+bias").needs)
    layer_filter = LayerFilter(min_params=0, conv_mode="channel")
    losses = {}
    for name in ("data-aware", "data-aware+bias"):
        sens = analyse(model, data, layer_filter, use_cache=False, method=name, statistics=stats)
        assert sens.method == name
        losses[name] = {o.rank: o.loss for o in sens.layers[0].options if o.rank}[1]
    assert losses["data-aware+bias"] < 0.85 * losses["data-aware"]  # the old measure: equal
