"""Answers that need no model (issue 38): --help, --version, usage errors and a missing model file
never import Keras or TensorFlow; usage errors are one line in the same form as every other error
(exit 2); no blank line comes before an error; --help keeps whole lines in a pipe."""

import subprocess
import sys

import pytest

from lightcompress.cli import app

from ..cli_checks import fails, runner

PROBE = """
import sys
from lightcompress.cli.typer_app import run
code = run(sys.argv[1:])
heavy = sorted(m for m in ("keras", "tensorflow", "jax", "torch") if m in sys.modules)
print("HEAVY:" + ",".join(heavy), file=sys.stderr)
sys.exit(code)
"""


def _probe(*args):
    """Run the command line in a fresh process; (exit code, stdout, stderr lines, heavy modules)."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("HEAVY:")]
    heavy = next(line for line in proc.stderr.splitlines() if line.startswith("HEAVY:"))[len("HEAVY:"):]
    return proc.returncode, proc.stdout, lines, heavy


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["convert", "--help"], ["compress", "--help"]])
def test_help_and_version_never_import_keras(args):
    code, stdout, lines, heavy = _probe(*args)
    assert code == 0, lines
    assert heavy == "", f"{args} imported {heavy}"
    assert stdout.strip()


@pytest.mark.parametrize("args, said", [
    (["export", "m.keras", "-q", "int8"], "error: No such option: -q; see 'lightcompress export --help'."),
    (["convert"], "error: Missing argument 'model'; see 'lightcompress convert --help'."),
    (["nosuch"], "error: No such command 'nosuch'; see 'lightcompress --help'."),
    (["export", "m.keras"], "error: Missing option '--format' / '-f'; see 'lightcompress export --help'."),
    (["convert", "m.keras", "--conv-mode", "diagonal"],
     "error: Invalid value for '--conv-mode': 'diagonal' is not one of 'channel', 'spatial', 'tucker', 'auto'; "
     "see 'lightcompress convert --help'."),
])
def test_a_usage_error_is_one_line_and_exit_2(args, said):
    code, stdout, lines, heavy = _probe(*args)
    assert code == 2
    assert lines == [said]
    assert heavy == ""


def test_a_missing_model_file_is_answered_before_keras_starts(tmp_path):
    missing = tmp_path / "nosuch.keras"
    code, stdout, lines, heavy = _probe("convert", str(missing), "--rank", "4")
    assert (code, lines, heavy) == (1, [f"error: {missing}: no such file; check the path."], "")
    code, stdout, lines, heavy = _probe("compare", str(tmp_path / "a.keras"), str(missing))
    assert code == 1 and lines == [f"error: {tmp_path / 'a.keras'}: no such file; check the path."] and heavy == ""


def test_help_in_a_pipe_keeps_whole_lines():
    """rich falls back to 80 columns outside a terminal; a piped --help is not cut there."""
    proc = subprocess.run([sys.executable, "-m", "lightcompress", "convert", "--help"], capture_output=True,
                          text=True, timeout=120, env={k: v for k, v in __import__("os").environ.items()
                                                       if k not in ("COLUMNS", "TERMINAL_WIDTH")})
    assert proc.returncode == 0
    assert max(len(line) for line in proc.stdout.splitlines()) > 100


@pytest.mark.parametrize("command", [
    ["convert", ".", "--rank", "8"],
    ["compress", ".", "--target-params", "0.5", "-d", "digits"],
    ["finetune", ".", "-d", "digits"],
])
def test_the_working_folder_as_a_model_is_named(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    fails(command, f"{tmp_path} is a folder", folder=tmp_path)


@pytest.mark.parametrize("command", [["finetune", "{m}", "-d", "nosuchset"],
                                     ["compress", "{m}", "-d", "nosuchset", "--target-params", "0.5"]])
def test_no_blank_line_before_an_error(small, command):
    path, _ = small
    result = runner.invoke(app, [a.format(m=path) for a in command])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: unknown data set 'nosuchset'"), repr(result.stderr[:80])
