"""A Plan is a plain record: written to JSON and read back for the same model it is the same plan,
with everything it prints (notes, budget, layers kept and why, layers not considered, measured
errors) (issue 35)."""

import json

import keras
import pytest

import lightcompress
from lightcompress.planning import read_plan, write_plan
from lightcompress.planning.plan import plan_from_dict


def _model():
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(16, 3, activation="relu", name="c1", kernel_constraint=keras.constraints.MaxNorm(3)),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu", name="fc"),
        keras.layers.Dense(10, name="head"),
    ])


@pytest.mark.parametrize("rule", [{"target_params": 0.5}, {"rank": 3}, {"energy": 0.9}])
def test_a_plan_round_trips_through_json(tmp_path, rule):
    model = _model()
    plan = lightcompress.plan(model, min_params=100, **rule)
    path = write_plan(plan, tmp_path / "p.json")
    back = read_plan(model, path)
    assert back == plan
    assert back.to_dict() == json.loads(path.read_text()) == json.loads(json.dumps(plan.to_dict()))
    assert back.notes == plan.notes and back.budget == plan.budget
    assert back.not_considered == plan.not_considered and back.not_considered  # the BatchNormalization
    assert [p.skipped for p in back.layers] == [p.skipped for p in plan.layers]


def test_measured_output_errors_are_kept(tmp_path):
    """A data-aware plan's output errors were measured on calibration images the reader does not
    have: they come back as recorded, not recomputed as weight errors or dropped."""
    model = _model()
    data = lightcompress.plan(model, rank=3, min_params=100).to_dict()
    for i, layer in enumerate(data["layers"]):
        if layer["rank"] is not None:
            layer["output_error"] = 0.125 + i / 100
    back = plan_from_dict(model, json.loads(json.dumps(data)))
    assert back.to_dict() == data


def test_a_plan_read_for_another_model_is_refused(tmp_path):
    plan = lightcompress.plan(_model(), rank=3, min_params=100)
    other = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(64, name="fc")])
    with pytest.raises(lightcompress.errors.LightCompressError, match="names layer 'c1'"):
        plan_from_dict(other, plan.to_dict())
