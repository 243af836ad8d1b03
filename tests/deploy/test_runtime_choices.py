"""The runtimes a Keras model is timed in (issue 23): full-int8 LiteRT (plan in the precision you
deploy), ONNX Runtime through the `onnx` extra, and compress --export litert-int8 choosing the
first. No speed is asserted: what is checked is which artefact is written and run."""

import importlib
import sys

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from lightcompress.cli import app
from lightcompress.deploy import export, latency, runtimes
from lightcompress.deploy.timing import ONNX_INSTALL, Runtime, missing_modules
from lightcompress.errors import LightCompressError, OptionError
from lightcompress.planning import LayerFilter
from lightcompress.flows.compress import CompressSettings

runner = CliRunner()


def _mlp():
    return keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="relu", name="fc"),
                             keras.layers.Dense(4, name="head")], name="mlp")


@pytest.fixture
def written(monkeypatch):
    """Every artefact the timing writes and loads: [(format, converter options, input shape,
    calibration shapes or None, loaded artefact)]."""
    seen = []
    write, load = export.write_artifact, runtimes.load_artifact

    def spy_write(lowered, path, fmt, options=None):
        data = (options or {}).get("representative_dataset")
        shapes = [[a.shape for a in example] for example in data()] if data else None
        seen.append([fmt, dict(options or {}), tuple(lowered.inputs[0].shape), shapes])
        return write(lowered, path, fmt, options)

    def spy_load(path, *args, **kwargs):
        loaded = load(path, *args, **kwargs)
        seen[-1].append(loaded)
        return loaded

    monkeypatch.setattr(latency, "write_artifact", spy_write)  # where the timing calls it
    monkeypatch.setattr(runtimes, "load_artifact", spy_load)
    return seen


def _int8_tensors(artifact):
    return [d for d in artifact.interpreter.get_tensor_details() if np.dtype(d["dtype"]) == np.int8]


def test_litert_int8_times_full_int8_artefacts_calibrated_on_random_inputs(written):
    model = _mlp()
    lat = latency.model_latency(model, Runtime("litert-int8"), batches=(1,), repeats=3, warmup=1)[0]
    assert lat.median_ms > 0 and len(written) == 1
    fmt, options, _, calibration, loaded = written[0]
    assert fmt == "litert" and options["optimizations"] and "representative_dataset" in options
    assert "inference_input_type" not in options  # float input and output, int8 inside
    assert calibration == [[(1, 12)]] * latency.TIMING_CALIBRATION  # the model's input shape
    assert _int8_tensors(loaded), "the timed .tflite holds no int8 tensor: it was not quantised"
    assert Runtime("litert-int8", 3).describe() == "LiteRT interpreter, full-int8 model, 3 threads"

    written.clear()
    latency.model_latency(model, Runtime("litert"), batches=(1,), repeats=3, warmup=1)
    assert written[0][1] == {} and not _int8_tensors(written[0][-1])  # float: no converter options

    written.clear()
    images = np.random.default_rng(0).random((40, 12), dtype=np.float32)
    with latency.timers(model, Runtime("litert-int8"), calibration=images) as timer:
        timer(2)()
    given = written[0][1]["representative_dataset"]
    first = next(iter(given()))[0]
    assert any(np.array_equal(first[0], row) for row in images)  # real images when a flow has them


def test_a_litert_int8_profile_quantises_every_layer_variant_and_is_cached_apart(written, tmp_path):
    model = _mlp()
    only_fc = LayerFilter(include=("fc",), min_params=0)
    profile = latency.profile(model, only_fc, Runtime("litert-int8"), repeats=3, warmup=1, cache_dir=tmp_path)
    assert profile.runtime == "litert-int8" and [ls.name for ls in profile.layers] == ["fc"]
    layer_models = written[1:]  # the first is the whole model (Profile.model_ms)
    assert len(layer_models) == len(profile.layers[0].options) + 2  # the overhead model, as it is, its control copy, the ladder
    for fmt, options, shape, calibration, loaded in written:
        assert fmt == "litert" and "representative_dataset" in options and _int8_tensors(loaded)
    assert all(entry[3][0] == [(1, 12)] for entry in layer_models)  # random inputs of the layer's input shape
    float_key = latency.profile_key(model, only_fc, Runtime("litert"), 1)
    assert latency.profile_key(model, only_fc, Runtime("litert-int8"), 1) != float_key
    assert profile.cache_file.endswith(f"{latency.profile_key(model, only_fc, Runtime('litert-int8'), 1)}.json")
    written.clear()
    again = latency.profile(model, only_fc, Runtime("litert-int8"), repeats=3, warmup=1, cache_dir=tmp_path)
    assert again.from_cache and not written


