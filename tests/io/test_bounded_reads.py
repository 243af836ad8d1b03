"""Bounded reads of model files and the odd files a path may name (issue 34): a zip bomb, a zip
directory that lies, huge HDF5 attributes, encrypted or bzip2 members, names that are not UTF-8,
deep JSON, an HDF5 user block, a FIFO or a device in place of a file. Each is refused in one line
naming it (or, for a user block, loads), with the memory the read took shown to stay small."""

import contextlib
import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
import zipfile

import h5py
import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from lightcompress import load_model
from lightcompress.data.sets import load_dataset
from lightcompress.errors import DataError, LightCompressError, ModelLoadError
from lightcompress.io import files, legacy
from lightcompress.io import models as model_io
from lightcompress.planning.plan import read_plan

from ..cli_checks import fails as _fails

runner = CliRunner()
MB = 2 ** 20


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small factorisable model saved as `.keras` and as `.h5`."""
    folder = tmp_path_factory.mktemp("saved")
    model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(16, name="fc"), keras.layers.Dense(4, name="head")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(folder / "m.keras")
        model.save(folder / "m.h5")
    return folder / "m.keras", folder / "m.h5"


def _bomb(path, inflated: int, metadata=b"{}"):
    """A `.keras` whose config.json is ``inflated`` bytes of spaces around ``{}``, deflated: about
    1/1000 of that on disk, written a MB at a time."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("metadata.json", metadata)
        with archive.open("config.json", "w", force_zip64=True) as member:
            for _ in range(inflated // MB):
                member.write(b" " * MB)
            member.write(b"{}")
    return path


def _patch_directory(source, target, name: bytes, *, file_size=None, flags=0, method=None, new_name=None):
    """A copy of the zip ``source`` whose central-directory entry for ``name`` says other things:
    an uncompressed size, flag bits set, a compression method, a name (of the same length)."""
    data = bytearray(source.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        length = struct.unpack("<H", data[at + 28:at + 30])[0]
        if bytes(data[at + 46:at + 46 + length]) == name:
            if file_size is not None:
                data[at + 24:at + 28] = struct.pack("<I", file_size)
            data[at + 8:at + 10] = struct.pack("<H", struct.unpack("<H", data[at + 8:at + 10])[0] | flags)
            if method is not None:
                data[at + 10:at + 12] = struct.pack("<H", method)
            if new_name is not None:
                data[at + 46:at + 46 + length] = new_name
        at = data.find(b"PK\x01\x02", at + 4)
    target.write_bytes(bytes(data))
    return target


@contextlib.contextmanager
def _peak_memory(limit_mb):
    """Fail when Python allocates more than ``limit_mb`` MB at its peak inside the block."""
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit_mb * MB, f"the read took {peak / MB:.0f} MB at its peak"


# -- zip bombs -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """200 MB of config.json in a file of about 200 KB."""
    path = _bomb(tmp_path_factory.mktemp("bomb") / "bomb.keras", 200 * MB)
    assert path.stat().st_size < 2 * MB
    return path


def test_a_config_json_bomb_is_refused_before_it_is_inflated(bomb):
    with _peak_memory(10), pytest.raises(ModelLoadError) as err:
        load_model(bomb)
    assert str(err.value) == (f"{bomb}: config.json inflates to {200 * MB + 2:,} bytes, over the 64 MB a model "
                              f"config may take; the file is damaged or not a Keras model.")


@pytest.mark.parametrize("command", [["inspect"], ["convert", "--rank", "4"]], ids=["inspect", "convert"])
def test_the_cli_refuses_a_bomb_in_one_line(bomb, tmp_path, command):
    args = [command[0], bomb, *command[1:]] + (["-o", tmp_path / "out.keras"] if command[0] == "convert" else [])
    with _peak_memory(100):
        _fails(args, f"{bomb}: config.json inflates to {200 * MB + 2:,} bytes, over the 64 MB", [bomb])
    assert not (tmp_path / "out.keras").exists()


def test_a_directory_that_lies_about_the_size_is_caught_while_reading(bomb, tmp_path):
    """The directory says 1,000 bytes; the member inflates to 200 MB. zipfile stops at the size
    declared (then finds the checksum wrong) and read_member reads in bounded chunks, so the read
    stays small either way."""
    liar = _patch_directory(bomb, tmp_path / "liar.keras", b"config.json", file_size=1000)
    with _peak_memory(20), pytest.raises(ModelLoadError, match="not a Keras model archive .*Bad CRC-32") as err:
        load_model(liar)
    assert "\n" not in str(err.value)
    with _peak_memory(100):
        _fails(["inspect", liar], "Bad CRC-32 for file 'config.json'", [liar])


def test_a_bounded_read_stops_one_byte_past_its_limit():
    class Counting(io.BytesIO):
        asked = 0

        def read(self, n=-1):
            assert 0 <= n <= files.READ_CHUNK, "an unbounded read"
            data = super().read(n)
            Counting.asked += len(data)
            return data

    assert files.read_bounded(Counting(b"x" * 10), 10) == b"x" * 10
    Counting.asked = 0
    assert files.read_bounded(Counting(b"x" * (5 * files.READ_CHUNK)), 2 * files.READ_CHUNK) is None
    assert Counting.asked == 2 * files.READ_CHUNK + 1


def test_a_member_inflating_past_its_limit_while_read_is_refused(saved, tmp_path, monkeypatch):
    """The second guard: a member whose bytes run past the limit though its entry says less."""
    path, _ = saved
    monkeypatch.setattr(files, "READ_CHUNK", 64)
    with zipfile.ZipFile(path) as archive:
        size = archive.getinfo("config.json").file_size
    monkeypatch.setitem(model_io.MEMBER_LIMITS, "config.json", (size - 1, "a model config"))
    monkeypatch.setattr(model_io, "_check_members", lambda *a: None)  # as if the directory said less
    with pytest.raises(ModelLoadError) as err:
        model_io.read_config(path)
    assert str(err.value) == (f"{path}: config.json inflates past the {size - 1:,} bytes a model config may take "
                              f"(its directory entry says {size:,} bytes); the file is damaged or not a Keras model.")


def test_metadata_json_has_a_limit_of_its_own(tmp_path):
    path = _bomb(tmp_path / "meta.keras", 0, metadata=b" " * (2 * MB))
    with pytest.raises(ModelLoadError, match=r"metadata\.json inflates to 2,097,152 bytes, over the 1 MB Keras's "
                                             r"metadata may take; the file is damaged or not a Keras model\.$"):
        load_model(path)


def test_a_weights_member_far_larger_than_stored_is_a_bomb(saved, tmp_path, monkeypatch):
    path, _ = saved
    monkeypatch.setattr(model_io, "EXPANSION_FLOOR", MB)  # the 256 MB floor, scaled down for speed
    bomb = tmp_path / "weights-bomb.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bomb, "w") as dst:
        for info in src.infolist():
            if info.filename != "model.weights.h5":
                dst.writestr(info, src.read(info.filename))
        dst.writestr("model.weights.h5", bytes(8 * MB), zipfile.ZIP_DEFLATED)
    monkeypatch.setattr(keras.models, "load_model", lambda *a, **k: pytest.fail("Keras was asked to load it"))
    with pytest.raises(ModelLoadError, match=r"model\.weights\.h5 inflates to 8,388,608 bytes from [\d,]+ stored, "
                                             r"over 100 times; the file is damaged or a decompression bomb"):
        load_model(bomb)


def test_every_member_counts_against_memory(saved, tmp_path, monkeypatch):
    """Assets are read at load as the weights are: their declared sizes count in the memory check."""
    path, _ = saved
    with_assets = tmp_path / "assets.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(with_assets, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info.filename))
        dst.writestr("assets/vocabulary.txt", b"a\n" * MB)
    weights = model_io.declared_weight_bytes(path)
    assert model_io.declared_weight_bytes(with_assets) == weights + 2 * MB
    monkeypatch.setattr(model_io, "available_memory", lambda: 2 * weights + MB)  # enough for the weights alone
    with pytest.raises(ModelLoadError, match="GiB of weights"):
        load_model(with_assets)


# -- members that cannot be read -------------------------------------------------------------------

@pytest.mark.parametrize("change, says", [
    (dict(flags=0x1), "member 'config.json' is encrypted, which Keras never writes; extract the archive with its "
                      "password, or save the model again."),
    (dict(method=99), "member 'config.json' is compressed with method 99, which lightcompress does not read (only "
                      "stored or deflate); save the model again."),
    (dict(flags=0x800, new_name=b"\xffonfig.json"), "the archive's member names are marked UTF-8 but are not; the "
                                                    "file is damaged: save the model again."),
], ids=["encrypted", "aes", "names-not-utf8"])
def test_a_member_zipfile_cannot_read_is_named(saved, tmp_path, change, says):
    path, _ = saved
    bad = _patch_directory(path, tmp_path / "bad.keras", b"config.json", **change)
    with pytest.raises(ModelLoadError) as err:
        load_model(bad)
    assert str(err.value) == f"{bad}: {says}"
    _fails(["inspect", bad], says, [bad])


def test_bzip2_members_are_refused_unread(saved, tmp_path):
    """bzip2 (and lzma) inflate a whole read at once: a few KB may become GBs before a limit is seen."""
    path, _ = saved
    packed = tmp_path / "bz.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_BZIP2) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    with pytest.raises(ModelLoadError, match="is compressed with bzip2, which lightcompress does not read"):
        load_model(packed)


def test_a_deflated_archive_still_loads(saved, tmp_path):
    path, _ = saved
    packed = tmp_path / "deflated.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert [layer.name for layer in load_model(packed).layers] == ["fc", "head"]


def test_damaged_deflate_data_is_one_line(saved, tmp_path):
    path, _ = saved
    packed = tmp_path / "deflated.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    with zipfile.ZipFile(packed) as archive:
        info = archive.getinfo("config.json")
    data = bytearray(packed.read_bytes())
    start = info.header_offset + 30 + len("config.json") + 10
    data[start:start + 20] = b"\xff" * 20
    packed.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="is not a Keras model archive \\(Error -3 while decompressing"):
        load_model(packed)


# -- deep JSON -------------------------------------------------------------------------------------

DEEP = b'{"class_name": "Sequential", "config": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"


def test_a_config_nested_5000_deep_is_one_line_in_both_readers(tmp_path):
    keras_file = tmp_path / "deep.keras"
    with zipfile.ZipFile(keras_file, "w") as archive:
        archive.writestr("config.json", DEEP)
    h5_file = tmp_path / "deep.h5"
    with h5py.File(h5_file, "w") as f:
        f.attrs["model_config"] = DEEP.decode()
        f.create_group("model_weights")
    for path in (keras_file, h5_file):
        with pytest.raises(ModelLoadError) as err:
            load_model(path)
        assert str(err.value) == (f"{path} holds a model config nested too deeply to read; the file is damaged or "
                                  f"not a Keras model: save the model again.")


def test_a_plan_nested_5000_deep_is_one_line(saved, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_bytes(b"[" * 5000 + b"]" * 5000)
    with pytest.raises(LightCompressError, match="holds JSON nested too deeply to be a plan"):
        read_plan(load_model(saved[0]), plan)


def test_a_plan_over_its_limit_is_refused_unread(saved, tmp_path, monkeypatch):
    from lightcompress.planning import plan as plan_module

    monkeypatch.setattr(plan_module, "MAX_PLAN_BYTES", 1000)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"layers": [], "pad": " " * 2000}))
    with pytest.raises(LightCompressError) as err:
        read_plan(load_model(saved[0]), plan)
    assert str(err.value) == (f"{plan} is over the 1,000 bytes a plan JSON file may take; the file is damaged or "
                              f"not a plan JSON file.")


