"""Budgets allocated by error (issue 23): TargetMacs and TargetLatency plans meet their budget and fill
it, on models whose MACs and (constructed) latencies are known by hand; an unreachable budget names
the smallest reachable fraction; the allocation honours the latency guard. No time is measured here."""

import keras
import numpy as np
import pytest

from lightcompress.deploy import latency
from lightcompress.errors import OptionError, RankError
from lightcompress.factorization.candidates import candidates, layer_stats
from lightcompress.planning import (
    ErrorAllocation,
    LayerFilter,
    Ratio,
    TargetLatency,
    TargetMacs,
    TargetParams,
    make_plan,
    rank_rule,
)

FILTER = LayerFilter(min_params=0, conv_mode="channel")
SHAPES = {"a": (64, 256), "b": (256, 128), "c": (128, 10)}  # (inputs, units) of each Dense
LIMITS = {"a": 40, "b": 68, "c": 7}  # the largest rank keeping <= 80% of n·m: r·(n + m) <= 0.8·n·m


def _mlp():
    return keras.Sequential([keras.Input((64,))] + [keras.layers.Dense(m, name=name) for name, (_, m) in SHAPES.items()])


def _macs(plan):
    """MACs per example of the planned model, by hand: n·m a Dense as it is, r·(n + m) factorised."""
    total = 0
    for p in plan.layers:
        n, m = SHAPES[p.name]
        total += n * m if p.rank is None else p.rank * (n + m)
    return total


WHOLE_MACS = 64 * 256 + 256 * 128 + 128 * 10  # 50,432


def _filled(used, budget, upgrades):
    """Within the budget, and at least 97% of it unless no layer's next rank fits (``upgrades``: the
    extra cost of each converted layer's next rank)."""
    assert used <= budget + 1e-12
    assert used >= 0.97 * budget or all(used + extra > budget for extra in upgrades), (used, budget, upgrades)


def test_a_mac_count_by_hand_agrees_with_the_library():
    assert sum(s.macs for s in layer_stats(_mlp())) == WHOLE_MACS


@pytest.mark.parametrize("target", [0.15, 0.3, 0.5, 0.75])
def test_target_macs_meets_the_budget_and_fills_it(target):
    plan = make_plan(_mlp(), TargetMacs(target), FILTER)
    used, budget = _macs(plan), target * WHOLE_MACS
    upgrades = [sum(SHAPES[p.name]) for p in plan.converted if p.rank < LIMITS[p.name]]
    _filled(used, budget, upgrades)
    assert plan.budget == {"metric": "macs", "target": target, "planned": pytest.approx(used / WHOLE_MACS, abs=1e-6)}
    assert plan.policy == f"target macs {target:g}" and plan.converted


def test_a_macs_budget_spends_where_the_macs_are_not_where_the_params_are():
    # A conv over 16x16 positions holds 2% of the params and 96% of the MACs; the Dense layers the rest.
    inputs = keras.Input((16, 16, 8))
    x = keras.layers.Conv2D(32, 3, padding="same", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(512, name="fc")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="head")(x))
    by_macs = {p.name: p for p in make_plan(model, TargetMacs(0.5), FILTER).layers}
    by_params = {p.name: p for p in make_plan(model, TargetParams(0.5), FILTER).layers}
    assert by_macs["conv"].converted and not by_macs["fc"].converted
    assert by_params["fc"].converted and not by_params["conv"].converted


def _profile(model_ms=0.035):
    """Per-layer times by hand: as it is a 10 us, b 20 us, c 2 us; rank r costs 0.2·r us in a and c,
    0.25·r us in b (measured at rank 1 and at the largest rank, linear between); the whole model
    ``model_ms`` (3 us beyond the layers)."""
    per_rank = {"a": 0.0002, "b": 0.00025, "c": 0.0002}
    base = {"a": 0.010, "b": 0.020, "c": 0.002}
    layers = [latency.LayerLatency(name, "Dense", [SHAPES[name][0]],
                                   [latency.LayerOption(None, None, base[name])]
                                   + [latency.LayerOption(r, "dense", per_rank[name] * r) for r in (1, LIMITS[name])])
              for name in SHAPES]
    return latency.Profile("keras", 2, layers, model_ms=model_ms), per_rank, base


