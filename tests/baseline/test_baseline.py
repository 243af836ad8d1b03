"""tfmot baselines (issue 16): the tf_keras twin, pruning, clustering, QAT, and the process boundary.

Each tfmot run starts one worker process (TensorFlow import included: ~5-10 s here), so the runs
are shared through module-scoped fixtures and train a small model on a slice of the digits.
"""

import importlib.util
import json
import os
import sys

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from lightcompress.io import models as model_io
from lightcompress.baseline import run, spec
from lightcompress.cli import app
from lightcompress.data import DataSpec, open_for_model
from lightcompress.errors import LightCompressError, OptionError, UnsupportedModelError
from lightcompress.training.finetune import FitSettings

from ..conftest import real_model_path
from ..models import residual

# Looked up, never imported: importing tfmot would switch this process's tf.keras to Keras 2.
if not all(importlib.util.find_spec(m) for m in ("tensorflow_model_optimization", "tf_keras")):
    pytest.skip("needs tensorflow-model-optimization and tf-keras (the [baseline] extra)", allow_module_level=True)

runner = CliRunner()
FAST = FitSettings(epochs=2, batch_size=64, seed=0)


def small_cnn():
    keras.utils.set_random_seed(7)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, activation="relu", name="conv"),
        keras.layers.Conv2D(32, 3, activation="relu", name="conv_big"),
        keras.layers.Dropout(0.1),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu", name="fc"),
        keras.layers.Dense(10, activation="softmax", name="head"),
    ], name="small_cnn")


@pytest.fixture(scope="module")
def digits():
    model = small_cnn()
    return model, open_for_model(model, DataSpec("digits", train_limit=600, test_limit=200), in_memory=True)


@pytest.fixture(scope="module")
def pruned_by_the_cli(tmp_path_factory):
    """One pruning run, through the command line (a tfmot worker costs seconds): the command's
    output, its folder, and the result ``run.baseline`` handed the command, caught on its way."""
    folder = tmp_path_factory.mktemp("prune")
    small_cnn().save(folder / "cnn.keras")
    seen = {}
    real = run.baseline

    def caught(model, *args, **kwargs):
        seen["before"] = [w.copy() for w in model.get_weights()]
        seen["result"] = real(model, *args, **kwargs)
        seen["after"] = model.get_weights()
        return seen["result"]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run, "baseline", caught)
        result = runner.invoke(app, ["baseline", str(folder / "cnn.keras"), "-d", "digits", "--method", "prune",
                                     "--target-params", "0.3",
                                     "--epochs", str(FAST.epochs), "--batch-size", str(FAST.batch_size), "--seed",
                                     str(FAST.seed), "--train-limit", "600", "--test-limit", "200", "--holdout", "100",
                                     "--no-sizes", "--json"])
    return result, folder, seen


@pytest.fixture(scope="module")
def pruned(pruned_by_the_cli):
    result, _, seen = pruned_by_the_cli
    assert result.exit_code == 0, result.output
    assert all(np.array_equal(a, b) for a, b in zip(seen["before"], seen["after"]))  # input unchanged
    return seen["result"]


@pytest.fixture(scope="module")
def clustered(digits):
    model, prepared = digits
    return run.baseline(model, prepared, "cluster", 0.15, settings=FitSettings(epochs=1), holdout_size=100)


# -- the twin ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fmnist_cnn_keras2.h5", "fmnist_cnn_keras3.h5"])
def test_twin_reproduces_the_real_models(name):
    model = model_io.load_model(real_model_path(name))
    x = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32)
    assert run.check_twin(model, x) <= 1e-5


@pytest.mark.slow  # a tfmot worker process (~8 s); .ci/run runs -m slow
def test_twin_of_a_functional_model_with_add_and_batch_norm(rng):
    model = residual()
    bn = model.get_layer("bn")  # non-trivial statistics, so a wrong mapping would show
    bn.set_weights([rng.normal(size=w.shape).astype("float32") * 0.2 + (1 if i in (0, 3) else 0)
                    for i, w in enumerate(bn.get_weights())])
    x = rng.random((16, 12, 12, 3), dtype=np.float32)
    assert run.check_twin(model, x) <= 1e-4


def test_spec_keeps_architecture_keys_only():
    entries = spec.model_spec(small_cnn())[0]["layers"]
    assert [e["class"] for e in entries] == ["Conv2D", "Conv2D", "Dropout", "Flatten", "Dense", "Dense"]
    assert entries[0]["config"]["filters"] == 16 and "kernel_initializer" not in entries[0]["config"]


# -- refusals, in one line --------------------------------------------------------------------

def test_unsupported_layer_is_refused_in_one_line():
    model = keras.Sequential([keras.Input((5, 4)), keras.layers.LSTM(8, name="recurrent"), keras.layers.Dense(2)])
    with pytest.raises(UnsupportedModelError) as err:
        spec.model_spec(model)
    message = str(err.value)
    assert "\n" not in message and "'recurrent'" in message and "LSTM" in message


def test_non_default_setting_is_refused_not_dropped():
    dense = keras.layers.Dense(4, name="fc")
    model = keras.Sequential([keras.Input((3,)), dense])
    dense.enable_lora(2)
    with pytest.raises(UnsupportedModelError, match="'fc' has lora_rank=2"):
        spec.model_spec(model)


