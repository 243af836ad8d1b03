"""A latency budget met as measured (flows.measured_latency): models here are numbers, their
"measured" latency the number itself, so each round's decision can be checked; nothing is timed."""

from types import SimpleNamespace

import pytest

from lightcompress.deploy import measure
from lightcompress.deploy.timing import Latency, Runtime
from lightcompress.errors import RankError
from lightcompress.flows import measured_latency as ml


@pytest.fixture
def measured_as_value(monkeypatch):
    """Models timed together, each a number: that many ms (the original is 1.0). Records the
    models timed in each call."""
    calls = []

    def fake(nets, runtime, batches, repeats, warmup):
        calls.append(tuple(nets))
        return [[Latency(1, float(net), float(net), repeats, warmup)] for net in nets]

    monkeypatch.setattr(measure, "timed_together", fake)
    return calls


def _plan(aim):
    return SimpleNamespace(policy=f"aim {aim:g}", budget={"metric": "latency", "target": aim}, aim=aim)


def _meet(first, ratio, target=0.5, fails_above=None):
    """The plan for ``target`` measures ``ratio`` of what it was aimed at (per-layer times that do
    not add up to the whole model's); ``fails_above``: aims above it cannot be built."""
    built = []

    def build(aim, metric):
        assert metric == "latency"
        if fails_above is not None and aim > fails_above:
            raise RankError("cannot be met")
        built.append(aim)
        return aim * ratio, _plan(aim)

    model, plan = ml.meet_measured_latency(1.0, first, _plan(target), target, build, Runtime("keras"))
    return model, plan, built


def test_a_plan_that_leaves_the_budget_unspent_is_re_aimed_upwards(measured_as_value):
    # Whole models measure 0.8 of what the layers predict: 0.4 of the original for a 0.5 target
    # (ResNet50's case). Re-aimed at 0.625 it measures 0.5: the budget is filled, and that is kept.
    model, plan, built = _meet(0.4, 0.8)
    assert built == [pytest.approx(0.625)]
    assert model == pytest.approx(0.5) and plan.aim == pytest.approx(0.625)
    assert plan.budget["measured"] == pytest.approx(0.5) and plan.budget["aimed"] == pytest.approx(0.625)
    assert plan.budget["target"] == 0.5 and "measured 0.500 of the original's latency" in plan.policy


def test_a_plan_over_the_budget_is_re_aimed_downwards_and_one_within_is_never_traded_for_one_over(measured_as_value):
    model, plan, built = _meet(0.65, 1.3)  # the whole model 1.3x the prediction
    assert built == [pytest.approx(0.5 * 0.5 / 0.65)] and model == pytest.approx(0.5)
    # The measurement wobbles: re-aims land over and under; the fullest plan within the target wins.
    measured = iter([0.30, 0.55, 0.47, 0.52])
    measured_as_value.clear()

    def build(aim, metric):
        return next(measured), _plan(aim)

    model, plan = ml.meet_measured_latency(1.0, 0.40, _plan(0.5), 0.5, build, Runtime("keras"))
    assert model == 0.47 and plan.budget["measured"] == 0.47
    # every round times its model in turns with the original
    assert measured_as_value == [(1.0, m) for m in (0.40, 0.30, 0.55, 0.47)]  # 1 + LATENCY_ROUNDS


def test_when_no_plan_meets_the_target_the_closest_is_kept_and_a_plan_that_cannot_be_built_ends_the_rounds(
        measured_as_value):
    model, plan, built = _meet(0.6, 1.2, fails_above=None)  # 0.6, then 0.5/0.6*0.5*1.2 = 0.5: met
    assert model == pytest.approx(0.5)
    model, plan, built = _meet(0.7, 1.4, fails_above=0.0)  # nothing cheaper can be built
    assert built == [] and model == 0.7 and "measured 0.700" in plan.policy