@pytest.mark.parametrize("target", [0.3, 0.5, 0.8])
def test_target_latency_meets_the_budget_and_fills_it(target):
    profile, per_rank, base = _profile()
    plan = make_plan(_mlp(), TargetLatency(target, profile), FILTER)
    fixed = 0.035 - sum(base.values())
    used = fixed + sum(base[p.name] if p.rank is None else per_rank[p.name] * p.rank for p in plan.layers)
    upgrades = [per_rank[p.name] for p in plan.converted if p.rank < LIMITS[p.name]]
    _filled(used, target * 0.035, upgrades)
    assert plan.budget["metric"] == "latency" and plan.budget["runtime"] == "keras"
    assert plan.budget["planned"] == pytest.approx(used / 0.035, abs=1e-6)
    assert plan.policy == f"target latency {target:g} on keras"
    assert all(p.note.endswith("us as it is") for p in plan.converted)


def test_a_latency_plan_says_what_bounds_its_speed_up():
    # The whole model 35 us: 3 us in no layer (fixed); a, b, c as they are 10, 20, 2 us. Every option
    # of c is made slower than c as it is (4 us at rank 1): the guard keeps c, and the note names it.
    profile, _, _ = _profile()
    c = profile.layer("c")
    c.options[1:] = [latency.LayerOption(r, "dense", 0.004 + 0.0002 * r) for r in (1, LIMITS["c"])]
    plan = make_plan(_mlp(), TargetLatency(0.3, profile), FILTER)  # 10.5 us: a and b must be factorised
    note = next(n for n in plan.notes if n.startswith("speed-up bound (keras): "))
    assert "9% of the model's 35 us is in what no factorisation speeds up" in note  # 3 / 35
    assert "6% in factorisable layers kept as they are (c 2 us)" in note  # 2 / 35
    fastest = (0.003 + 0.0002 + 0.00025 + 0.002) / 0.035  # a and b at rank 1, c as it is
    assert note.endswith(f"the fastest plan would take about {fastest:.2f} of the original's time")
    assert not any(n.startswith("speed-up bound") for n in make_plan(_mlp(), TargetParams(0.5), FILTER).notes)


def test_latency_budget_counts_layers_timed_alone_beyond_the_whole_model():
    # The layers alone add up to 32 us, the model to 20 us: fractions are of the larger.
    profile, per_rank, base = _profile(model_ms=0.020)
    plan = make_plan(_mlp(), TargetLatency(0.5, profile), FILTER)
    used = sum(base[p.name] if p.rank is None else per_rank[p.name] * p.rank for p in plan.layers)
    assert used <= 0.5 * 0.032 + 1e-12


@pytest.mark.parametrize("rule,option", [(TargetMacs(0.005), "target_macs"), (TargetParams(0.004), "target_params")])
def test_an_unreachable_budget_names_the_smallest_fraction_that_is_reachable(rule, option):
    with pytest.raises(RankError) as caught:
        make_plan(_mlp(), rule, FILTER)
    message = str(caught.value)
    assert message.startswith(f"{option}={rule.fraction} cannot be met: the layers left as they are already hold")
    assert "\n" not in message and message.endswith("or a lower min_params so more layers are converted.")
    least = float(message.split("the smallest reachable fraction is ")[1][:5])
    assert f"use a fraction of at least {least:.3f}" in message
    plan = make_plan(_mlp(), type(rule)(least), FILTER)  # the fraction named is met
    assert all(p.rank == 1 for p in plan.converted) and len(plan.converted) == 3


def test_rules_are_checked_when_made_and_a_latency_target_needs_its_profile():
    assert rank_rule(target_macs=0.5) == TargetMacs(0.5)
    assert rank_rule(target_latency=0.5) == TargetLatency(0.5)
    for cls, name in ((TargetMacs, "target_macs"), (TargetLatency, "target_latency")):
        for bad in (0, 1, 1.5, float("nan"), True):
            with pytest.raises(RankError, match=rf"{name}={bad!r} is not a fraction; use a number in \(0, 1\)"):
                cls(bad)
    with pytest.raises(OptionError, match=r"choose exactly one rank rule: .* \(got rank=4, target_macs=0.5\)"):
        rank_rule(rank=4, target_macs=0.5)
    with pytest.raises(RankError, match="target_latency=0.5 needs each layer's latency: give TargetLatency"):
        make_plan(_mlp(), TargetLatency(0.5), FILTER)


def test_ratio_is_of_the_chosen_layers_and_has_no_whole_model_budget():
    plan = make_plan(_mlp(), Ratio(0.3), FILTER)
    before = sum(p.params_before for p in plan.layers)
    assert sum(p.params_after for p in plan.layers) <= 0.3 * before and plan.budget is None