def test_cli_refuses_unsupported_layer_in_one_line_before_training(tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.GaussianNoise(0.1, name="noise"),
                              keras.layers.Dense(10, activation="softmax")])
    path = tmp_path / "m.keras"
    model.save(path)
    result = runner.invoke(app, ["baseline", str(path), "--method", "prune", "--target-params", "0.5",
                                 "--min-params", "0", "-d", "digits"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "'noise'" in lines[0] and "GaussianNoise" in lines[0]
    assert not (tmp_path / "m.pruned.keras").exists()


def test_budget_errors_name_the_option(tmp_path):
    model = small_cnn()
    with pytest.raises(OptionError, match=r"target_params=1.5 is not a fraction"):
        run.plan_budget(model, "prune", 1.5)
    with pytest.raises(LightCompressError, match="too small for clustering"):
        run.plan_budget(model, "cluster", 0.01)
    path = tmp_path / "m.keras"  # a real file: a missing one is answered first
    model.save(path)
    result = runner.invoke(app, ["baseline", str(path), "--method", "qat", "--target-params", "0.2",
                                 "-d", "digits"])
    assert result.exit_code == 1 and "--target-params does not apply" in result.output


def test_budgets_match_low_rank_params():
    model = small_cnn()
    total = model.count_params()
    b = run.plan_budget(model, "prune", 0.2)
    assert b.layers == ["conv_big", "fc"]  # conv (144 weights) and head (640) are below min_params
    kernels = sum(model.get_layer(n).get_weights()[0].size for n in b.layers)
    assert total - round(b.sparsity * kernels) == b.target_nonzero == round(0.2 * total)
    c = run.plan_budget(model, "cluster", 0.2)
    assert c.storage_params <= 0.2 * total and c.clusters == 2 ** c.bits_per_weight


# -- pruning and clustering -------------------------------------------------------------------

@pytest.mark.slow  # 10-25 s on 2 cores; the default suite stays within 5 minutes (.ci/run runs -m slow)
def test_pruning_reaches_the_requested_sparsity(pruned):
    b = pruned.budget
    assert abs(pruned.nonzero - b.target_nonzero) <= 0.01 * b.target_nonzero
    for row in pruned.layers:
        if row["compressed"]:
            assert abs(1 - row["kernel_nonzero"] / row["kernel_size"] - b.sparsity) < 0.01, row
        else:
            assert row["kernel_nonzero"] == row["kernel_size"]
    assert pruned.fit["schedule"]["final_sparsity"] == pytest.approx(b.sparsity)


@pytest.mark.slow  # 10-25 s on 2 cores; the default suite stays within 5 minutes (.ci/run runs -m slow)
def test_clustering_leaves_the_requested_unique_values(clustered):
    k = clustered.budget.clusters
    assert k == 16  # 4 bits per weight fit in 0.15 of this model's float32 storage
    for layer in clustered.model.layers:
        if layer.name in clustered.budget.layers:
            assert len(np.unique(layer.get_weights()[0])) == k, layer.name
    assert all(len(np.unique(clustered.model.get_layer(n).get_weights()[0])) > k for n in ("conv", "head"))


@pytest.mark.slow  # 10-25 s on 2 cores; the default suite stays within 5 minutes (.ci/run runs -m slow)
def test_result_reloads_in_keras3_with_the_twins_predictions(pruned, clustered, tmp_path):
    for result in (pruned, clustered):
        path = tmp_path / f"{result.method}.keras"
        model_io.save_model(result.model, path)
        reloaded = model_io.load_model(path)
        x, twin_out = result.probe
        np.testing.assert_allclose(reloaded.predict(x, verbose=0), twin_out, atol=1e-5, rtol=1e-4)
        assert result.worker["tf_keras_is_legacy"] is True  # tfmot really ran on Keras 2


@pytest.mark.slow  # 10-25 s on 2 cores; the default suite stays within 5 minutes (.ci/run runs -m slow)
def test_main_process_stays_on_keras3_after_a_baseline(pruned):
    import tensorflow as tf

    assert keras.__version__.startswith("3.")
    assert "tensorflow_model_optimization" not in sys.modules and "tf_keras" not in sys.modules
    assert os.environ.get("TF_USE_LEGACY_KERAS") in (None, "", "0")
    assert tf.keras.layers.Dense is keras.layers.Dense


# -- QAT and the command ----------------------------------------------------------------------

@pytest.mark.slow
def test_qat_writes_a_verified_int8_litert_file(digits):
    from lightcompress.deploy.sizes import tflite_sizes

    model, prepared = digits
    result = run.qat(model, prepared, settings=FitSettings(epochs=1), holdout_size=100)
    assert result.tflite[4:8] == b"TFL3"
    measured = tflite_sizes(result.tflite, result.model, prepared)
    # int8 against the float weights it was trained from: close (the small digits model's classes
    # are near ties after one epoch, so top-1 agreement is a poor measure here)
    assert measured["max_abs_diff"] < 0.1, measured
    assert 0 < measured["file_bytes"] < 4 * model.count_params()  # int8: well under float32 bytes


@pytest.mark.slow  # 10-25 s on 2 cores; the default suite stays within 5 minutes (.ci/run runs -m slow)
def test_cli_baseline_writes_a_keras3_model_and_reports(pruned_by_the_cli):
    result, folder, _ = pruned_by_the_cli  # the run the pruning tests above look at
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{"):])
    assert out["report"] == "baseline" and out["method"] == "prune"
    saved = model_io.load_model(folder / "cnn.pruned.keras")
    assert int(sum(np.count_nonzero(w) for w in saved.get_weights())) == out["nonzero"]
    assert out["twin_max_abs_diff"] <= 1e-5 and out["return_max_abs_diff"] <= 1e-5