# -- HDF5 attributes -------------------------------------------------------------------------------

def test_a_huge_model_config_attribute_is_refused_on_its_declared_size(tmp_path):
    path = tmp_path / "big.h5"
    with h5py.File(path, "w", libver="latest") as f:  # dense attribute storage: past 64 KB
        f.attrs.create("model_config", np.zeros((), dtype=f"S{70 * MB}"))
        f.create_group("model_weights")
    with _peak_memory(10), pytest.raises(ModelLoadError) as err:
        load_model(path)
    assert str(err.value) == (f"{path}: attribute 'model_config' declares {70 * MB:,} bytes, over the 64 MB a model "
                              f"config may take; the file is damaged or not a Keras model.")
    _fails(["inspect", path], "attribute 'model_config' declares", [path])


def test_any_attribute_keras_would_read_is_checked(tmp_path):
    path = tmp_path / "names.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {}})
        f.create_group("model_weights/fc").attrs.create("weight_names", np.zeros(65 * MB, np.uint8))
    with pytest.raises(ModelLoadError, match=f"attribute 'weight_names' of /model_weights/fc declares {65 * MB:,} "
                                             f"bytes, over the 64 MB an HDF5 attribute of a model may take"):
        load_model(path)


def test_a_variable_length_config_is_checked_on_its_actual_size(tmp_path, monkeypatch):
    """A variable-length string declares 16 bytes whatever it holds: it is checked once read."""
    monkeypatch.setattr(model_io, "MAX_ATTRIBUTE_BYTES", MB)
    path = tmp_path / "vlen.h5"
    text = json.dumps({"class_name": "Sequential", "config": {"pad": " " * (2 * MB)}})
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs["model_config"] = text
        f.create_group("model_weights")
    with pytest.raises(ModelLoadError, match=f"attribute 'model_config' holds {len(text):,} bytes, over the 1 MB a "
                                             f"model config may take"):
        load_model(path)


