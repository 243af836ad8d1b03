"""compress's "error" allocation (issue 24): a plan under any budget from each layer's own
truncation error, without the sensitivity analysis's model evaluations."""

import importlib

import keras
import numpy as np
import pytest

from lightcompress.data import sets as data
from lightcompress.errors import OptionError
from lightcompress.factorization.candidates import layer_stats
from lightcompress.planning import LayerFilter, sensitivity
from lightcompress.training.finetune import FitSettings
from lightcompress.flows.compress import CompressSettings

compress_flow = importlib.import_module("lightcompress.flows.compress")  # the module (flows.compress is the verb)


@pytest.fixture
def digits():
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(32, 3, padding="same", name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(48, activation="relu", name="fc"),
                              keras.layers.Dense(10, activation="softmax", name="head")])
    return model, data.prepare(data.load_dataset("digits"), model)


@pytest.mark.parametrize("goal", [{"target_params": 0.4}, {"target_macs": 0.5}])
def test_compress_error_allocation_plans_without_evaluating_a_model(digits, monkeypatch, goal):
    model, prepared = digits
    monkeypatch.setattr(sensitivity, "evaluate", lambda *a, **k: pytest.fail("the sensitivity evaluation ran"))
    monkeypatch.setattr(compress_flow, "analyse", lambda *a, **k: pytest.fail("the sensitivity analysis ran"))
    result = compress_flow.compress(model, prepared, CompressSettings.make(**goal, allocation="error", allow_slower=True, use_cache=False, holdout_size=100, calibration_samples=64, layer_filter=LayerFilter(min_params=0, conv_mode="channel"), settings=FitSettings(epochs=1)))
    (name, target), = goal.items()
    metric = name[len("target_"):]
    assert result.sensitivity is None and result.allocation == "error"
    assert result.plan.policy == f"error allocation, target {metric} {target:g}" and result.plan.converted
    assert result.plan.method == "data-aware" and all(p.output_error is not None for p in result.plan.converted)
    whole = model.count_params() if metric == "params" else sum(s.macs or 0 for s in layer_stats(model))
    after = (result.model.count_params() if metric == "params"
             else sum(s.macs or 0 for s in layer_stats(result.model)))
    assert after <= target * whole and after == pytest.approx(result.plan.budget["planned"] * whole, abs=whole * 1e-6)
    assert np.all(np.isfinite(result.model.predict(prepared.head("test", 8)[0], verbose=0)))


def test_compress_refuses_an_unknown_allocation(digits):
    model, prepared = digits
    with pytest.raises(OptionError, match=r"allocation='best' is unknown; use one of sensitivity, error\."):
        compress_flow.compress(model, prepared, CompressSettings.make(target_params=0.5, allocation="best"))
