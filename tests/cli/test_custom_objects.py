"""--custom-objects: a subclassed model whose class lives in the user's own file loads on every
command that reads a model, and without it the command says which class is missing and how."""

import textwrap
import uuid

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

import lightcompress
from lightcompress._user_code import import_user_module
from lightcompress.cli import app
from lightcompress.errors import ModelLoadError, OptionError

runner = CliRunner()


def _forget(package):
    """Unregister the package's classes, as a fresh process that never imported the file."""
    registered = keras.saving.get_custom_objects()
    for name in [n for n in registered if n.startswith(f"{package}>")]:
        del registered[name]


@pytest.fixture
def user_model(tmp_path):
    package = f"lc_user_{uuid.uuid4().hex[:8]}"
    code = tmp_path / "net.py"
    code.write_text(textwrap.dedent(f"""
        import keras

        @keras.saving.register_keras_serializable(package="{package}")
        class Net(keras.Model):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.fc = keras.layers.Dense(24, activation="relu")
                self.head = keras.layers.Dense(5)

            def call(self, x):
                return self.head(self.fc(x))
    """))
    module = import_user_module(str(code), OptionError)
    model = module.Net()
    x = np.random.default_rng(0).random((4, 16), dtype=np.float32)
    model(x)
    path = tmp_path / "net.keras"
    model.save(path)
    _forget(package)
    yield path, code, package, x, np.asarray(model(x))
    _forget(package)


def _one_line_error(result):
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_without_it_the_error_names_the_class_and_the_flag(user_model, tmp_path):
    path, _, _, _, _ = user_model
    line = _one_line_error(runner.invoke(app, ["convert", str(path), "--rank", "2", "--min-params", "0",
                                               "-o", str(tmp_path / "o.keras")]))
    assert "'Net'" in line and "--custom-objects path/to/module.py" in line
    assert not (tmp_path / "o.keras").exists()


def test_with_it_convert_and_inspect_load_the_user_class(user_model, tmp_path):
    path, code, package, x, expected = user_model
    out = tmp_path / "light.keras"
    result = runner.invoke(app, ["convert", str(path), "--rank", "4", "--min-params", "0", "--custom-objects",
                                 str(code), "-o", str(out)])
    assert result.exit_code == 0, result.output
    _forget(package)
    result = runner.invoke(app, ["inspect", str(out), "--custom-objects", str(code)])
    assert result.exit_code == 0, result.output
    _forget(package)
    light = lightcompress.load_model(out, custom_objects=str(code))  # the Python verb takes it too
    assert type(light).__name__ == "Net" and type(light.fc).__name__ == "LightDense" and light.fc.rank == 4
    original = lightcompress.load_model(path, custom_objects=str(code))
    np.testing.assert_allclose(np.asarray(original(x)), expected, atol=1e-6)
    in_process = lightcompress.convert(original, rank=4, min_params=0).model  # the same SVD, made here
    np.testing.assert_allclose(np.asarray(light(x)), np.asarray(in_process(x)), atol=1e-5)


def test_bad_custom_objects_are_one_line(user_model, tmp_path):
    path, _, _, _, _ = user_model
    args = ["inspect", str(path), "--custom-objects"]
    line = _one_line_error(runner.invoke(app, [*args, str(tmp_path / "missing.py")]))
    assert "missing.py: no such Python file; check the path of the --custom-objects file" in line
    broken = tmp_path / "broken.py"
    broken.write_text("1 / 0\n")
    line = _one_line_error(runner.invoke(app, [*args, str(broken)]))
    assert "importing" in line and "broken.py failed (ZeroDivisionError" in line
    line = _one_line_error(runner.invoke(app, [*args, "no_such_module_for_lc"]))
    assert "module 'no_such_module_for_lc' was not found" in line
    with pytest.raises(ModelLoadError, match="custom_objects=path/to/module.py"):
        lightcompress.load_model(path)
    with pytest.raises(OptionError, match="is not a module"):
        lightcompress.load_model(path, custom_objects=42)