def test_an_attribute_header_that_lies_is_one_line(tmp_path):
    """An attribute whose dataspace says 2^33 elements holding 4,099 bytes: HDF5 refuses to decode it."""
    path = tmp_path / "liar.h5"
    with h5py.File(path, "w") as f:
        f.attrs.create("model_config", np.zeros(4099, np.uint8))
        f.create_group("model_weights")
    data = bytearray(path.read_bytes())
    at = data.find(struct.pack("<Q", 4099), data.find(b"model_config\0"))
    data[at:at + 8] = struct.pack("<Q", 2 ** 33)
    path.write_bytes(bytes(data))
    with _peak_memory(10), pytest.raises(ModelLoadError, match="its HDF5 attributes cannot be read .*; the file is "
                                                               "damaged: save the model again.$"):
        load_model(path)


# -- HDF5 user blocks ------------------------------------------------------------------------------

def _with_user_block(source, target, size=512):
    with h5py.File(source, "r") as src, h5py.File(target, "w", userblock_size=size) as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        for key in src:
            src.copy(key, dst)
    with open(target, "r+b") as f:  # the user block is the user's: here, text
        f.write(b"made by a tool that keeps notes here")
    return target


@pytest.mark.parametrize("name", ["ub.h5", "ub.keras"])
def test_an_hdf5_model_with_a_user_block_loads(saved, tmp_path, name):
    _, h5 = saved
    path = _with_user_block(h5, tmp_path / name)
    assert legacy.sniff(path) == "h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(path)
    assert [layer.name for layer in model.layers] == ["fc", "head"]


