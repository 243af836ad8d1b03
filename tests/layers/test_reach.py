"""Reach: graphs with raw ops and custom layers, MultiHeadAttention, real keras.applications
architectures, kernel constraints, the token-input output check, layers not considered."""

import keras
import numpy as np
import pytest

from lightcompress.factorization import candidates as analyze
from lightcompress.deploy import lower as lowered
from lightcompress import report
from lightcompress.report.convert import RANDOM_INPUTS_NOTE
from lightcompress.factorization.apply import apply_plan
from lightcompress.flows.convert import convert
from lightcompress.data.synthetic import model_inputs_like
from lightcompress.training.evaluation import output_difference
from lightcompress.planning import Energy, FixedRank, LayerFilter, TargetParams, make_plan
from lightcompress.layers import LightMultiHeadAttention, separable_conv2d

ALL = LayerFilter(min_params=0, min_saving=0.0, conv_mode="channel")  # every layer, any saving: exactness is the point here


def plant_low_rank(model, rank=3):
    """Give every factorisable kernel rank ``rank`` (in its first mode), so a high-energy
    conversion really factorises and stays exact."""
    rng = np.random.default_rng(0)
    for c in analyze.candidates(model):
        if c.unsupported is None:
            mode = c.modes[0]
            n, m = c.matrix_shape(mode)
            r = min(rank, n, m)
            product = rng.normal(size=(n, r)) @ rng.normal(size=(r, m))
            product *= np.linalg.norm(c.kernel) / max(np.linalg.norm(product), 1e-30)  # the layer's scale
            c.entry.assign_kernel(c.layer, c.entry.from_matrix(product, c.kernel_shape, mode).astype(c.kernel.dtype))


def relative(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30))


def check_exact(model, tmp_path, rtol=1e-4, x=None):
    """Plant low-rank kernels, convert at energy 0.9999, compare, reload; the conversion."""
    plant_low_rank(model)
    result = convert(model, Energy(0.9999), ALL, x=x)
    assert result.plan.converted, "nothing was factorised"
    x = model_inputs_like(model, batch=4) if x is None else x
    y = model.predict(x, verbose=0)
    assert relative(y, result.model.predict(x, verbose=0)) < rtol
    path = tmp_path / "m.keras"
    result.model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), result.model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    return result


# -- raw ops and custom layers ----------------------------------------------------------------

def test_a_graph_with_raw_tensor_ops_converts(tmp_path):
    inp = keras.Input((16,))
    h = keras.layers.Dense(16, name="d1")(inp)
    h = h + inp  # an op node, not a layer
    h = keras.ops.relu(h) * 2.0
    out = keras.layers.Dense(4, name="d2")(h)
    model = keras.Model(inp, out)
    result = check_exact(model, tmp_path)
    assert {p.name for p in result.plan.converted} == {"d1", "d2"}


