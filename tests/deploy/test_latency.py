"""Latency on the runtime a model runs in: whole models, per-layer profiles (cached), the latency
budget and the guard. No speed is asserted: only orderings of models whose costs differ by
orders of magnitude, counts of calls, and allocations on constructed profiles."""

from dataclasses import FrozenInstanceError

import keras
import pytest

from lightcompress.deploy import latency, measure
from lightcompress.deploy.timing import Runtime
from lightcompress.planning import LayerFilter
from lightcompress.planning.allocate import allocate
from lightcompress.planning.sensitivity import LayerSensitivity, Option, Sensitivity


def _mlp(width, depth, name):
    layers = [keras.Input((width,))] + [keras.layers.Dense(width, name=f"{name}{i}") for i in range(depth)]
    return keras.Sequential(layers, name=name)


def test_keras_timing_is_the_compiled_forward_pass_not_predict_on_batch(monkeypatch):
    cheap, costly = _mlp(16, 1, "cheap"), _mlp(1024, 6, "costly")  # 272 vs 6.3M MACs
    for model in (cheap, costly):
        monkeypatch.setattr(model, "predict_on_batch", lambda x: pytest.fail("predict_on_batch was timed"))
    fast = latency.model_latency(cheap, Runtime("keras"), batches=(1,), repeats=20, warmup=3)[0]
    slow = latency.model_latency(costly, Runtime("keras"), batches=(1,), repeats=20, warmup=3)[0]
    assert fast.median_ms < slow.median_ms
    assert fast.repeats >= 20 and fast.warmup == 3 and 0 < fast.min_ms <= fast.median_ms <= fast.q3_ms


def test_litert_timing_ranks_a_cheap_and_a_costly_model():
    cheap, costly = _mlp(16, 1, "cheap"), _mlp(1024, 6, "costly")
    fast = latency.model_latency(cheap, Runtime("litert"), batches=(1,), repeats=30, warmup=5)[0]
    slow = latency.model_latency(costly, Runtime("litert"), batches=(1,), repeats=30, warmup=5)[0]
    assert fast.median_ms < slow.median_ms


def test_measure_names_the_runtime_and_honours_repeats():
    model = _mlp(32, 2, "m")
    m = measure.measure(model, batches=(1, 4), repeats=7, warmup=2, runtime=Runtime("keras"))
    assert [lat.batch for lat in m.latency] == [1, 4] and all(lat.repeats >= 7 for lat in m.latency)
    assert "compiled Keras forward pass" in m.runtime
    assert "LiteRT interpreter, 2 threads" == Runtime("litert", 2).describe()
    with pytest.raises(Exception, match="repeats=0 is invalid"):
        latency.model_latency(model, Runtime("keras"), repeats=0)
    with pytest.raises(Exception, match="runtime='tpu' is unknown"):
        Runtime("tpu")


def test_a_runtime_is_checked_once_when_made_and_then_passed_as_it_is():
    assert Runtime() == Runtime(latency.default_runtime(), latency.DEFAULT_THREADS)
    assert Runtime("keras", 4).describe().startswith("compiled Keras forward pass")
    for threads in (0, -1, 1.5, True):
        with pytest.raises(Exception, match=rf"threads={threads!r} is invalid; use a whole number in \[1, 2147483647\]"):
            Runtime("keras", threads)
    made = Runtime("keras", 3)
    assert Runtime.parse(made) is made and Runtime.parse(made, 3) is made
    assert Runtime.parse("keras") == Runtime("keras", 2) and Runtime.parse(None, 5).threads == 5
    with pytest.raises(Exception, match="threads=4 is given twice"):
        Runtime.parse(made, 4)
    with pytest.raises(FrozenInstanceError):  # a stage cannot change what was checked
        made.threads = 0


def _conv_model():
    inputs = keras.Input((12, 12, 8))
    x = keras.layers.Conv2D(32, 3, name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(40, name="fc")(x))


