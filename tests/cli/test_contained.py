"""The user's code is contained and the error boundary starts on the first line (issue 34): whatever
a --custom-objects file or a --dataset module:function does (sys.exit, KeyboardInterrupt, any other
BaseException, printing), the run ends with one line and exit 1 and stdout keeps only the report;
a start-up failure (an unknown or missing Keras backend, a warning turned into an error) is one
line; options and plans are checked whole before any work."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lightcompress.cli import app
from lightcompress.cli.startup import message
from lightcompress._quiet import backend_problem

from ..cli_checks import digest as _digest, fails as _fails

runner = CliRunner()

ROOT = Path(__file__).resolve().parents[2]


def _user_file(tmp_path, body, name=None):
    path = tmp_path / f"{name or 'user_' + uuid.uuid4().hex[:8]}.py"
    path.write_text(textwrap.dedent(body))
    return path


DATA_FUNCTION = """
    import numpy as np
    import tensorflow as tf

    def load(split):
        print("hello from the user's data function")
        rng = np.random.default_rng(0)
        x = rng.random((20, 8, 8, 1), dtype=np.float32)
        y = np.arange(20) % 10
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(10)
"""


# -- user code ----------------------------------------------------------------------------------

@pytest.mark.parametrize("body, said", [
    ("import sys\nsys.exit(0)\n", "failed (it called sys.exit(0)); fix that file."),
    ("import sys\nsys.exit('bye')\n", "failed (it called sys.exit('bye')); fix that file."),
    ("raise KeyboardInterrupt\n", "failed (KeyboardInterrupt); fix that file."),
    ("class Odd(BaseException):\n    pass\nraise Odd('strange')\n", "failed (Odd: strange); fix that file."),
])
def test_a_custom_objects_file_that_exits_or_interrupts_ends_the_run_with_one_line(small, tmp_path, body, said):
    path, _ = small
    user = _user_file(tmp_path, body)
    line = _fails(["inspect", path, "--custom-objects", user], said, [path, user])
    assert str(user) in line


@pytest.mark.parametrize("body, said", [
    ("import sys\ndef load(split):\n    sys.exit(0)\n", "(split='train') called sys.exit(0); fix the function."),
    ("def load(split):\n    raise KeyboardInterrupt\n", "(split='train') raised KeyboardInterrupt; fix the function."),
    ("class Odd(BaseException):\n    pass\ndef load(split):\n    raise Odd('no')\n",
     "(split='train') raised Odd: no; fix the function."),
])
def test_a_data_function_that_exits_ends_the_run_with_one_line(small, tmp_path, body, said):
    path, _ = small
    user = _user_file(tmp_path, body)
    line = _fails(["evaluate", path, "--dataset", f"{user}:load"], said, [path, user])
    assert f"{user}:load" in line


def test_a_pydataset_claiming_too_many_batches_is_refused_at_once(small, tmp_path):
    path, _ = small
    user = _user_file(tmp_path, """
        import numpy as np
        import keras

        class Endless(keras.utils.PyDataset):
            def __len__(self):
                return 10 ** 12

            def __getitem__(self, i):
                return np.zeros((4, 8, 8, 1), np.float32), np.zeros((4,), np.int64)

        def load(split):
            return Endless()
    """)
    started = time.monotonic()
    _fails(["evaluate", path, "--dataset", f"{user}:load"], "claims 1000000000000 batches", [path, user])
    assert time.monotonic() - started < 60


def test_what_user_code_prints_never_reaches_the_json_report(small, tmp_path):
    path, _ = small
    chatty = _user_file(tmp_path, "print('hello from the custom objects file')\n")
    data = _user_file(tmp_path, DATA_FUNCTION)
    result = runner.invoke(app, ["evaluate", str(path), "--dataset", f"{data}:load", "--custom-objects",
                                 str(chatty), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # the whole of stdout is the one JSON document
    assert report["accuracy"] is not None or "accuracy" in json.dumps(report)
    assert "hello from the custom objects file" in result.stderr
    assert "hello from the user's data function" in result.stderr


# -- the start-up boundary ------------------------------------------------------------------------

def _start(args, env, timeout=240):
    proc = subprocess.run([sys.executable, "-m", "lightcompress", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=timeout)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return proc, lines


def test_an_unknown_backend_name_is_one_line_and_version_needs_no_backend(small):
    path, _ = small
    proc, lines = _start(["--version"], {"KERAS_BACKEND": "nosuch"})  # --version never starts Keras
    assert proc.returncode == 0 and proc.stdout.startswith("lightcompress "), proc.stderr
    proc, lines = _start(["inspect", str(path)], {"KERAS_BACKEND": "nosuch"})
    assert proc.returncode == 1, proc.stderr
    assert lines == ["error: KERAS_BACKEND=nosuch is not a Keras backend; use tensorflow, jax or torch, or unset "
                     "KERAS_BACKEND."], proc.stderr


def test_a_missing_backend_package_is_one_line(small, tmp_path):
    """torch blocked (as on a machine without it): Keras's torch backend cannot import it."""
    path, _ = small
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['torch'] = None\n")
    env = {"KERAS_BACKEND": "torch", "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc, lines = _start(["inspect", str(path)], env)
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: KERAS_BACKEND=torch needs torch"), proc.stderr
    assert "unset KERAS_BACKEND" in lines[0]


def test_backend_messages_name_the_backend_and_the_fix(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    missing = ModuleNotFoundError("No module named 'jax'", name="jax")
    assert backend_problem(missing) == ('KERAS_BACKEND=jax needs jax, which could not be imported '
                                        '(ModuleNotFoundError: No module named \'jax\'); install it '
                                        '(pip install "lightcompress[jax]") or unset KERAS_BACKEND.')
    assert backend_problem(RuntimeError("other")) is None
    assert message(RuntimeError("boom\nmore")) == ("unexpected RuntimeError while starting: boom (rerun with "
                                                   "--debug for the traceback)")
    assert message(DeprecationWarning("old")).startswith("a DeprecationWarning was raised as an error because")


@pytest.mark.slow  # ~8 s: fresh processes; kept out of the quick suite (.ci/run runs -m slow)
def test_warnings_turned_into_errors_end_in_one_line_or_run(small):
    """PYTHONWARNINGS=error: a library's DeprecationWarning becomes an exception somewhere inside
    TensorFlow or Keras; wherever it lands, the run ends with one line (or runs), never a traceback."""
    path, _ = small
    proc, lines = _start(["inspect", str(path)], {"PYTHONWARNINGS": "error"})
    assert "Traceback" not in proc.stderr
    assert proc.returncode in (0, 1), proc.stderr
    if proc.returncode == 1:
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        assert "PYTHONWARNINGS" in lines[0] or "unexpected" not in lines[0], proc.stderr


@pytest.mark.slow  # ~7 s: a fresh process; kept out of the quick suite (.ci/run runs -m slow)
def test_sighup_is_handled_like_sigterm(tmp_path):
    source = tmp_path / "in.keras"
    source.write_bytes((ROOT / "sample_models" / "digits_mlp.keras").read_bytes())
    before = _digest(source)
    proc = subprocess.Popen([sys.executable, "-m", "lightcompress", "finetune", str(source), "--dataset", "digits",
                             "--epochs", "500", "--patience", "500", "-o", str(tmp_path / "out.keras")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    time.sleep(1.0)  # starting up: the policy is in place before Keras is imported
    proc.send_signal(signal.SIGHUP)
    _, stderr = proc.communicate(timeout=120)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert proc.returncode == 129, stderr
    assert "Traceback" not in stderr
    assert lines[-1].startswith("error: interrupted (SIGHUP)"), stderr
    assert _digest(source) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".lightcompress-tmp-")]


# -- options and plans checked before work -----------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["tradeoffs", "{m}", "-d", "{data}", "--holdout", "-1", "--no-baselines"],
    ["compress", "{m}", "-d", "{data}", "--target-params", "0.5", "--holdout", "0", "-o", "{d}/o.keras"],
    ["inspect", "{m}", "--holdout", "-1"],
])
def test_holdout_is_refused_before_any_work(small, tmp_path, command):
    path, data = small
    args = [a.format(m=path, data=data, d=tmp_path) for a in command]
    started = time.monotonic()
    _fails(args, "--holdout", [path, data], tmp_path)
    assert time.monotonic() - started < 30