def test_a_user_block_that_starts_like_a_zip_is_still_hdf5(saved, tmp_path):
    _, h5 = saved
    path = tmp_path / "pk.keras"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 1020 + h5.read_bytes())  # HDF5 finds its signature at 1024
    assert legacy.sniff(path) == "h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_model(path).get_layer("fc").kernel.shape == (32, 16)


def test_a_keras_archive_with_hdf5_bytes_at_512_is_still_a_zip(tmp_path):
    """A `.keras` stores its weights file uncompressed: the HDF5 signature may fall at 512."""
    path = tmp_path / "z.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("pad.txt", b"x" * (512 - 30 - len("pad.txt") - 30 - len("model.weights.h5")))
        archive.writestr("model.weights.h5", legacy.HDF5_MAGIC + b"\0" * 100)
    with open(path, "rb") as f:
        f.seek(512)
        assert f.read(8) == legacy.HDF5_MAGIC
    assert legacy.sniff(path) == "keras"


# -- not a regular file ----------------------------------------------------------------------------

@contextlib.contextmanager
def _released(fifo, seconds=4.9):
    """Run the block against ``fifo``: should it open the FIFO and hang, a writer comes after
    ``seconds`` and closes it (the reader sees its end), so a test fails instead of hanging. The
    block must end within ``seconds``."""
    done = threading.Event()

    def release():
        while not done.wait(seconds):
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    watchdog = threading.Thread(target=release, daemon=True)
    watchdog.start()
    start = time.monotonic()
    try:
        yield
    finally:
        done.set()
        watchdog.join()
    assert time.monotonic() - start < seconds, "the FIFO was opened"