def test_a_layerscale_style_custom_layer_is_copied(tmp_path):
    @keras.saving.register_keras_serializable(package="test_reach")
    class Scale(keras.layers.Layer):
        def build(self, shape):
            self.gamma = self.add_weight(shape=(shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.gamma

    inp = keras.Input((12,))
    h = keras.layers.Dense(12, name="d")(inp)
    scale = Scale(name="scale")
    out = scale(h) + inp
    model = keras.Model(inp, out)
    scale.gamma.assign(np.linspace(0.5, 2, 12).astype("float32"))
    result = check_exact(model, tmp_path)
    assert np.allclose(result.model.get_layer("scale").gamma.numpy(), scale.gamma.numpy())
    assert [r["name"] for r in result.plan.not_considered] == ["scale"]
    assert "Scale is not a layer type lightcompress factorises" in result.plan.not_considered[0]["reason"]


# -- MultiHeadAttention ------------------------------------------------------------------------

def _attention_model():
    inp = keras.Input((6, 16))
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8, name="mha")
    h = keras.layers.Add()([mha(inp, inp), inp])  # a layer, not ``+``: Keras's .h5 cannot reload raw ops
    return keras.Model(inp, keras.layers.Dense(5, name="head")(keras.layers.GlobalAveragePooling1D()(h)))


def test_attention_projections_at_full_rank_equal_the_original(rng):
    model = _attention_model()
    plan = make_plan(model, FixedRank(1000), ALL)
    names = [p.name for p in plan.layers]
    assert names[:4] == ["mha/query", "mha/key", "mha/value", "mha/attention_output"]
    for p in plan.layers[:4]:
        p.rank, p.skipped, p.mode = 16, None, "einsum"  # full rank (16 x 16), past the break-even clip
    plan.layers = plan.layers[:4]
    twin = apply_plan(model, plan)
    assert type(twin.get_layer("mha_light")) is LightMultiHeadAttention
    x = rng.random((3, 6, 16), dtype=np.float32)
    np.testing.assert_allclose(twin.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


def test_factorised_attention_round_trips_and_lowers(tmp_path, rng):
    model = _attention_model()
    twin = apply_plan(model, make_plan(model, FixedRank(3), ALL))
    light = twin.get_layer("mha_light")
    assert light.ranks == {"query": 3, "key": 3, "value": 3, "attention_output": 3}
    assert twin.count_params() < model.count_params()
    x = rng.random((2, 6, 16), dtype=np.float32)
    y = twin.predict(x, verbose=0)
    for suffix in (".keras", ".h5"):
        twin.save(tmp_path / f"m{suffix}")
        again = keras.saving.load_model(tmp_path / f"m{suffix}")
        np.testing.assert_allclose(again.predict(x, verbose=0), y, rtol=1e-5, atol=1e-6)
    low = lowered.lower_model(twin)
    np.testing.assert_allclose(low.predict(x, verbose=0), y, rtol=1e-5, atol=1e-6)
    stats = {s.name: s.macs for s in analyze.layer_stats(twin)}
    # projections at rank 3: 6 positions x 3 x (16 + 16) each; scores and values 2 x 6 x 6 x 8 each
    assert stats["mha_light"] == 4 * 6 * 3 * 32 + 2 * (2 * 6 * 6 * 8)


# -- kernel constraints -------------------------------------------------------------------------

def test_a_constrained_kernel_is_dropped_and_training_at_rate_zero_keeps_the_function(rng):
    inp = keras.Input((20,))
    out = keras.layers.Dense(10, kernel_constraint="non_neg", name="d")(inp)
    model = keras.Model(inp, out)
    layer = model.get_layer("d")
    layer.kernel.assign(np.abs(rng.normal(size=(20, 10))).astype("float32"))
    result = convert(model, FixedRank(4), ALL)
    (p,) = result.plan.converted
    assert "kernel constraint NonNeg dropped" in p.note
    light = result.model.get_layer("d_light")
    assert light.kernel_constraint is None
    x = rng.random((16, 20), dtype=np.float32)
    y = rng.random((16, 10), dtype=np.float32)
    before = result.model.predict(x, verbose=0)
    result.model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="mse")
    result.model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_allclose(result.model.predict(x, verbose=0), before, rtol=1e-6, atol=1e-6)


# -- the output check -------------------------------------------------------------------------

def test_the_output_check_feeds_tokens_within_the_vocabulary():
    inp = keras.Input((12,), dtype="int32")
    h = keras.layers.Embedding(50, 8, name="emb")(inp)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(inp, out)
    x = model_inputs_like(model, batch=64)
    assert x.dtype == np.int32 and x.min() >= 0 and x.max() < 50 and len(np.unique(x)) > 20
    float_inp = keras.Input((12,))  # a float input feeding an Embedding gets tokens too
    float_model = keras.Model(float_inp, keras.layers.Embedding(7, 4)(float_inp))
    xf = model_inputs_like(float_model, batch=16)
    assert xf.max() < 7 and len(np.unique(xf)) > 1 and np.all(xf == np.round(xf))


def test_the_difference_line_leads_with_changed_predictions():
    inp = keras.Input((4,))
    a = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="a")(inp))
    b = keras.models.clone_model(a)
    b.set_weights([-w for w in a.get_weights()])  # flips the ranking of the classes
    x = np.random.default_rng(0).random((32, 4), dtype=np.float32)
    d = output_difference(a, b, x)
    assert d.changed > 0
    line = report.difference_line(d.__dict__)
    assert line.index("CHANGED") < line.index("relative difference")
    same = report.difference_line(output_difference(a, a, x).__dict__)
    assert "same top-1 class on every example (agreement 95% interval 89.3%-100.0%)" in same  # 32 of 32: Wilson
    assert "up to 78 points off" in RANDOM_INPUTS_NOTE and same.endswith("max abs 0")  # said once, on its own line
    made = report.difference_line(output_difference(a, a, x, "inputs synthesised from the model's BatchNorm "
                                                             "statistics").__dict__)
    assert "WARNING" not in made and "27 points below to 4 points above" in made
    real = report.difference_line(output_difference(a, a, x, "test images of digits").__dict__)
    assert real.endswith("max abs 0")


