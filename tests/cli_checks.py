"""What every bad-input test checks, written once: the command fails with exactly one ``error:``
line on stderr and its exit code, and the files it was given (or a whole folder) are unchanged."""

import hashlib
import os
from pathlib import Path

from typer.testing import CliRunner

from lightcompress.cli import app

runner = CliRunner()


def digest(path: Path):
    """A file's sha256; a folder's sorted (relative path, sha256) of its files; None when absent."""
    path = Path(path)
    if path.is_dir():
        return sorted((str(p.relative_to(path)), hashlib.sha256(p.read_bytes()).hexdigest())
                      for p in path.rglob("*") if p.is_file())
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def tree(root: Path) -> dict:
    """{relative path: digest} of every file and link under ``root`` (links not followed)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(folder) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def fails(args, message, inputs=(), folder=None, code=1):
    """exit ``code``, one line naming ``message``, the inputs unchanged, no new file in ``folder``;
    returns the line."""
    before = {p: digest(p) for p in inputs}
    listing = sorted(os.listdir(folder)) if folder else None
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert {p: digest(p) for p in inputs} == before
    if folder:
        assert sorted(os.listdir(folder)) == listing, "files were left in the output folder"
    return lines[0]
