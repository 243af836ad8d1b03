"""Bad input, options and interruptions: one-line errors, exit codes, inputs untouched, nothing
left behind, never a model with non-finite weights (issue: reliability)."""

import json
import os
import threading
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lightcompress.io import cache, models as model_io
from lightcompress.training import finetune as ft
from lightcompress.cli import app
from lightcompress.data import DataSpec, open_for_model
from lightcompress.errors import LightCompressError

from ..cli_checks import digest, fails

runner = CliRunner()


_digest, _fails = digest, fails


# -- silent corruption --------------------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["finetune", "{m}", "-d", "digits", "--teacher", "{m}", "--temperature", "0", "-o", "{d}/o.keras"], "--temperature 0.0 is invalid"),
    (["finetune", "{m}", "-d", "digits", "--teacher", "{m}", "--alpha", "5", "-o", "{d}/o.keras"], "--alpha 5.0 is invalid"),
    (["finetune", "{m}", "-d", "digits", "--patience", "-1", "-o", "{d}/o.keras"], "--patience -1 is invalid"),
    (["finetune", "{m}", "-d", "digits", "--lr", "nan", "-o", "{d}/o.keras"], "--lr nan is invalid"),
    (["convert", "{m}", "--rank", "2", "--scale", "nan", "-d", "{data}", "-o", "{d}/o.keras"], "--scale nan is invalid"),
    (["compress", "{m}", "-d", "digits", "--max-drop", "nan", "-o", "{d}/o.keras"], "--max-drop nan is invalid"),
    (["compress", "{m}", "-d", "digits", "--target-params", "0.5", "--temperature", "0", "-o", "{d}/o.keras"], "--temperature 0.0 is invalid"),
])
def test_options_that_would_corrupt_the_model_are_refused(small, tmp_path, args, message):
    path, data = small
    out = tmp_path / "out"
    out.mkdir()
    args = [a.format(m=path, d=out, data=data) for a in args]
    _fails(args, message, [path, data], out)


def test_nan_and_inf_pixels_are_refused(small, tmp_path):
    path, _ = small
    x = np.zeros((20, 8, 8), np.float32)
    x[3, 2, 2] = np.nan
    bad = tmp_path / "nan.npz"
    np.savez(bad, x_train=x, y_train=np.zeros(20, int), x_test=np.full((5, 8, 8), np.inf, np.float32),
             y_test=np.zeros(5, int))
    out = tmp_path / "out"
    out.mkdir()
    _fails(["finetune", path, "-d", bad, "-o", out / "t.keras"], "train image 3 (and 0 more) holds NaN or inf", [path, bad], out)
    _fails(["evaluate", path, "-d", bad], "holds NaN or inf", [path, bad])


def test_training_into_nan_saves_nothing_and_restores_the_weights(small):
    path, data = small
    model = model_io.load_model(path)
    start = [w.copy() for w in model.get_weights()]
    prepared = open_for_model(model, DataSpec(str(data)), in_memory=True)

    class Diverge(keras.callbacks.Callback):  # what a diverging run leaves behind
        def on_train_batch_end(self, batch, logs=None):
            kernel = self.model.get_layer("fc").kernel
            kernel.assign(np.full(kernel.shape, np.nan, np.float32))

    with pytest.raises(LightCompressError, match="weight 'kernel' non-finite"):
        ft.finetune(model, prepared, ft.FitSettings(epochs=2, validation_split=0.0), callbacks=[Diverge()])
    for a, b in zip(start, model.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- inputs are never outputs ---------------------------------------------------------------------

def test_the_teacher_and_the_plan_are_protected(small, tmp_path):
    path, data = small
    teacher = tmp_path / "teacher.keras"
    teacher.write_bytes(path.read_bytes())
    _fails(["finetune", path, "-d", "digits", "--teacher", teacher, "-o", teacher, "--force"], "is the input file",
           [path, teacher])
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"policy": "x", "layers": []}))
    _fails(["convert", path, "--plan", plan, "-o", plan, "--force"], "must end in .keras", [path, plan])


# -- the cache is a cache -------------------------------------------------------------------------

@pytest.mark.parametrize("content", ["", "{ truncated", "[1, 2, 3]", json.dumps({"foreign": True})])
def test_a_corrupt_cache_entry_is_a_miss_with_a_warning(tmp_path, content):
    entry = tmp_path / "k.json"
    entry.write_text(content)
    warnings = []
    assert cache.read(entry, lambda d: d["base_loss"], "sensitivity cache", warnings.append) is None
    assert len(warnings) == 1 and str(entry) in warnings[0] and "recomputing" in warnings[0]