def test_tradeoffs_refuses_an_unknown_method_before_any_work(small, tmp_path):
    path, data = small
    _fails(["tradeoffs", path, "-d", data, "--method", "fisher", "--no-baselines"], "--method fisher is unknown",
           [path, data], tmp_path)


def _plan(tmp_path, data):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(data))
    return plan


FC = {"name": "fc", "kernel_shape": [64, 20], "rank": 2, "mode": "dense"}


@pytest.mark.parametrize("plan, said", [
    ({"policy": "hand", "layers": [FC, {**FC, "rank": 3}]},
     "names layer 'fc' twice (entries 0 and 1 of 'layers'); keep one entry per layer."),
    ({"policy": "hand", "method": "fisher", "layers": [FC]},
     "has \"method\": \"fisher\", which is not a known method; use one of svd"),
    ({"policy": "hand", "layers": [{**FC, "rank": 0}]},
     "layer 'fc' has \"rank\": 0, out of range for its dense factorisation"),
    ({"policy": "hand", "layers": [{**FC, "rank": 2.5}]},
     "layer 'fc' has \"rank\": 2.5, which is not a whole number"),
])
def test_plans_are_checked_whole_in_plan_terms(small, tmp_path, plan, said):
    path, _ = small
    plan_file = _plan(tmp_path, plan)
    line = _fails(["convert", path, "--plan", plan_file, "-o", tmp_path / "x.keras"], said, [path, plan_file],
                  tmp_path)
    assert "--rank" not in line and "--method" not in line


