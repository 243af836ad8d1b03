"""The registry of export targets (issue 35): the only list of formats. A toy target registered in
one module (tests/toy_export_target.py) is exported, verified, loaded, offered to compress and timed
in like a built-in one; a taken name is refused; unregistered, it is unknown again."""

import importlib
import json
import sys

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

import lightcompress
from lightcompress.cli import app
from lightcompress.deploy import export, latency, runtimes, targets
from lightcompress.deploy.targets import ExportTarget, get_target, register_target, unregister_target
from lightcompress.deploy.timing import Runtime
from lightcompress.errors import ExportError, LightCompressError, OptionError

runner = CliRunner()
BUILT_IN = ["keras", "saved_model", "litert", "onnx"]


def _mlp():
    inputs = keras.Input((12,), name="x")
    hidden = keras.layers.Dense(16, activation="relu", name="fc")(inputs)
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(hidden), name="mlp")


@pytest.fixture
def toy():
    module = importlib.import_module("tests.toy_export_target")  # importing it registers "toy"
    yield module
    unregister_target("toy")
    sys.modules.pop(module.__name__)  # the next import registers it again


def test_the_built_in_targets_are_the_lists_every_stage_reads():
    assert targets.choices() == BUILT_IN
    assert targets.quantizations() == ["none", "float16", "dynamic", "int8"]
    assert list(targets.export_choices()) == ["keras", "saved_model", "litert", "litert-float16",
                                              "litert-dynamic", "litert-int8", "onnx"]
    assert targets.runtime_names() == ("keras", "litert", "litert-int8", "onnxruntime")
    assert [get_target(n).name for n in ("saved_model", "tflite")] == ["tf_saved_model", "litert"]
    assert [t.name for t in targets.targets() if t.runs_code] == ["tf_saved_model"]
    assert [t.name for t in targets.targets() if t.native] == ["litert", "onnx"]
    with pytest.raises(ExportError, match=r"^format='npz' is unknown; use one of keras, saved_model, litert, onnx\.$"):
        export.check_settings("npz")


def test_a_new_target_is_one_registration(toy, tmp_path):
    model = _mlp()
    x = np.random.default_rng(0).random((8, 12), dtype=np.float32)
    # Python: exported, verified in its own runtime (float: a mismatch would be an error), kept
    result = lightcompress.export(model, tmp_path / "m.npz", format="toy")
    assert result.format == "toy" and result.path == tmp_path / "m.npz" and result.path.exists()
    assert result.verification.within_tolerance and result.verification.strict
    loaded = runtimes.load_artifact(result.path)  # found by its suffix, loaded by its loader
    assert isinstance(loaded, runtimes.KerasArtifact)
    np.testing.assert_allclose(loaded.predict(x), model.predict(x, verbose=0), atol=1e-6)
    assert export.default_output(tmp_path / "m.light.keras", "toy") == tmp_path / "m.light.npz"
    # the command line: --format takes it, the default output is its default name
    source = tmp_path / "c.keras"
    model.save(source)
    out = runner.invoke(app, ["export", str(source), "-f", "toy", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["format"] == "toy" and data["path"] == str(tmp_path / "c.npz") and data["verification"]["passed"]
    # what it cannot write is refused before any work, naming its own choices
    bad = runner.invoke(app, ["export", str(source), "-f", "toy", "--quantize", "int8"])
    assert bad.exit_code == 1 and bad.stderr.strip() == ("error: --quantize int8 applies to the litert format only; "
                                                         "use --format litert, or --quantize none for toy."), bad.output
    # compress --export offers it, and models are timed as it under its runtime name
    assert targets.export_choices()["toy"] == (toy.TOY, "none")
    runtime = Runtime("toy", 3)
    assert runtime.artifact == ("toy", "none") and runtime.describe() == "Keras, from the toy .npz, 3 threads asked"
    lat = latency.model_latency(model, runtime, batches=(1,), repeats=3, warmup=1)
    assert lat[0].median_ms > 0
    timing = importlib.import_module("lightcompress.deploy.timing")
    assert timing.RUNTIMES == ("keras", "litert", "litert-int8", "onnxruntime", "toy")


def test_a_taken_name_suffix_or_runtime_is_refused_and_unregistering_frees_it(toy, tmp_path):
    def like_toy(**changes):
        fields = dict(name="toy2", suffix=".toy2", writer=toy.write, loader=toy.load)
        return ExportTarget(**{**fields, **changes})

    with pytest.raises(ExportError, match=r"^an export target named 'toy' is already registered"):
        register_target(toy.TOY)
    with pytest.raises(ExportError, match=r"^an export target named 'tflite' is already registered "
                                          r"\(ExportTarget\('litert'\)\)"):
        register_target(like_toy(aliases=("tflite",)))
    with pytest.raises(ExportError, match=r"^suffix '\.h5' is already loaded as 'keras'"):
        register_target(like_toy(suffix=".h5"))
    with pytest.raises(ExportError, match=r"^runtime 'litert-int8' is already registered"):
        register_target(like_toy(runtime="litert", timed=("int8",)))
    assert targets.choices() == [*BUILT_IN, "toy"]  # nothing half-registered

    unregister_target("toy")
    try:
        with pytest.raises(ExportError,
                           match=r"^format='toy' is unknown; use one of keras, saved_model, litert, onnx\.$"):
            get_target("toy")
        with pytest.raises(ExportError, match="format='toy' is unknown"):
            lightcompress.export(_mlp(), tmp_path / "m.npz", format="toy")
        with pytest.raises(OptionError, match="runtime='toy' is unknown"):
            Runtime("toy")
        assert "toy" not in targets.export_choices()
        (tmp_path / "m.npz").write_bytes(b"")
        with pytest.raises(LightCompressError, match=r"unknown artefact '\.npz'; give a \.keras, \.h5, \.hdf5, "
                                                     r"\.tflite or \.onnx file, or a SavedModel folder\.$"):
            runtimes.load_artifact(tmp_path / "m.npz")
    finally:
        register_target(toy.TOY)  # the fixture unregisters it