def test_two_cache_writers_at_once_never_collide(tmp_path):
    entry = tmp_path / "c" / "k.json"
    errors = []

    def writer(n):
        try:
            for i in range(30):
                cache.write({"writer": n, "i": i, "pad": "x" * 5000}, entry)
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert json.loads(entry.read_text())["i"] == 29
    assert os.listdir(entry.parent) == ["k.json"]


# -- interrupts -----------------------------------------------------------------------------------

def test_ctrl_c_in_the_first_epoch_keeps_the_input_weights(small):
    path, data = small
    model = model_io.load_model(path)
    start = [w.copy() for w in model.get_weights()]
    prepared = open_for_model(model, DataSpec(str(data)), in_memory=True)

    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                raise KeyboardInterrupt

    fit = ft.finetune(model, prepared, ft.FitSettings(epochs=3, batch_size=8), callbacks=[Interrupt()])
    assert fit.interrupted and fit.started_from_input and fit.epochs_run == 0
    for a, b in zip(start, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_ctrl_c_at_start_up_is_one_line_and_exit_130(monkeypatch, capsys, tmp_path):
    import importlib
    import signal

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    from lightcompress import _quiet

    app_module = importlib.import_module("lightcompress.cli.typer_app")

    def interrupted(verbose_errors=True):
        raise KeyboardInterrupt

    monkeypatch.setattr(_quiet, "import_keras_quietly", interrupted)
    model = tmp_path / "model.keras"  # it exists: the run gets as far as starting Keras
    model.write_bytes(b"not read: Keras never starts")
    monkeypatch.setattr("sys.argv", ["lightcompress", "inspect", str(model)])
    try:
        with pytest.raises(SystemExit) as exit_info:
            app_module.main()
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip() == "error: interrupted (SIGINT) while starting; nothing was written."


SAMPLES = Path(__file__).resolve().parents[2] / "sample_models"


SIGNAL_RUNS = {
    "finetune": ["--epochs", "500", "--patience", "500"],
    "compress": ["--target-params", "0.5", "--epochs", "500", "--allow-slower", "--no-cache", "--runtime", "keras"],
}


@pytest.mark.parametrize("command, signame, code, when", [
    # each phase once: starting up, loading (a time), training (the first epoch's line: a best epoch
    # exists and is saved), compress analysing; each signal twice. Both signals take one path (the
    # signal policy of the entry point), and the policy is in place before a command is chosen.
    # The default suite keeps the start-up case (the phase where TensorFlow's import races the
    # signal); the other phases run with -m slow (~40 s).
    ("finetune", "SIGINT", 130, 1.0),
    pytest.param("finetune", "SIGTERM", 143, 6.0, marks=pytest.mark.slow),
    pytest.param("finetune", "SIGTERM", 143, "epoch 1/", marks=pytest.mark.slow),
    # compress analysing: at its heading's first line (a fixed delay let a quick machine finish first)
    pytest.param("compress", "SIGINT", 130, "compress ", marks=pytest.mark.slow),
])
def test_a_signal_at_any_point_is_one_line_and_its_exit_code(tmp_path, command, signame, code, when):
    """Whatever was running (starting up, loading, analysing, training), the run ends with its
    signal's exit code, one error line, no traceback and no temporary file; the input is unchanged;
    a model is written only whole, and only when the line says it was saved. ``when``: seconds after
    the start, or the line on stderr that begins the phase."""
    import signal
    import subprocess
    import sys
    import time

    source = tmp_path / "in.keras"
    source.write_bytes((SAMPLES / "digits_mlp.keras").read_bytes())
    before = source.read_bytes()
    out = tmp_path / "out.keras"
    proc = subprocess.Popen([sys.executable, "-m", "lightcompress", command, str(source), "--dataset", "digits",
                             *SIGNAL_RUNS[command], "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    if isinstance(when, str):
        seen, reached = [], threading.Event()

        def read():
            for line in proc.stderr:
                seen.append(line)
                if when in line:
                    reached.set()
            reached.set()  # ended before the line: the checks below say how

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        if not reached.wait(timeout=300):
            proc.kill()
            pytest.fail(f"no line with {when!r} on stderr in 300 s: {''.join(seen)[-2000:]}")
    else:
        time.sleep(when)
    proc.send_signal(getattr(signal, signame))
    if isinstance(when, str):
        proc.stdout.read()
        proc.wait(timeout=120)
        reader.join(timeout=120)
        stderr = "".join(seen)
    else:
        stdout, stderr = proc.communicate(timeout=120)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert lines[-1].startswith(f"error: interrupted ({signame})"), stderr
    assert source.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".lightcompress-tmp-")]
    if isinstance(when, str) and when.startswith("epoch"):
        assert out.exists(), stderr  # an epoch had ended: the best one is saved
    if out.exists():  # written before the signal, or saved by it: then whole, and the line says so
        assert zipfile.is_zipfile(out) and "config.json" in zipfile.ZipFile(out).namelist()
        assert any(words in lines[-1] for words in ("); saved ", "outputs were written", "wrote its outputs",
                                                    "finished before"))


def test_stale_temporaries_of_a_killed_run_are_removed_by_the_next_write(small, tmp_path):
    path, _ = small
    dead = tmp_path / f"{model_io.TMP_PREFIX}999999999-abcd-m.keras"
    dead.write_bytes(b"half a model")
    mine = tmp_path / f"{model_io.TMP_PREFIX}{os.getpid()}-abcd-other.keras"
    mine.write_bytes(b"a write in progress in this process")
    model_io.save_model(model_io.load_model(path), tmp_path / "again.keras")
    assert not dead.exists() and mine.exists()


def test_a_failed_write_leaves_nothing_and_says_why(tmp_path):
    def full_disk(tmp):
        tmp.write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(LightCompressError, match="could not write .*out.keras: No space left on device"):
        model_io.atomic_write(tmp_path / "out.keras", full_disk)
    assert os.listdir(tmp_path) == []


# -- checks before any write ----------------------------------------------------------------------

def test_late_failures_now_fail_before_writing(small, tmp_path):
    path, data = small
    out = tmp_path / "out"
    out.mkdir()
    _fails(["demo", "--out", out, "--target-params", "5"], "--target-params 5.0 is not a fraction", [], out)
    _fails(["demo", "--out", out, "--epochs", "0"], "--epochs 0 is invalid", [], out)
    _fails(["convert", path, "--rank", "2", "--json", "--markdown", "-o", out / "c.keras"], "choose one of --json and --markdown", [path], out)
    a_file = tmp_path / "cachefile"
    a_file.write_text("x")
    _fails(["compress", path, "-d", "digits", "--target-params", "0.5", "--cache-dir", a_file, "-o", out / "c.keras"],
           "is a file", [path], out)


# -- messages instead of "unexpected" -------------------------------------------------------------

def _rewrite_keras_config(path, target, edit):
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    edit(config)
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as z:
        for name, blob in files.items():
            z.writestr(name, blob)
    return target


def test_unknown_layer_class_and_malformed_config_name_the_problem(small, tmp_path):
    path, _ = small

    def rename(config):
        config["config"]["layers"][2]["class_name"] = "FooLayer"
        config["config"]["layers"][2]["module"] = "mypkg.layers"

    foo = _rewrite_keras_config(path, tmp_path / "foo.keras", rename)
    _fails(["convert", foo, "--rank", "2"], "layer 'fc' is of class 'FooLayer' (module mypkg.layers)", [foo])
    broken = tmp_path / "broken.h5"
    with h5py.File(broken, "w") as f:
        f.attrs["model_config"] = '{"class_name": "Sequential", "config": {'
        f.create_group("model_weights")
    _fails(["convert", broken, "--rank", "2"], "not valid JSON", [broken])


@pytest.mark.parametrize("entry,message", [
    ({"name": "fc", "kernel_shape": [64, 20], "rank": 999, "mode": "dense"},
     "layer 'fc' has \"rank\": 999, out of range for its dense factorisation of a (64, 20) kernel; use a rank "
     "from 1 to 20, or null to keep the layer."),
    ({"kernel_shape": [64, 20], "rank": 2, "mode": "dense"}, "has no layer 'name'"),
    ({"name": "fc", "kernel_shape": [64, 20], "rank": "two", "mode": "dense"}, "is not a whole number"),
    ({"name": "fc", "kernel_shape": [64, 20], "rank": 2, "mode": "diagonal"}, "layer 'fc' has \"mode\": \"diagonal\", which is unknown"),
])
def test_bad_plan_files_name_the_problem(small, tmp_path, entry, message):
    path, _ = small
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"policy": "hand-made", "layers": [entry]}))
    _fails(["convert", path, "--plan", plan, "-o", tmp_path / "x.keras"], message, [path, plan], tmp_path)


