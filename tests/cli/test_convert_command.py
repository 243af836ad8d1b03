import hashlib
import json

import h5py
import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from lightcompress import __version__
from lightcompress.cli import app
from lightcompress.errors import LightCompressError

from ..conftest import real_model_path
from ..models import sequential_mlp

runner = CliRunner()


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fails_with(args, message, files=()):
    """Run the CLI expecting exit 1 and a one-line error; the given files must be untouched."""
    digests = {f: _digest(f) for f in files}
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.output
    for f, d in digests.items():
        assert _digest(f) == d
    return lines[0]


@pytest.fixture
def mlp_file(tmp_path):
    path = tmp_path / "mlp.keras"
    sequential_mlp().save(path)
    return path


def test_version_and_help():
    assert runner.invoke(app, ["--version"]).stdout.strip() == f"lightcompress {__version__}"
    result = runner.invoke(app, ["convert", "--help"])
    assert result.exit_code == 0 and "--rank" in result.stdout and "--ratio" in result.stdout


def test_convert_real_model_prints_report_and_writes_file(tmp_path):
    source = real_model_path("fmnist_cnn_keras2.h5")
    digest = _digest(source)
    out = tmp_path / "k2.light.keras"
    result = runner.invoke(app, ["convert", str(source), "--rank", "8", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "dense" in result.stdout and "102,464 -> 13,376" in result.stdout
    assert "params" in result.stdout and "file bytes" in result.stdout
    assert _digest(source) == digest
    model = keras.models.load_model(out)
    assert model.predict(np.zeros((2, 28, 28, 1)), verbose=0).shape == (2, 10)


def test_convert_json_report(tmp_path, mlp_file):
    out = tmp_path / "o.h5"
    result = runner.invoke(app, ["convert", str(mlp_file), "--ratio", "0.3", "--min-params", "0",
                                 "--no-data-floor", "0", "-o", str(out), "--json"])  # random weights: no floor
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["report"] == "convert" and data["policy"] == "ratio 0.3"
    assert [layer["name"] for layer in data["layers"]] == ["h1", "h2", "out"]
    assert data["totals"]["params_after"] == keras.models.load_model(out).count_params()
    assert data["totals"]["file_bytes_after"] == out.stat().st_size
    assert 0 <= data["output_difference"]["relative"]


def test_default_output_is_beside_the_input(mlp_file):
    result = runner.invoke(app, ["convert", str(mlp_file), "--rank", "4"])
    assert result.exit_code == 0, result.output
    assert (mlp_file.parent / "mlp.light.keras").exists()
    # A second run refuses to overwrite it.
    _fails_with(["convert", mlp_file, "--rank", "4"], "exists; pass --force", [mlp_file])
    assert runner.invoke(app, ["convert", str(mlp_file), "--rank", "4", "--force"]).exit_code == 0


def _lambda_model():
    inputs = keras.Input((4,))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_needs_trust(tmp_path, suffix):
    path = tmp_path / f"lam{suffix}"
    _lambda_model().save(path)
    _fails_with(["convert", path, "--rank", "1"], "layer 'double' is a Lambda layer", [path])
    _fails_with(["convert", path, "--rank", "1"], "--trust-model", [path])
    result = runner.invoke(app, ["convert", str(path), "--rank", "1", "--min-params", "0",
                                 "--trust-model", "-o", str(tmp_path / "t.keras")])
    assert result.exit_code == 0, result.output


@keras.saving.register_keras_serializable(package="tests")
class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fc = keras.layers.Dense(3)

    def call(self, x):
        return self.fc(x)


def test_error_cases(tmp_path, mlp_file):
    sub = tmp_path / "sub.keras"
    model = Subclassed()
    model(np.zeros((1, 4)))
    model.save(sub)
    result = runner.invoke(app, ["convert", str(sub), "--rank", "1", "--min-params", "0",
                                 "-o", str(tmp_path / "sub.light.keras")])
    assert result.exit_code == 0, result.output  # subclassed models convert in place (tests/factorization/test_subclassed.py)

    weights = tmp_path / "w.weights.h5"
    sequential_mlp().save_weights(weights)
    _fails_with(["convert", weights, "--rank", "1"], "holds weights only", [weights])
    legacy = tmp_path / "legacy.h5"
    with h5py.File(legacy, "w") as f:
        f.attrs["layer_names"] = [b"dense"]
    _fails_with(["convert", legacy, "--rank", "1"], "holds weights only", [legacy])

    text = tmp_path / "notes.h5"
    text.write_text("not a model")
    _fails_with(["convert", text, "--rank", "1"], "is not an HDF5 file", [text])
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"\x00" * 64)
    _fails_with(["convert", junk, "--rank", "1"], "is not a Keras model archive", [junk])
    other = tmp_path / "model.pb"
    other.write_text("x")
    _fails_with(["convert", other, "--rank", "1"], "unknown model format '.pb'", [other])
    _fails_with(["convert", tmp_path / "nope.h5", "--rank", "1"], "no such file")

    tfop = tmp_path / "tfop.h5"
    config = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "config": {"name": "in"}},
        {"class_name": "TFOpLambda", "config": {"name": "tf.math.multiply", "function": "math.multiply"}}]}}
    with h5py.File(tfop, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.create_group("model_weights")
    _fails_with(["convert", tfop, "--rank", "1"], "layer 'tf.math.multiply' is a TFOpLambda", [tfop])

    _fails_with(["convert", mlp_file, "--rank", "0"], "--rank 0 is invalid", [mlp_file])
    _fails_with(["convert", mlp_file], "choose exactly one rank rule", [mlp_file])
    _fails_with(["convert", mlp_file, "--rank", "2", "--energy", "0.9"], "(got --rank 2, --energy 0.9)")
    _fails_with(["convert", mlp_file, "--ratio", "2"], "--ratio 2.0 is not a fraction")
    _fails_with(["convert", mlp_file, "--rank", "2", "-o", mlp_file, "--force"],
                "lightcompress never overwrites its input", [mlp_file])
    _fails_with(["convert", mlp_file, "--rank", "2", "-o", tmp_path / "x.txt"], "must end in .keras or .h5")
    _fails_with(["convert", mlp_file, "--rank", "2", "-o", tmp_path / "no" / "x.keras"],
                "does not exist; create it first")


def test_unwritable_folder_is_refused_before_work(tmp_path, mlp_file, monkeypatch):
    from lightcompress.io import models as model_io
    real_access = model_io.os.access
    locked = tmp_path / "locked"
    locked.mkdir()
    # Root may write anywhere, so stand in for a read-only folder (like ../shared) here.
    monkeypatch.setattr(model_io.os, "access", lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    _fails_with(["convert", mlp_file, "--rank", "2", "-o", locked / "x.keras"],
                f"output folder {locked} is not writable; choose another output path", [mlp_file])
    assert not list(locked.iterdir())


def test_debug_shows_the_traceback(tmp_path):
    result = runner.invoke(app, ["convert", str(tmp_path / "nope.h5"), "--rank", "1", "--debug"])
    assert result.exit_code == 1 and isinstance(result.exception, LightCompressError)


def test_progress_writes_nothing_when_stderr_is_no_terminal(mlp_file, tmp_path):
    """The progress bars are live displays for a terminal; in a log or a pipe they leave no lines."""
    for args in (["inspect", mlp_file], ["convert", mlp_file, "--rank", "2", "-o", tmp_path / "out.keras"]):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        assert result.stderr == "", repr(result.stderr)
        assert result.stdout.lstrip("\n") == result.stdout, result.stdout[:80]