# -- layers not considered ----------------------------------------------------------------------

def test_every_weighted_layer_not_considered_is_in_the_report(tmp_path):
    inp = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(8, 3, name="conv")(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.DepthwiseConv2D(3, name="dw")(h)
    h = keras.layers.Conv2D(8, 1, groups=2, name="grouped")(h)
    out = keras.layers.Dense(4, name="fc")(keras.layers.Flatten()(h))
    model = keras.Model(inp, out)
    result = convert(model, FixedRank(2), ALL)
    reasons = {r["name"]: r["reason"] for r in result.plan.not_considered}
    assert set(reasons) == {"bn", "dw"}
    assert "depthwise" in reasons["dw"] and "not a matrix" in reasons["bn"]
    kept = {p.name: p.skipped for p in result.plan.layers if p.skipped}
    assert "grouped convolution (groups=2)" in kept["grouped"]
    data = report.conversion_dict(result, "m.keras", "o.keras", 1, 1)
    text = "\n".join(line for s in report.conversion_sections(data) for line in s.lines)
    assert "not considered: DepthwiseConv2D (dw" in text and "not considered: BatchNormalization (bn" in text


def test_energy_close_to_one_is_not_printed_as_one():
    assert report.energy_text(0.99999) == "0.99999" and report.energy_text(1.0) == "1.000"


def test_inspect_says_macs_are_unknown_for_a_free_input_size():
    from lightcompress import flows

    inp = keras.Input((None, 4))
    model = keras.Model(inp, keras.layers.Conv1D(4, 3)(inp))
    data = flows.inspect_model(model, "m.keras")
    assert data["totals"]["macs"] is None
    lines = report.inspect_sections(data)[0].lines
    assert "MACs unknown" in lines[0]


# -- keras.applications at small inputs ---------------------------------------------------------

# Logits, not softmax: a saturated softmax of random weights would hide differences.
APPLICATIONS = {
    "MobileNetV2": lambda: keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=10, classifier_activation=None),
    "EfficientNetB0": lambda: keras.applications.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None),
    "ResNet50": lambda: keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None),
    "DenseNet121": lambda: keras.applications.DenseNet121(weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None),
    "InceptionV3": lambda: keras.applications.InceptionV3(weights=None, input_shape=(75, 75, 3), classes=10, classifier_activation=None),
    "Xception": lambda: keras.applications.Xception(weights=None, input_shape=(71, 71, 3), classes=10, classifier_activation=None),
    "NASNetMobile": lambda: keras.applications.NASNetMobile(weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None),
    "ConvNeXtTiny": lambda: keras.applications.ConvNeXtTiny(weights=None, input_shape=(32, 32, 3), classes=10, classifier_activation=None),
}
FAST = ("MobileNetV2",)  # ~7 s; EfficientNetB0 (~12-30 s) and the others take longer: slow


@pytest.mark.slow  # 10-25 s on 2 cores; the default suite stays within 5 minutes (.ci/run runs -m slow)
@pytest.mark.parametrize("name", FAST)
def test_small_applications_convert_exactly_and_reload(name, tmp_path):
    check_exact(APPLICATIONS[name](), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in APPLICATIONS if n not in FAST])
def test_applications_convert_exactly_and_reload(name, tmp_path):
    result = check_exact(APPLICATIONS[name](), tmp_path)
    if name in ("Xception", "NASNetMobile"):
        assert "SeparableConv2D" in {p.kind for p in result.plan.converted}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["Xception", "NASNetMobile"])
def test_target_params_is_met_on_separable_architectures(name):
    model = APPLICATIONS[name]()
    plan = make_plan(model, TargetParams(0.3), LayerFilter(conv_mode="channel"))
    after = model.count_params() - plan.params_saved()
    assert after <= 0.31 * model.count_params()
    assert separable_conv2d.SEPARABLE_CONV2D.name in {p.kind for p in plan.converted}
