"""Lowering, export, runtimes and the export command (issue 12)."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from lightcompress import LightConv2D, LightDense
from lightcompress.deploy import export, runtimes
from lightcompress.layers import registry
from lightcompress.layers.conv2d import lower_light_conv2d
from lightcompress.layers.dense import lower_light_dense
from lightcompress.deploy import lower as lowered_module
from lightcompress.cli import app
from lightcompress.data.sets import Prepared
from lightcompress.errors import ExportError, LightCompressError
from lightcompress.flows.convert import convert
from lightcompress.data.synthetic import model_inputs_like
from lightcompress.training.evaluation import agreement, evaluate

from ..models import GRAPHS, policy

runner = CliRunner()


def _classes(model):
    """Every class in a model, nested models included."""
    found = set()
    for layer in model.layers:
        found.add(type(layer))
        if isinstance(layer, keras.Model):
            found |= _classes(layer)
    for node_ops in getattr(model, "_nodes_by_depth", {}).values():  # operation nodes too
        found |= {type(node.operation) for node in node_ops}
    return found


def _no_lightcompress(model):
    return not any(c.__module__.startswith("lightcompress") for c in _classes(model))


def _chain(layers, x):
    for layer in layers:
        x = layer(x)
    return keras.ops.convert_to_numpy(x)


def _randomise(layer, rng):
    layer.set_weights([rng.normal(size=w.shape).astype("float32") * 0.3 for w in layer.get_weights()])
    return layer


# -- lowering ---------------------------------------------------------------------------------

def test_light_dense_at_full_rank_lowers_to_the_original_dense(rng):
    dense = keras.layers.Dense(12, activation="relu", name="fc")
    dense.build((None, 20))
    _randomise(dense, rng)
    light = LightDense.from_dense(dense, rank=12)
    layers = lower_light_dense(light)
    assert [type(layer) for layer in layers] == [keras.layers.Dense] * 2
    assert [layer.name for layer in layers] == ["fc_a", "fc_b"]
    assert not layers[0].use_bias and layers[1].activation is keras.activations.relu
    x = rng.normal(size=(16, 20)).astype("float32")
    np.testing.assert_allclose(_chain(layers, x), keras.ops.convert_to_numpy(dense(x)), atol=1e-4)
    np.testing.assert_allclose(_chain(layers, x), keras.ops.convert_to_numpy(light(x)), atol=1e-5)


CONV_CASES = [  # kernel, strides, padding, dilation
    ((3, 3), (1, 1), "same", (1, 1)),
    ((3, 3), (2, 2), "valid", (1, 1)),
    ((2, 3), (2, 1), "same", (1, 1)),
    ((3, 1), (1, 1), "valid", (2, 2)),
    ((3, 3), (1, 1), "same", (2, 1)),
    ((1, 1), (2, 2), "same", (1, 1)),
]


@pytest.mark.parametrize("mode", ["channel", "spatial"])
@pytest.mark.parametrize("kernel,strides,padding,dilation", CONV_CASES)
def test_light_conv2d_at_full_rank_lowers_to_the_original_conv(mode, kernel, strides, padding, dilation, rng):
    conv = keras.layers.Conv2D(6, kernel, strides=strides, padding=padding, dilation_rate=dilation,
                               activation="tanh", name="conv")
    conv.build((None, 9, 9, 3))
    _randomise(conv, rng)
    kh, kw = kernel
    full = min(kh * kw * 3, 6) if mode == "channel" else min(kh * 3, kw * 6)
    light = LightConv2D.from_conv2d(conv, rank=full, factorization=mode)
    layers = lower_light_conv2d(light)
    assert [type(layer) for layer in layers] == [keras.layers.Conv2D] * 2
    assert [layer.name for layer in layers] == ["conv_a", "conv_b"]
    x = rng.normal(size=(2, 9, 9, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(conv(x))
    np.testing.assert_allclose(_chain(layers, x), expected, atol=1e-4)
    np.testing.assert_allclose(_chain(layers, x), keras.ops.convert_to_numpy(light(x)), atol=1e-5)


@pytest.mark.parametrize("strides,padding", [((1, 1), "same"), ((2, 2), "valid")])
def test_paper_conv_lowers_to_what_the_light_layer_computes(strides, padding, rng):
    light = LightConv2D(5, (3, 3), rank=2, strides=strides, padding=padding, factorization="paper",
                        activation="relu", name="paper_light")
    light.build((None, 8, 8, 3))
    _randomise(light, rng)
    layers = lower_light_conv2d(light)
    assert [layer.name for layer in layers] == ["paper_a", "paper_b"]
    assert layers[0].use_bias and layers[0].activation is keras.activations.relu
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(_chain(layers, x), keras.ops.convert_to_numpy(light(x)), atol=1e-4)


def test_lowering_keeps_settings_but_not_kernel_constraints():
    light = LightDense(4, rank=2, kernel_regularizer="l2", bias_regularizer="l1",
                       kernel_constraint="non_neg", bias_constraint="non_neg", dtype="float64",
                       trainable=False, name="x_light")
    light.build((None, 6))
    a, b = lower_light_dense(light)
    assert a.kernel_regularizer is light.kernel_regularizer and b.kernel_regularizer is light.kernel_regularizer
    assert b.bias_regularizer is light.bias_regularizer and b.bias_constraint is light.bias_constraint
    assert a.kernel_constraint is None and b.kernel_constraint is None
    assert a.dtype_policy.name == b.dtype_policy.name == "float64"
    assert not a.trainable and not b.trainable


def test_every_registered_twin_has_a_lowering():
    for entry in registry.REGISTRY.values():
        assert entry.lower is not None, f"{entry.name}: its twin {entry.twin.__name__} has no lowering"
    assert lowered_module.lowering_for(LightDense(3, rank=1)) is lower_light_dense
    assert lowered_module.lowering_for(keras.layers.Dense(3)) is None


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_converted_graphs_lower_to_standard_layers(graph):
    original = GRAPHS[graph]()
    converted = convert(original, *policy(rank=3, min_params=0, conv_mode="auto")).model
    before = [w.copy() for w in converted.get_weights()]
    lowered = lowered_module.lower_model(converted)
    assert _no_lightcompress(lowered)
    assert not _no_lightcompress(converted)  # the source still holds its LightLayers
    for a, b in zip(before, converted.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = model_inputs_like(converted, batch=4)
    ya, yb = converted.predict(x, verbose=0), lowered.predict(x, verbose=0)
    for a, b in zip(ya if isinstance(ya, list) else [ya], yb if isinstance(yb, list) else [yb]):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert lowered.count_params() == converted.count_params()


def _raw_op_model(rng):
    """LightLayers around a raw ``h + inp`` op, a nested model, a shared layer and a name clash."""
    conv = keras.layers.Conv2D(2, 3, padding="same", name="conv")
    conv.build((None, 6, 6, 2))
    light_conv = LightConv2D.from_conv2d(_randomise(conv, rng), rank=2)
    fc = keras.layers.Dense(24, activation="relu", name="fc")
    fc.build((None, 72))
    block = keras.Sequential(
        [keras.Input((72,)), LightDense.from_dense(_randomise(fc, rng), rank=4),
         keras.layers.Dense(16, name="fc_a")],  # "fc_a" is taken: the lowered pair must not clash
        name="block",
    )
    mix = keras.layers.Dense(16, name="mix")
    mix.build((None, 16))
    shared = LightDense.from_dense(_randomise(mix, rng), rank=3)
    inp = keras.Input((6, 6, 2), name="image")
    h = light_conv(inp)
    h = h + inp  # a raw op: an operation node with no weights
    h = keras.layers.Flatten()(h)
    h = block(h)
    h = shared(shared(h))
    out = keras.layers.Dense(5, activation="softmax", name="head")(h)
    return keras.Model(inp, out, name="raw_op")


def test_functional_model_with_raw_op_nested_model_and_shared_layer_lowers(rng):
    model = _raw_op_model(rng)
    lowered = lowered_module.lower_model(model)
    assert _no_lightcompress(lowered)
    assert any(not isinstance(op, keras.layers.Layer) for op in _classes(lowered))
    names = [layer.name for layer in lowered.layers]
    assert names.count("mix_a") == 1 and names.count("mix_b") == 1  # the shared pair stays shared
    inner = lowered.get_layer("block")
    assert [layer.name for layer in inner.layers] == ["fc_lowered_a", "fc_lowered_b", "fc_a"]
    x = rng.random((8, 6, 6, 2), dtype=np.float32)
    np.testing.assert_allclose(lowered.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


# -- export and runtimes ----------------------------------------------------------------------

def _small_cnn(input_shape=(8, 8, 1)):
    inp = keras.Input(input_shape, name="image")
    h = keras.layers.Conv2D(12, 3, padding="same", activation="relu", name="conv")(inp)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(48, activation="relu", name="fc")(h)
    out = keras.layers.Dense(10, activation="softmax", name="head")(h)
    return keras.Model(inp, out, name="small_cnn")


@pytest.fixture(scope="module")
def light_cnn():
    keras.utils.set_random_seed(7)
    return convert(_small_cnn(), *policy(rank=3, min_params=0)).model


def _onnx_missing():
    try:
        runtimes.require_onnx()
    except ExportError as err:
        return str(err)
    return None


FORMATS = [
    ("keras", "m.lowered.keras"),
    ("tf_saved_model", "m_saved_model"),
    ("litert", "m.tflite"),
    pytest.param("onnx", "m.onnx", marks=pytest.mark.skipif(
        _onnx_missing() is not None, reason=f"ONNX packages not importable: {_onnx_missing()}")),
]


@pytest.mark.parametrize("fmt,name", FORMATS)
def test_each_format_round_trips_and_verifies(fmt, name, light_cnn, tmp_path, rng):
    x = rng.random((40, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 10, 40)
    result = export.export_model(light_cnn, tmp_path / name, fmt, x=x, y=y, source="test images", repeats=20)
    v = result.verification
    assert result.path == tmp_path / name and result.path.exists()
    assert v.within_tolerance and v.passed and v.max_abs_diff < 1e-4 and v.agreement == 1.0
    assert v.accuracy == v.reference_accuracy and v.examples == 40
    assert v.file_bytes == runtimes.path_bytes(result.path) > 0 and v.latency.median_ms > 0
    assert result.lowered_layers == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary files left
    artifact = runtimes.load_artifact(result.path, trust=True)  # written by this test (a SavedModel needs trust)
    np.testing.assert_allclose(artifact.predict(x, batch_size=7), light_cnn.predict(x, verbose=0), atol=1e-4)
    if fmt != "keras":
        assert "thread" in artifact.runtime
    with pytest.raises(LightCompressError, match="exists; pass force=True"):
        export.export_model(light_cnn, tmp_path / name, fmt)
    export.export_model(light_cnn, tmp_path / name, fmt, force=True, repeats=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.slow  # fresh processes per format (~12 s); .ci/run runs -m slow
def test_artefacts_run_where_lightcompress_cannot_be_imported(tmp_path, rng):
    model = _raw_op_model(rng)
    x = rng.random((5, 6, 6, 2), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model.predict(x, verbose=0))
    export.export_model(model, tmp_path / "m.keras", "keras", repeats=5)
    export.export_model(model, tmp_path / "m.tflite", "litert", repeats=5)
    export.export_model(model, tmp_path / "sm", "tf_saved_model", repeats=5)
    code = textwrap.dedent(f"""
        import sys
        sys.modules["lightcompress"] = None  # any import of lightcompress fails
        import keras, numpy as np, tensorflow as tf
        try:
            import lightcompress
            raise SystemExit("lightcompress was importable")
        except ImportError:
            pass
        d = {str(tmp_path)!r}
        x, y = np.load(d + "/x.npy"), np.load(d + "/y.npy")
        out = [keras.models.load_model(d + "/m.keras").predict(x, verbose=0)]
        saved = tf.saved_model.load(d + "/sm")  # kept: its variables die with it
        out.append(saved.serve(x).numpy())
        it = tf.lite.Interpreter(d + "/m.tflite")
        it.resize_tensor_input(it.get_input_details()[0]["index"], x.shape)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        out.append(it.get_tensor(it.get_output_details()[0]["index"]))
        print(max(float(np.abs(o - y).max()) for o in out))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.split()[-1]) < 1e-4