@pytest.fixture
def fifo(tmp_path):
    def make(name):
        path = tmp_path / name
        os.mkfifo(path)
        return path
    return make


def test_a_fifo_as_a_model_is_refused_before_any_open(fifo):
    path = fifo("m.keras")
    with _released(path), pytest.raises(ModelLoadError) as err:
        load_model(path)
    assert str(err.value) == f"{path} is not a regular file (a FIFO); give a .keras or .h5 model file."
    with _released(path):
        _fails(["inspect", path], f"{path} is not a regular file (a FIFO); give a .keras or .h5 model file.")


def test_a_fifo_as_a_plan_is_refused_before_the_model_loads(saved, fifo, tmp_path):
    path = fifo("plan.json")
    model = load_model(saved[0])
    with _released(path), pytest.raises(LightCompressError, match="is not a regular file \\(a FIFO\\); give a plan JSON file"):
        read_plan(model, path)
    with _released(path):
        _fails(["convert", saved[0], "--plan", path, "-o", tmp_path / "out.keras"],
                   f"{path} is not a regular file (a FIFO); give a plan JSON file.", [saved[0]])
    with _released(path):
        _fails(["inspect", saved[0], "--plan", path, "-d", "digits"], "is not a regular file (a FIFO)")


def test_a_fifo_as_data_is_refused(fifo):
    path = fifo("d.npz")
    with _released(path), pytest.raises(DataError, match=f"^{path} is not a regular file \\(a FIFO\\); give a .npz file.$"):
        load_dataset(str(path))
    records = fifo("d.tfrecord")
    from lightcompress.data.sources import tfrecord_source

    with _released(records), pytest.raises(DataError, match="is not a regular file \\(a FIFO\\); give a .tfrecord file"):
        tfrecord_source(str(records), None, (8, 8, 1))


def test_a_device_as_a_model_is_refused(tmp_path):
    link = tmp_path / "zero.keras"
    link.symlink_to("/dev/zero")
    with pytest.raises(ModelLoadError, match=r"zero\.keras is not a regular file \(a character device\); give a "):
        load_model(link)


@pytest.mark.slow  # a fresh Python with TensorFlow (~10 s on 2 cores)
def test_the_cli_in_a_process_of_its_own_ends_on_a_fifo(fifo):
    path = fifo("m.keras")
    result = subprocess.run([sys.executable, "-m", "lightcompress", "inspect", str(path)], capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (f"error: {path} is not a regular file (a FIFO); give a .keras or "
                                                      f".h5 model file.")