def _slow_profile():
    """'a' gets 3x slower at every rank (far beyond the noise); 'b' and 'c' faster."""
    layers = []
    for name, (n, m) in SHAPES.items():
        ms = (lambda r: 0.03) if name == "a" else (lambda r: 0.0001 * r)
        layers.append(latency.LayerLatency(name, "Dense", [n], [latency.LayerOption(None, None, 0.01, 0.0001)]
                                           + [latency.LayerOption(r, "dense", ms(r), 0.0001)
                                              for r in (1, LIMITS[name])]))
    return latency.Profile("litert", 2, layers, model_ms=0.03)


def test_the_error_allocation_honours_the_latency_guard():
    model = _mlp()
    found = candidates(model, vectors=True)
    guarded = ErrorAllocation(model, found, FILTER, "params", profile=_slow_profile(), allow_slower=False)
    plan = {p.name: p for p in guarded.plan(0.5, "policy").layers}
    assert not plan["a"].converted and "measured slower than the layer as it is" in plan["a"].skipped
    assert guarded.guarded and guarded.removed == LIMITS["a"]
    with pytest.raises(RankError, match="target_params=0.25 cannot be met"):  # 'a' as it is holds a third
        guarded.plan(0.25, "policy")
    free = ErrorAllocation(model, candidates(model, vectors=True), FILTER, "params", profile=_slow_profile(),
                           allow_slower=True)
    assert not free.guarded and free.removed == 0
    assert {p.name: p for p in free.plan(0.25, "policy").layers}["a"].converted


def _steep_and_flat():
    """A large layer whose spectrum falls slowly and a small flat one: allocating energy per
    parameter under a tight budget cuts the large one to rank 1 (issue 39's MobileNetV2 case)."""
    rng = np.random.default_rng(0)

    def with_spectrum(n, m, s):
        u, _ = np.linalg.qr(rng.standard_normal((n, n)))
        v, _ = np.linalg.qr(rng.standard_normal((m, m)))
        return ((u[:, :len(s)] * s) @ v[:, :len(s)].T).astype("float32")

    model = keras.Sequential([keras.Input((256,)), keras.layers.Dense(256, name="steep"),
                              keras.layers.Dense(32, name="flat")])
    model.get_layer("steep").kernel.assign(with_spectrum(256, 256, 0.97 ** np.arange(256)))
    model.get_layer("flat").kernel.assign(with_spectrum(256, 32, np.ones(32)))
    return model


def test_without_data_the_floor_keeps_every_layer_from_being_wrecked():
    from lightcompress.planning import TargetParams, make_plan

    model, only = _steep_and_flat(), LayerFilter(min_params=0, conv_mode="channel", min_saving=0.0)
    wrecked = make_plan(model, TargetParams(0.1), only)  # no floor
    steep = next(p for p in wrecked.layers if p.name == "steep")
    assert steep.rank == 1 and steep.energy < 0.1
    with pytest.raises(RankError, match=r"keeps at least 50% of its energy .*smallest reachable fraction is "
                                        r"0\.150; use a fraction of at least 0\.150, .*or a lower no_data_floor"):
        make_plan(model, TargetParams(0.1), only, floor=0.5)
    held = make_plan(model, TargetParams(0.15), only, floor=0.5)
    assert held.converted and all(p.energy >= 0.5 for p in held.converted)
    assert held.budget["planned"] <= 0.15 and any(n.startswith("floor: planned without labelled data") for n in held.notes)


def test_convert_floors_every_plan_made_without_labelled_data():
    from lightcompress.flows.convert import convert
    from lightcompress.planning import TargetParams

    model = _steep_and_flat()
    only = LayerFilter(min_params=0, conv_mode="channel", min_saving=0.0)
    with pytest.raises(RankError, match="no_data_floor=0.5"):
        convert(model, TargetParams(0.1), only, x=np.zeros((2, 256), np.float32))
    assert convert(model, TargetParams(0.1), LayerFilter(min_params=0, conv_mode="channel", min_saving=0.0,
                                                          no_data_floor=0.0), x=np.zeros((2, 256), np.float32))
    # unlabelled calibration inputs: the floor holds on the energy of each layer's outputs on them
    calibrated = convert(model, TargetParams(0.1), only, x=np.zeros((2, 256), np.float32),
                         calibration_x=np.random.default_rng(1).standard_normal((64, 256)).astype("float32"))
    assert any(n.startswith("floor: planned without labelled data") for n in calibrated.plan.notes)