@pytest.mark.slow  # ~15 s: three profiles; the LiteRT profile test below reads its cache once
def test_profile_is_cached_and_invalidated_by_the_architecture(tmp_path):
    model = _conv_model()
    steps = []
    first = latency.profile(model, LayerFilter(min_params=0, conv_mode="channel"), Runtime("keras"), repeats=3, warmup=1, cache_dir=tmp_path,
                            on_step=lambda done, total, name: steps.append(done))
    assert not first.from_cache and steps and first.cache_file
    assert {ls.name for ls in first.layers} == {"conv", "fc"}
    conv = first.layer("conv")
    assert conv.options[0].rank is None and all(o.rank for o in conv.options[1:])
    assert [o.rank for o in conv.options[1:]] == latency.latency_ladder(
        min(conv.options[-1].rank, 10_000), 1)[: len(conv.options) - 1]
    second = latency.profile(model, LayerFilter(min_params=0, conv_mode="channel"), Runtime("keras"), repeats=3, warmup=1, cache_dir=tmp_path,
                             on_step=lambda *a: pytest.fail("a cached profile was measured again"))
    assert second.from_cache and [o.ms for o in second.layer("fc").options] == [o.ms for o in first.layer("fc").options]
    other = keras.Model(model.inputs, keras.layers.Dense(41, name="fc2")(model.layers[-2].output))
    third = latency.profile(other, LayerFilter(min_params=0, conv_mode="channel"), Runtime("keras"), repeats=3, warmup=1, cache_dir=tmp_path)
    assert not third.from_cache
    (tmp_path / first.cache_file.rsplit("/", 1)[-1]).write_text("{ truncated")
    warnings = []
    fourth = latency.profile(model, LayerFilter(min_params=0, conv_mode="channel"), Runtime("keras"), repeats=3, warmup=1, cache_dir=tmp_path,
                             warn=warnings.append)
    assert not fourth.from_cache and "unreadable latency profile file" in warnings[0]


def _table(big_loss=0.01, small_loss=0.05):
    """The sensitivity of two Dense(10) layers 'big' and 'small' (110 params each), ranks 1..4,
    each losing the given loss per rank dropped."""
    def layer(name, loss_per_rank):
        options = [Option(None, None, 110, 100, 0.10, 0.9)]
        options += [Option(r, "dense", 20 * r + 10, 20 * r, 0.10 + loss_per_rank * (5 - r), 0.9) for r in range(1, 5)]
        return LayerSensitivity(name, "Dense", [10, 10], options)

    return Sensitivity(0.10, 0.9, 100, [layer("big", big_loss), layer("small", small_loss)])


def _profile(big_ms, small_ms, model_ms=1.6):
    """'big' takes 1.0 ms as it is, 'small' 0.5 ms; options as given; the whole model 1.6 ms."""
    def ll(name, base, per_rank):
        return latency.LayerLatency(name, "Dense", [10], [latency.LayerOption(None, None, base)]
                                    + [latency.LayerOption(r, "dense", per_rank(r)) for r in range(1, 5)])

    return latency.Profile("litert", 2, [ll("big", 1.0, big_ms), ll("small", 0.5, small_ms)], model_ms=model_ms)


def _allocate(sens, target, metric, profile, allow_slower=False):
    inputs = keras.Input((10,))
    x = keras.layers.Dense(10, name="big")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, name="small")(x))
    return allocate(model, sens, target, metric, 1, profile, allow_slower)


def test_allocator_honours_a_latency_budget():
    # big: rank r costs 0.2·r ms; small: 0.1·r ms; whole model 1.6 ms, layers 1.5 ms, 0.1 ms fixed.
    profile = _profile(lambda r: 0.2 * r, lambda r: 0.1 * r)
    plan = _allocate(_table(), 0.5, "latency", profile)
    chosen = {p.name: p.rank for p in plan.layers}
    spent = 0.1 + sum((0.2 if n == "big" else 0.1) * r if r else (1.0 if n == "big" else 0.5) for n, r in chosen.items())
    assert spent <= 0.5 * 1.6 + 1e-9
    assert "latency guard on litert" in plan.policy