@pytest.mark.skipif(bool(missing_modules()), reason=f"the onnx extra is not importable here: {missing_modules()} "
                                                 f"missing ({ONNX_INSTALL})")
def test_onnxruntime_times_the_onnx_export_with_the_thread_count(written, tmp_path):
    model = _mlp()
    runtime = Runtime("onnxruntime", 3)
    assert runtime.describe() == "ONNX Runtime (CPU), 3 intra-op threads"
    lat = latency.model_latency(model, runtime, batches=(1, 4), repeats=3, warmup=1)
    assert [t.batch for t in lat] == [1, 4] and all(t.median_ms > 0 for t in lat)
    fmt, options, _, _, loaded = written[0]
    assert fmt == "onnx" and options == {} and isinstance(loaded, runtimes.OnnxArtifact)
    assert loaded.session.get_session_options().intra_op_num_threads == 3
    x = np.random.default_rng(0).random((5, 12), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x, verbose=0), atol=1e-4, rtol=1e-3)
    profile = latency.profile(model, LayerFilter(include=("fc",), min_params=0), runtime, repeats=3, warmup=1,
                              cache_dir=tmp_path)
    assert profile.runtime == "onnxruntime" and profile.layers[0].options
    assert {w[0] for w in written} == {"onnx"}


def test_a_missing_onnx_extra_is_one_line_naming_the_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    with pytest.raises(OptionError) as caught:
        Runtime("onnxruntime")
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and message.startswith("runtime='onnxruntime' needs the ")
    assert "onnxruntime package(s), not installed here" in message
    assert 'pip install "lightcompress[onnx]"' in message
    path = tmp_path / "m.keras"
    _mlp().save(path)
    result = runner.invoke(app, ["compare", str(path), str(path), "--runtime", "onnxruntime"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "--runtime onnxruntime needs the " in lines[0] and "onnxruntime package(s)" in lines[0]
    assert 'pip install "lightcompress[onnx]"' in lines[0]


def test_compress_export_litert_int8_plans_in_litert_int8_unless_runtime_is_given(monkeypatch, tmp_path):
    from lightcompress import flows
    from lightcompress.data.sets import DataSpec

    flow = importlib.import_module("lightcompress.flows.compress")  # the module: flows.compress is the function
    path, data = tmp_path / "m.keras", tmp_path / "d.npz"
    _mlp().save(path)
    x = np.random.default_rng(0).random((30, 12), dtype=np.float32)
    np.savez(data, x_train=x[:20], y_train=np.arange(20) % 4, x_test=x[20:], y_test=np.arange(10) % 4)
    planned = []

    def stop(model, prepared, settings, **kwargs):
        planned.append(settings.runtime)
        raise LightCompressError("stopped before any work")

    monkeypatch.setattr(flow, "compress", stop)  # the flow: compress_file's choice
    for given, export_as, expected in [(None, "litert-int8", "litert-int8"), ("keras", "litert-int8", "keras"),
                                       (None, "litert", "litert"), (None, None, "litert")]:
        with pytest.raises(LightCompressError, match="stopped"):
            flow.compress_file(path, tmp_path / "c.keras", CompressSettings.make(target_params=0.5, runtime=given, export=export_as), data=DataSpec(str(data)), force=True)
        assert planned[-1].name == expected, (given, export_as)

    def stop_cli(model, output, settings, **kwargs):
        planned.append(settings.runtime)
        raise LightCompressError("stopped before any work")

    monkeypatch.setattr(flows, "compress_file", stop_cli)  # the command: the runtime it makes
    for args, expected in [(["--export", "litert-int8"], "litert-int8"),
                           (["--export", "litert-int8", "--runtime", "litert"], "litert"),
                           (["--export", "litert-int8", "--runtime", "keras", "--threads", "3"], "keras")]:
        result = runner.invoke(app, ["compress", str(path), "--target-params", "0.5", "-d", str(data), *args])
        assert result.exit_code == 1 and "stopped before any work" in result.stderr, result.output
        assert planned[-1].name == expected, args
    assert planned[-1].threads == 3


@pytest.mark.parametrize("command", [["compress"], ["compare"], ["inspect"]])
def test_the_runtime_help_names_each_runtime(command):
    from lightcompress.deploy.timing import RUNTIMES

    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    words = " ".join(result.stdout.replace("│", " ").split())  # the table's cells, one line of words
    text = words[words.index("--runtime <str> Where Keras models are timed"):]
    text = text[:text.index("plans in litert-int8.")]
    assert all(f" {name} (" in text for name in RUNTIMES), text
    assert 'needs the onnx extra: pip install "lightcompress[onnx]"' in text