def test_verification_catches_a_different_model(light_cnn, tmp_path):
    other = convert(_small_cnn(), *policy(rank=3, min_params=0)).model  # same shapes, other weights
    path = export.export_model(other, tmp_path / "other.tflite", "litert", repeats=5).path
    with pytest.raises(ExportError, match="does not compute what the model does"):
        export.verify(path, light_cnn, repeats=5)
    report = export.verify(path, light_cnn, strict=False, repeats=5)
    assert not report.within_tolerance and report.max_abs_diff > 1e-3


def test_a_float_export_that_does_not_match_is_not_kept(light_cnn, tmp_path, monkeypatch):
    def broken_lowering(model):  # lowering gone wrong: outputs perturbed
        lowered = lowered_module.lower_model(model)
        lowered.set_weights([w + 0.05 for w in lowered.get_weights()])
        return lowered

    monkeypatch.setattr(export, "lower_model", broken_lowering)
    target = tmp_path / "m.tflite"
    with pytest.raises(ExportError, match="does not compute what the model does") as err:
        export.export_model(light_cnn, target, "litert", repeats=5)
    assert len(str(err.value).splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one
    target.write_bytes(b"old")  # with --force, the old file survives a failed export
    with pytest.raises(ExportError):
        export.export_model(light_cnn, target, "litert", force=True, repeats=5)
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_int8_calibrates_on_training_images_only(light_cnn, tmp_path, monkeypatch, rng):
    x_train = rng.random((400, 8, 8, 1), dtype=np.float32)
    poisoned = np.full((50, 8, 8, 1), np.nan, np.float32)  # test images must never be read
    prepared = Prepared("t", x_train, rng.integers(0, 10, 400), poisoned, np.zeros(50, int), 10)
    seen = []
    original = export.representative_dataset

    def spy(arrays):
        generate = original(arrays)

        def recorded():
            for example in generate():
                seen.append(example[0].copy())
                yield example

        return recorded

    monkeypatch.setattr(export, "representative_dataset", spy)
    result = export.export_model(light_cnn, tmp_path / "m.int8.tflite", "litert", "int8",
                                 calibration=prepared, int8_io=True, repeats=5)
    assert result.calibration_examples == export.DEFAULT_CALIBRATION == 300
    assert len(seen) >= 300 and all(np.isfinite(e).all() for e in seen)
    rows = {x.tobytes() for x in x_train}
    assert all(e[0].tobytes() in rows for e in seen)
    v = result.verification
    assert not v.strict and v.passed and v.agreement is not None  # reported, not failed
    artifact = runtimes.load_artifact(result.path)
    assert artifact.io_types == ["int8"]
    y = artifact.predict(x_train[:20])
    assert y.dtype == np.float32 and np.allclose(y.sum(axis=1), 1, atol=0.05)  # dequantised softmax


def test_quantised_and_onnx_settings_are_checked(light_cnn, tmp_path, monkeypatch):
    with pytest.raises(ExportError, match="litert format only"):
        export.export_model(light_cnn, tmp_path / "m.onnx", "onnx", "int8")
    with pytest.raises(ExportError, match="needs int8 quantisation"):
        export.export_model(light_cnn, tmp_path / "m.tflite", "litert", "dynamic", int8_io=True)
    with pytest.raises(ExportError, match="calibration images from the training set"):
        export.export_model(light_cnn, tmp_path / "m.tflite", "litert", "int8")
    with pytest.raises(LightCompressError, match="must end in .tflite"):
        export.export_model(light_cnn, tmp_path / "m.onnx", "litert")
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # the extra is not installed
    with pytest.raises(ExportError) as err:
        export.export_model(light_cnn, tmp_path / "m.onnx", "onnx")
    message = str(err.value)
    assert len(message.splitlines()) == 1 and "tf2onnx" in message
    assert 'pip install "lightcompress[onnx]"' in message
    assert list(tmp_path.iterdir()) == []


def test_evaluate_takes_artefacts(light_cnn, tmp_path, rng):
    prepared = Prepared("t", rng.random((4, 8, 8, 1), dtype=np.float32), np.zeros(4, int),
                        rng.random((60, 8, 8, 1), dtype=np.float32), rng.integers(0, 10, 60), 10)
    path = export.export_model(light_cnn, tmp_path / "m.tflite", "litert", repeats=5).path
    from_keras = evaluate(light_cnn, prepared)
    from_tflite = runtimes.evaluate_artifact(path, prepared)
    assert from_tflite.accuracy == from_keras.accuracy and from_tflite.examples == 60
    assert abs(from_tflite.loss - from_keras.loss) < 1e-4
    assert agreement(runtimes.load_artifact(path), light_cnn, prepared) == 1.0


# -- the export command -----------------------------------------------------------------------

def test_cli_exports_int8_litert_on_digits(light_cnn, tmp_path):
    source = tmp_path / "cnn.light.keras"
    light_cnn.save(source)
    result = runner.invoke(app, ["export", str(source), "--format", "litert", "--quantize", "int8",
                                 "-d", "digits", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    target = tmp_path / "cnn.light.int8.tflite"
    assert data["path"] == str(target) and target.exists()
    assert data["quantize"] == "int8" and data["calibration_examples"] == 300
    v = data["verification"]
    assert v["source"] == "test images of digits" and v["examples"] == 360
    assert v["accuracy"] is not None and v["latency"]["median_ms"] > 0 and "2 threads" in v["runtime"]
    assert data["file_bytes"] == target.stat().st_size
    table = runner.invoke(app, ["export", str(source), "--format", "keras"])
    assert table.exit_code == 0, table.output
    assert "file bytes" in table.stdout and "top-1 agreement" in table.stdout
    assert (tmp_path / "cnn.light.lowered.keras").exists()


@pytest.mark.parametrize("args,message", [
    (["--format", "litert", "--quantize", "int8"], "give --dataset NAME"),
    (["--format", "onnx", "--quantize", "dynamic"], "litert format only"),
    (["--format", "litert", "-o", "{dir}/x.onnx"], "must end in .tflite"),
    (["--format", "keras", "-o", "{src}"], "is the input file"),
])
def test_cli_errors_are_one_line(args, message, light_cnn, tmp_path):
    source = tmp_path / "cnn.keras"
    light_cnn.save(source)
    before = source.read_bytes()
    args = [a.format(dir=tmp_path, src=source) for a in args]
    result = runner.invoke(app, ["export", str(source), *args])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.keras"]


@pytest.mark.parametrize("source,fmt,quantize,expected", [
    ("dir/m.h5", "tf_saved_model", "none", "dir/m_saved_model"),
    ("dir/m.light.keras", "tf_saved_model", "none", "dir/m_light_saved_model"),
    ("dir/m.light.keras", "litert", "int8", "dir/m.light.int8.tflite"),
    ("dir/m.compressed.keras", "keras", "none", "dir/m.compressed.lowered.keras"),
])
def test_default_outputs_are_accepted_by_their_own_check(source, fmt, quantize, expected, tmp_path):
    # The default name of a SavedModel folder has no suffix, even for m.light.keras (convert's output).
    out = export.default_output(tmp_path / source, fmt, quantize)
    assert out == tmp_path / expected
    (tmp_path / "dir").mkdir(exist_ok=True)
    assert export.check_output(out, fmt) == out
