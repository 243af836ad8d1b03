"""An output owns only itself (issue 34): ``--force`` replaces only what lightcompress itself
writes there (an earlier file of the output's kind, or an empty folder / an earlier SavedModel),
never a folder holding anything else, the working folder, a folder holding an input, an input, or a
symbolic link. Each refusal is one line; nothing that is not the output is ever removed or changed."""

import os
import tempfile
from pathlib import Path

import keras
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lightcompress.cli import app
from lightcompress.deploy import export as ex
from lightcompress.errors import OutputPathError
from lightcompress.io import models as model_io

from ..cli_checks import runner, tree

_tree = tree


def _fails(args, message, root):
    """exit 1, exactly the one line ``error: message``, nothing under ``root`` changed."""
    before = _tree(root)
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: {message}"], result.stderr
    assert _tree(root) == before


@pytest.fixture
def small(tmp_path):
    """The tiny model of tests/cli/conftest.py, in ``tmp_path/sub``."""
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(20, activation="relu", name="fc"),
                              keras.layers.Dense(10, activation="softmax", name="head")])
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "m.keras"
    model.save(path)
    return path


def _saved_model_like(folder: Path, extra=()):
    (folder / "variables").mkdir(parents=True)
    (folder / "assets").mkdir()
    (folder / "saved_model.pb").write_bytes(b"pb")
    (folder / "fingerprint.pb").write_bytes(b"fp")
    (folder / "variables" / "variables.index").write_bytes(b"ix")
    (folder / "variables" / "variables.data-00000-of-00001").write_bytes(b"data")
    for name in extra:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"mine")


# -- the example, and each refusal through the CLI ----------------------------------------

def test_export_into_the_folder_of_its_input_leaves_every_file(small, tmp_path):
    (tmp_path / "sub" / "notes.txt").write_text("mine")
    sub = tmp_path / "sub"
    _fails(["export", small, "-f", "saved_model", "-o", sub, "--force"],
           f"output {sub} is a folder holding the input {small}; lightcompress never replaces it: "
           f"choose a new folder name.", tmp_path)


def test_export_into_the_working_folder_leaves_every_file(small, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "sub")
    (tmp_path / "sub" / "notes.txt").write_text("mine")
    _fails(["export", "m.keras", "-f", "saved_model", "-o", ".", "--force"],
           "output . is the working folder; lightcompress never replaces it: choose a new folder name.", tmp_path)
    _fails(["export", "m.keras", "-f", "saved_model", "-o", "..", "--force"],
           "output .. holds the working folder; lightcompress never replaces it: choose a new folder name.",
           tmp_path)


@pytest.mark.parametrize("force", [True, False])
def test_a_folder_holding_other_files_is_refused(small, tmp_path, force):
    other = tmp_path / "other"
    other.mkdir()
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        (other / name).write_text(name)
    _fails(["export", small, "-f", "saved_model", "-o", other] + (["--force"] if force else []),
           f"output {other} is a folder holding other files (a.txt, b.txt, c.txt, ...); --force replaces "
           f"only an earlier SavedModel folder: choose a new folder name.", tmp_path)


def test_a_saved_model_with_a_foreign_file_is_refused(small, tmp_path):
    out = tmp_path / "out"
    _saved_model_like(out, extra=["variables/mine.txt", "notes.txt"])
    _fails(["export", small, "-f", "saved_model", "-o", out, "--force"],
           f"output {out} is a folder holding other files (notes.txt, variables/mine.txt); --force replaces "
           f"only an earlier SavedModel folder: choose a new folder name.", tmp_path)


def test_a_folder_without_a_saved_model_pb_is_refused(small, tmp_path):
    out = tmp_path / "out"
    (out / "variables").mkdir(parents=True)
    (out / "variables" / "variables.index").write_bytes(b"ix")
    _fails(["export", small, "-f", "saved_model", "-o", out, "--force"],
           f"output {out} is a folder without a saved_model.pb; --force replaces only an earlier SavedModel "
           f"folder: choose a new folder name.", tmp_path)


def test_a_file_output_that_is_a_folder_is_refused(small, tmp_path):
    out = tmp_path / "x.keras"
    out.mkdir()
    _fails(["export", small, "-f", "keras", "-o", out, "--force"],
           f"output {out} is a folder; --force replaces only an earlier file: choose a file name.", tmp_path)
    empty = tmp_path / "e.keras"
    empty.mkdir()
    _fails(["convert", small, "--rank", "2", "-o", empty, "--force"],
           f"output {empty} is a folder; --force replaces only an earlier file: choose a file name.", tmp_path)