def test_guard_keeps_a_layer_whose_factorisations_are_slower():
    # every option of 'small' is slower than 'small' as it is (0.5 ms); 'big' gets faster. By
    # loss alone 'small' is the one to factorise (it barely loses): only the guard keeps it.
    profile = _profile(lambda r: 0.1 * r, lambda r: 0.6 + 0.1 * r)
    table = _table(big_loss=0.05, small_loss=0.001)
    plan = _allocate(table, 0.7, "params", profile)
    small = next(p for p in plan.layers if p.name == "small")
    assert small.rank is None and "measured slower" in small.skipped
    assert next(p for p in plan.layers if p.name == "big").rank is not None
    unguarded = _allocate(table, 0.7, "params", profile, allow_slower=True)
    assert next(p for p in unguarded.layers if p.name == "small").rank is not None


def test_profile_times_each_option_in_the_litert_interpreter(tmp_path):
    """The LiteRT branch of the per-layer profile (compress's default runtime where TensorFlow is):
    each option is a .tflite of its own, timed in the interpreter. One small Dense layer keeps the
    conversions few; the flow tests above it skip the profile (allow_slower) or, the demo, take a
    shorter ladder."""
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(4, name="fc")(inputs))
    steps = []
    result = latency.profile(model, LayerFilter(min_params=0, conv_mode="channel"), Runtime("litert"), repeats=3,
                             warmup=1, cache_dir=tmp_path, on_step=lambda done, total, name: steps.append(total))
    assert result.runtime == "litert" and result.model_ms > 0 and not result.from_cache
    fc = result.layer("fc")
    assert [o.rank for o in fc.options] == [None, 1] and all(o.ms > 0 for o in fc.options)
    assert steps == [4, 4, 4, 4]  # the runtime's overhead, the layer as it is, its control copy, rank 1
    assert fc.control_ms is not None and fc.control_ms > 0
    assert latency.profile(model, LayerFilter(min_params=0, conv_mode="channel"), Runtime("litert"),
                           cache_dir=tmp_path).from_cache


def test_an_option_the_runtime_refuses_is_left_out_and_said(tmp_path, monkeypatch):
    """A factorised variant whose file the runtime cannot run (seen: an int8 .tflite that LiteRT's
    XNNPACK delegate failed to prepare, which ended compress) is left out of the layer's options
    with a warning; a layer that cannot run alone at all is left untimed, and the profile goes on."""
    from lightcompress.errors import LightCompressError

    model = _conv_model()
    real = latency._layer_timer
    refused = []

    def timer(one, runtime, folder, name):
        twin = [layer for layer in one.layers if getattr(layer, "rank", None) == 1 and "Light" in type(layer).__name__]
        whole_conv = any(type(layer).__name__ == "Conv2D" for layer in one.layers)
        if twin or (whole_conv and not refused):
            refused.append(name)
            raise LightCompressError(f"{folder}/{name}.tflite could not be loaded as litert: failed to prepare")
        return real(one, runtime, folder, name)

    monkeypatch.setattr(latency, "_layer_timer", timer)
    warnings = []
    result = latency.profile(model, LayerFilter(min_params=0, conv_mode="channel"), Runtime("keras"), repeats=3,
                             warmup=1, cache_dir=tmp_path, warn=warnings.append)
    assert result.layer("conv") is None  # the Conv2D as it is was refused: the layer is untimed
    assert any("conv does not run alone" in w for w in warnings)
    fc = result.layer("fc")
    assert fc is not None and 1 not in [o.rank for o in fc.options] and len(fc.options) > 1
    assert any("fc at rank 1" in w and "that option is left out" in w for w in warnings)