def test_bad_data_names_the_problem(small, tmp_path):
    path, _ = small
    empty = tmp_path / "empty.npz"
    np.savez(empty, x_train=np.zeros((0, 8, 8)), y_train=np.zeros(0), x_test=np.zeros((0, 8, 8)), y_test=np.zeros(0))
    _fails(["evaluate", path, "-d", empty], "has no train images", [empty])
    folder = tmp_path / "images" / "cat"
    folder.mkdir(parents=True)
    import tensorflow as tf

    for i in range(4):
        tf.io.write_file(str(folder / f"{i}.png"), tf.io.encode_png(np.zeros((8, 8, 1), np.uint8)))
    (folder / "9.png").write_bytes(b"not a png at all")
    cnn = tmp_path / "cnn.keras"
    keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                      keras.layers.Dense(2, activation="softmax")]).save(cnn)
    _fails(["evaluate", cnn, "-d", tmp_path / "images"], "9.png: an image could not be decoded", [cnn])
    mlp = tmp_path / "mlp.keras"
    keras.Sequential([keras.Input((64,)), keras.layers.Dense(2, activation="softmax")]).save(mlp)
    _fails(["evaluate", mlp, "-d", tmp_path / "images"], "the model does not take images", [mlp])


def test_bad_counts_and_empty_selections_are_refused(small, tmp_path):
    path, _ = small
    _fails(["compress", path, "-d", "digits", "--target-params", "0.5", "--holdout", "0", "-o", tmp_path / "c.keras"],
           "--holdout 0 is invalid", [path], tmp_path)
    _fails(["compress", path, "-d", "digits", "--max-drop", "1", "--trials", "0", "-o", tmp_path / "c.keras"],
           "--trials 0 is invalid", [path], tmp_path)
    line = _fails(["convert", path, "--rank", "2", "--include", "conv*", "-o", tmp_path / "c.keras"], "--include conv* matches no factorisable layer", [path], tmp_path)
    assert "fc" in line and "head" in line