def test_a_saved_model_output_that_is_a_file_is_refused(small, tmp_path):
    out = tmp_path / "out"
    out.write_text("mine")
    _fails(["export", small, "-f", "saved_model", "-o", out, "--force"],
           f"output {out} is a file; a SavedModel is a folder: choose another output path.", tmp_path)


def test_the_input_itself_is_refused(small, tmp_path):
    _fails(["export", small, "-f", "keras", "-o", small, "--force"],
           f"output {small} is the input file; lightcompress never overwrites its input: choose another "
           f"output path.", tmp_path)


@pytest.mark.parametrize("fmt,name,to", [("saved_model", "link", "sm"), ("keras", "link.keras", "sub/m.keras"),
                                         ("keras", "dangling.keras", "nowhere.keras")])
def test_a_symbolic_link_is_refused(small, tmp_path, fmt, name, to):
    _saved_model_like(tmp_path / "sm")
    link = tmp_path / name
    link.symlink_to(tmp_path / to)
    _fails(["export", small, "-f", fmt, "-o", link, "--force"],
           f"output {link} is a symbolic link; lightcompress replaces neither a link nor what it points to: "
           f"choose another output path.", tmp_path)


def test_an_earlier_saved_model_is_replaced_with_force(small, tmp_path):
    out = tmp_path / "out"
    args = ["export", str(small), "-f", "saved_model", "-o", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    first = _tree(out)
    assert "saved_model.pb" in first
    _fails(args, f"{out} exists; pass --force to overwrite it, or choose another output path.", tmp_path)
    result = runner.invoke(app, args + ["--force"])
    assert result.exit_code == 0, result.output
    assert "saved_model.pb" in _tree(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "sub"]  # no trash or temporaries left
    out.rename(tmp_path / "gone")
    out.mkdir()  # an empty folder made for the output holds nothing to lose
    assert runner.invoke(app, args + ["--force"]).exit_code == 0


def test_the_replacement_checks_again(tmp_path):
    """A folder that became foreign after check_output is not trashed at the moment of replacement."""
    out = tmp_path / "out"
    _saved_model_like(out)
    ex.check_output(out, "tf_saved_model", force=True)
    (out / "notes.txt").write_text("mine")  # meanwhile
    tmp = ex._temporary_beside(out, "tf_saved_model")
    _saved_model_like(tmp)
    before = _tree(out)
    with pytest.raises(OutputPathError, match="holding other files"):
        ex._move_into_place(tmp, out, "tf_saved_model")
    assert _tree(out) == before
    out.rename(tmp_path / "moved")
    out.mkdir()
    (out / "x.keras").write_text("mine")
    with pytest.raises(OutputPathError, match="is a folder; force=True replaces only an earlier file"):
        model_io.atomic_write(out, lambda t: t.write_text("new"))
    assert (out / "x.keras").read_text() == "mine"


def test_a_plot_over_a_folder_is_refused(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lightcompress.report import plots

    (tmp_path / "p.png").mkdir()
    (tmp_path / "p.png" / "mine.txt").write_text("mine")
    with pytest.raises(OutputPathError, match=r"^output .*p\.png is a folder; force=True replaces only"):
        plots._save(plt.figure(), tmp_path / "p.png", force=True)
    assert (tmp_path / "p.png" / "mine.txt").read_text() == "mine"


# -- the property: nothing that is not the output is removed or changed ---------------------------

ENTRIES = ["saved_model.pb", "fingerprint.pb", "keras_metadata.pb", "variables/variables.index",
           "variables/variables.data-00000-of-00001", "assets/vocab.txt", "assets.extra/x", "notes.txt",
           "m.keras", "variables/mine.txt", "deep/er/x.bin"]
OUTPUTS = ["new", "file", "folder", "input", "input_parent", "dot", "link_to_file", "link_to_folder",
           "nested_new", "nested_existing", "nested_missing_parent"]


def _build(root: Path, contents, folder_kind):
    """The tree: ``sub/m.keras`` (the input), ``other/`` holding ``contents``; the output's name."""
    (root / "sub").mkdir()
    (root / "sub" / "m.keras").write_bytes(b"the input")
    (root / "sub" / "data.npz").write_bytes(b"the data")
    (root / "other").mkdir()
    for name in contents:
        (root / "other" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "other" / name).write_bytes(name.encode())
    return "out" if folder_kind else "out.keras"


def _output(root: Path, kind, name, check):
    if kind == "new":
        return Path(name)
    if kind == "file":
        (root / name).write_bytes(b"an earlier output")
        return Path(name)
    if kind == "folder":
        (root / "other").rename(root / name)
        return Path(name)
    if kind == "input":
        return Path("sub/m.keras")
    if kind == "input_parent":
        return Path("sub")
    if kind == "dot":  # "." (check_output refuses it before any temporary name is made beside it)
        return Path(".") if check else root
    if kind == "link_to_file":
        (root / name).symlink_to(root / "sub" / "m.keras")
        return Path(name)
    if kind == "link_to_folder":
        (root / name).symlink_to(root / "other", target_is_directory=True)
        return Path(name)
    if kind == "nested_new":
        return Path("sub") / name
    if kind == "nested_existing":
        (root / "other" / name).write_bytes(b"an earlier nested output")
        return Path("other") / name
    return Path("missing") / "deeper" / name


def _replace(path: Path, folder_kind, force, check, inputs):
    """What an export does: check_output first (unless ``check`` is False: the folder changed after
    it), then write beside and replace at the end."""
    if folder_kind:
        if check:
            ex.check_output(path, "tf_saved_model", force=force, inputs=inputs)
        tmp = ex._temporary_beside(path, "tf_saved_model")
        try:
            _saved_model_like(tmp)
            ex._move_into_place(tmp, path, "tf_saved_model", inputs)
        finally:
            if tmp.exists() or tmp.is_symlink():
                ex._remove(tmp)
    else:
        if check:
            model_io.check_output(path, force=force, inputs=inputs)
        model_io.atomic_write(path, lambda tmp: tmp.write_bytes(b"new output"), inputs)


SOME = st.sets(st.sampled_from(ENTRIES), max_size=5)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(contents=st.one_of(SOME, SOME.map(lambda s: s | {"saved_model.pb"})), kind=st.sampled_from(OUTPUTS),
       folder_kind=st.booleans(), force=st.booleans(), check=st.booleans())
@example(contents={"saved_model.pb", "notes.txt"}, kind="folder", folder_kind=True, force=True, check=False)
@example(contents={"saved_model.pb", "variables/mine.txt"}, kind="folder", folder_kind=True, force=True, check=True)
@example(contents=set(), kind="dot", folder_kind=True, force=True, check=True)
def test_nothing_but_the_output_is_ever_touched(tmp_path, monkeypatch, contents, kind, folder_kind, force, check):
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    monkeypatch.chdir(root)
    name = _build(root, contents, folder_kind)
    out = _output(root, kind, name, check)
    inputs = [root / "sub" / "m.keras", root / "sub" / "data.npz"]
    before = _tree(root)
    try:
        _replace(out, folder_kind, force, check, inputs)
        done = True
    except OutputPathError as err:
        assert "\n" not in str(err)
        done = False
    after = _tree(root)
    prefix = os.path.relpath(root / out, root)
    prefix = None if prefix == "." else prefix
    owned = {k for k in before if prefix and (k == prefix or k.startswith(prefix + os.sep))}
    for rel, digest in before.items():
        if rel not in owned:
            assert after.get(rel) == digest, (rel, kind, out)
    assert after[os.path.join("sub", "m.keras")] == before[os.path.join("sub", "m.keras")]
    if not done:
        assert after == before, "a refused call changed the tree"
        return
    # replaced: what was there was lightcompress's own kind of output, and only its files changed
    assert kind not in ("input", "input_parent", "dot", "link_to_file", "link_to_folder")
    lost = {k for k in owned if k not in after or after[k] != before[k]}
    if folder_kind:
        assert all(k.split(os.sep, 1)[1] in ENTRIES[:7] for k in lost), lost
        assert "notes.txt" not in contents or kind != "folder"
    else:
        assert lost <= {str(out)}
    assert set(after) - set(before) <= {str(out)} | {str(Path(out) / e) for e in
                                                   ("saved_model.pb", "fingerprint.pb", "variables",
                                                    "assets", "variables/variables.index",
                                                    "variables/variables.data-00000-of-00001")}
    if check and not force:
        assert not owned and kind != "file"