def test_a_plan_nested_thousands_deep_is_named(small, tmp_path):
    path, _ = small
    plan_file = tmp_path / "deep.json"
    plan_file.write_text('{"policy": "x", "layers": ' + "[" * 5000 + "]" * 5000 + "}")
    _fails(["convert", path, "--plan", plan_file, "-o", tmp_path / "x.keras"], str(plan_file), [path, plan_file],
           tmp_path)
    result = runner.invoke(app, ["convert", str(path), "--plan", str(plan_file), "-o", str(tmp_path / "x.keras")])
    assert "unexpected" not in result.stderr


def test_a_cache_that_cannot_be_written_is_a_note_not_a_failure(small, tmp_path, monkeypatch):
    """XDG_CACHE_HOME naming a file: the sensitivity table is computed, not cached, and the run
    ends well with one note (it ended in 'unexpected NotADirectoryError')."""
    from lightcompress.io import cache

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    with pytest.warns(UserWarning, match="could not write the cache file"):
        assert cache.write({"a": 1}, blocker / "lightcompress" / "k.json") is None
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    path, data = small
    result = runner.invoke(app, ["inspect", str(path), "-d", str(data), "--sensitivity", "--holdout", "8"])
    assert result.exit_code == 0, result.output
    assert "note: could not write the cache file" in result.stderr
    assert blocker.read_text() == "a file"


def test_a_full_disk_is_named(small, tmp_path, monkeypatch):
    """A write that finds no room (here: compare's temporary folder for the int8 files, which no
    library message wraps) is one line naming it, not 'unexpected OSError'."""
    import errno

    from lightcompress.flows import compare

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/tmp/lightcompress-int8-x")

    monkeypatch.setattr(compare.tempfile, "TemporaryDirectory", no_room)
    path, data = small
    _fails(["compare", path, path, "-d", data, "--int8", "--repeats", "2"],
           "no space left on the device while writing /tmp/lightcompress-int8-x; free some space, or set TMPDIR",
           [path, data], tmp_path)