def test_a_model_too_big_for_memory_is_refused_before_loading(small, monkeypatch):
    path, _ = small
    declared = model_io.declared_weight_bytes(path)
    weights = sum(int(np.prod(w.shape)) * 4 for w in model_io.load_model(path).weights)
    assert weights <= declared <= weights * 1.1 + 256 * 1024  # the weights file: weights + HDF5 metadata
    monkeypatch.setattr(model_io, "available_memory", lambda: declared)  # less than twice the weights
    monkeypatch.setattr(keras.models, "load_model", lambda *a, **k: pytest.fail("Keras was asked to load it"))
    _fails(["convert", path, "--rank", "2"], "GiB of weights", [path])


# -- every numeric option, thrown at ----------------------------------------------------------------

NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.integers(-5, 10**6))
OPTIONS = {
    "convert": ["--energy", "--ratio", "--target-params", "--scale"],
    "finetune": ["--lr", "--val-split", "--alpha", "--temperature", "--scale"],
    "compress": ["--target-params", "--target-macs", "--target-latency", "--alpha", "--temperature", "--lr"],
}


@pytest.mark.slow  # 10-25 s on 2 cores; the default suite stays within 5 minutes (.ci/run runs -m slow)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(sorted(OPTIONS)), data=st.data(), value=NUMBERS)
def test_numeric_options_either_work_or_fail_cleanly(small, tmp_path_factory, command, data, value):
    path, npz = small
    option = data.draw(st.sampled_from(OPTIONS[command]))
    out = tmp_path_factory.mktemp("out")
    args = [command, str(path), "-d", str(npz), "-o", str(out / "r.keras"), option, repr(float(value))]
    if command == "convert" and option != "--energy" and option not in ("--ratio", "--target-params"):
        args += ["--rank", "2"]
    if command == "finetune":
        args += ["--epochs", "1"] + (["--teacher", str(path)] if option in ("--alpha", "--temperature") else [])
    if command == "compress":
        args += ["--epochs", "1", "--allow-slower", "--no-cache", "--runtime", "keras", "--holdout", "8"]
        if option not in ("--target-params", "--target-macs", "--target-latency"):
            args += ["--target-params", "0.6"]
        if option == "--target-latency":
            args = [a for a in args if a != "--allow-slower"]
    before = _digest(path)
    result = runner.invoke(app, args)
    assert _digest(path) == before
    if result.exit_code == 0:
        saved = model_io.load_model(out / "r.keras")
        assert all(np.all(np.isfinite(w)) for w in saved.get_weights())
    else:
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        # A value refused at the boundary: the error alone. A budget found unreachable only once
        # compress has measured the model: its progress heading first, then the one error line.
        progress = lines[:-1] if command == "compress" and lines[:1] and lines[0].startswith("compress ") else []
        assert len(lines) == len(progress) + 1 and not any("error" in line for line in progress), result.stderr
        assert lines[-1].startswith("error: ") and "unexpected" not in lines[-1], result.stderr
        assert not (out / "r.keras").exists()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_model_with_a_non_finite_weight_is_refused_on_load_and_never_saved(tmp_path, bad):
    import keras

    from lightcompress.errors import ModelLoadError
    from lightcompress.io.models import load_model, save_model

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="head")])
    kernel = model.layers[0].kernel.numpy()
    kernel[1, 2] = bad
    model.layers[0].kernel.assign(kernel)
    with pytest.raises(ModelLoadError, match=r"not saved to .*m\.keras: weight '[^']*head/kernel' holds 1 NaN or infinite value;"):
        save_model(model, tmp_path / "m.keras")
    assert list(tmp_path.iterdir()) == []
    model.save(tmp_path / "damaged.keras")  # written by Keras itself, as a user's file would be
    before = (tmp_path / "damaged.keras").read_bytes()
    with pytest.raises(ModelLoadError, match=r"damaged\.keras: weight '[^']*head/kernel' holds 1 NaN") as err:
        load_model(tmp_path / "damaged.keras")
    assert "\n" not in str(err.value)
    assert (tmp_path / "damaged.keras").read_bytes() == before


