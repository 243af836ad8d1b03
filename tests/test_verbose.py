"""The Python verbs' ``verbose=``: progress lines on stderr at 1 (the default), nothing at 0, a bad
value refused in one line; and TensorFlow's C++ start-up lines held back when lightcompress is the
one that imports Keras (issue 38, "the Python API is silent")."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import pytest

import lightcompress
from lightcompress.errors import OptionError


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(48, activation="relu"),
                             keras.layers.Dense(10, activation="softmax")])


def _lines(text, verb):
    return [line for line in text.splitlines() if f"] {verb}: " in line]


def test_finetune_prints_a_line_per_epoch_at_verbose_1_and_nothing_at_0(capfd):
    model = _model()
    lightcompress.finetune(model, "digits", epochs=2)  # verbose=1 is the default
    out, err = capfd.readouterr()
    lines = _lines(err, "finetune")
    assert any("fine-tuning: epoch 1/2 loss" in line and "val_acc" in line for line in lines), err
    assert any("epoch 2/2" in line for line in lines) and lines[-1].split("] ")[-1].startswith("finetune: done")
    assert all(line.startswith("[") and "s] " in line for line in lines)  # seconds since the start
    assert "finetune" not in out  # progress goes to stderr, never stdout

    lightcompress.finetune(model, "digits", epochs=1, verbose=0)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_compress_prints_its_stages_at_verbose_1_and_nothing_at_0(capfd):
    model = _model()
    settings = lightcompress.FitSettings(epochs=1)
    kwargs = dict(target_params=0.5, use_cache=False, runtime="keras", allow_slower=True, settings=settings)
    result = lightcompress.compress(model, "digits", verbose=1, **kwargs)
    _, err = capfd.readouterr()
    text = "\n".join(_lines(err, "compress"))
    for expected in ("compressing sequential", "estimate: about ", "sensitivity analysis: 1/", "plan (",
                     "fine-tuning: epoch 1/1 loss",
                     f"-> {result.model.count_params():,} params"):
        assert expected in text, err

    lightcompress.compress(model, "digits", verbose=0, allocation="error", **kwargs)  # quicker: no evaluations
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_convert_and_evaluate_take_verbose(capfd):
    model = _model()
    lightcompress.convert(model, rank=8)
    lightcompress.evaluate(model, "digits")
    _, err = capfd.readouterr()
    assert "convert: factorising: 100%" in err and "convert: done" in err and "evaluate: done: accuracy" in err
    lightcompress.convert(model, rank=8, verbose=0)
    lightcompress.evaluate(model, "digits", verbose=0)
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("verb", ["finetune", "compress", "convert", "evaluate"])
@pytest.mark.parametrize("bad", [3, "loud", -1, 0.5, None])
def test_a_bad_verbose_is_one_option_error_naming_it(verb, bad):
    args = {"finetune": ("digits",), "compress": ("digits",), "evaluate": ("digits",), "convert": ()}[verb]
    extra = {"convert": {"rank": 4}, "compress": {"target_params": 0.5}}.get(verb, {})
    with pytest.raises(OptionError) as caught:
        getattr(lightcompress, verb)(_model(), *args, verbose=bad, **extra)
    message = str(caught.value)
    assert caught.value.option == "verbose" and message.startswith(f"verbose={bad!r} is invalid")
    assert "\n" not in message


@pytest.mark.slow  # a fresh process importing TensorFlow: about 13 s
def test_a_fresh_python_process_prints_no_tensorflow_start_up_lines(tmp_path):
    path = tmp_path / "m.keras"
    _model().save(path)
    code = ("import lightcompress, numpy as np; "
            f"r = lightcompress.evaluate({str(path)!r}, 'digits', verbose=0); "
            "print(np.isfinite(r.accuracy))")
    env = {k: v for k, v in os.environ.items() if k not in ("LIGHTCOMPRESS_TF_LOGS", "TF_CPP_MIN_LOG_LEVEL")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    for word in ("cuinit", "onednn", "cuda", "absl", "cpu_feature_guard"):
        assert word not in done.stderr.lower(), done.stderr