@pytest.mark.slow  # 10-25 s on 2 cores; the default suite stays within 5 minutes (.ci/run runs -m slow)
def test_compress_checks_each_setting_once(small, tmp_path, monkeypatch):
    """The goal, the runtime and the fit settings are made (and checked) once per command, at the
    command line; the flow and its stages take them as they are."""
    from lightcompress.deploy.timing import Runtime
    from lightcompress.flows.compress import CompressGoal

    path, data = small
    made = {}
    for cls in (CompressGoal, Runtime, ft.FitSettings):
        def counted(self, check=cls.__post_init__, name=cls.__name__):
            made[name] = made.get(name, 0) + 1
            check(self)
        monkeypatch.setattr(cls, "__post_init__", counted)
    lookups = _count_method_lookups(monkeypatch)
    result = runner.invoke(app, ["compress", str(path), "-d", str(data), "--target-params", "0.6", "--epochs", "1",
                                 "--allow-slower", "--no-cache", "--runtime", "keras", "--holdout", "8",
                                 "-o", str(tmp_path / "c.keras"), "--json"])
    assert result.exit_code == 0, result.output
    assert made == {"CompressGoal": 1, "Runtime": 1, "FitSettings": 1}
    assert lookups == ["data-aware"]  # the method resolved once, then passed down as an object


class _Lookups(dict):
    """The method registry, recording each look-up by name."""

    def __init__(self, methods, seen):
        super().__init__(methods)
        self.seen = seen

    def get(self, name, default=None):
        self.seen.append(name)
        return super().get(name, default)


def _count_method_lookups(monkeypatch) -> list:
    from lightcompress.factorization.methods import base

    seen = []
    monkeypatch.setattr(base, "_METHODS", _Lookups(base._METHODS, seen))
    return seen


@pytest.mark.parametrize("args, method", [
    (["--rank", "2", "--method", "svd"], "svd"),
    (["--rank", "2"], "svd"),  # no data set: the default, resolved once too
    (["--rank", "2", "--method", "data-aware", "-d", "{data}"], "data-aware"),
    (["--target-params", "0.6", "-d", "{data}", "--method", "data-aware+bias"], "data-aware+bias"),
])
def test_convert_resolves_the_method_once(small, tmp_path, monkeypatch, args, method):
    path, data = small
    lookups = _count_method_lookups(monkeypatch)
    result = runner.invoke(app, ["convert", str(path), *[a.format(data=data) for a in args],
                                 "-o", str(tmp_path / "c.keras"), "--json"])
    assert result.exit_code == 0, result.output
    assert lookups == [method]


@pytest.mark.parametrize("args,message", [
    (["compress", "{m}", "-d", "digits", "--target-params", "0.5", "--runtime", "tpu"], "--runtime tpu is unknown; use one of keras, litert, litert-int8, onnxruntime."),
    (["compress", "{m}", "-d", "digits", "--target-params", "0.5", "--threads", "0"], "--threads 0 is invalid"),
    (["compare", "{m}", "{m}", "--runtime", "tpu"], "--runtime tpu is unknown; use one of keras, litert, litert-int8, onnxruntime."),
    (["inspect", "{m}", "--latency", "--threads", "0"], "--threads 0 is invalid"),
    (["compress", "{m}", "-d", "digits", "--target-params", "0.5", "--epochs", "0"], "--epochs 0 is invalid"),
])
def test_runtime_and_fit_options_are_refused_before_any_work(small, tmp_path, args, message):
    path, _ = small
    _fails([a.format(m=path) for a in args] + ["-o", tmp_path / "o.keras"] * (args[0] == "compress"), message,
           [path], tmp_path)
