"""A Keras failure keeps its informative line (issue 36): the inputs and shapes Keras names, not its
generic "Exception encountered when calling X.call()." heading, the arguments it lists or its
colour codes; still one line. The texts are Keras's own, produced here."""

import json
import zipfile

import keras
import numpy as np
import pytest

from lightcompress.errors import ModelLoadError
from lightcompress.io.models import _keras_reason, load_model


def _raised(fn):
    with pytest.raises(Exception) as info:
        fn()
    return info.value


def _nested_functional():
    i = keras.Input((4,))
    return keras.Model(i, keras.layers.Dense(2)(i))


def test_a_call_error_keeps_what_was_received():
    seq = keras.Sequential([_nested_functional()])
    err = _raised(lambda: seq([np.ones((1, 4)), np.ones((1, 4))]))
    assert str(err).startswith("Exception encountered when calling Sequential.call()")  # the text under test
    reason = _keras_reason(err)
    assert "expects 1 named input(s)" in reason and "but it received 2 input tensors" in reason
    assert "\n" not in reason and "\x1b" not in reason and "Arguments received" not in reason
    assert not reason.startswith("Exception encountered")


def test_a_shape_mismatch_keeps_the_shapes():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    reason = _keras_reason(_raised(lambda: model(np.ones((2, 5)))))
    assert "expected axis -1 of input shape to have value 4, but received input with shape (2, 5)" in reason
    assert "\n" not in reason


def test_a_long_reason_is_capped_and_whitespace_collapsed():
    err = ValueError("Exception encountered when calling Foo.call().\n\n  Layer   'x' got\tshape " + "(1, 2) " * 200)
    reason = _keras_reason(err)
    assert reason.startswith("Layer 'x' got shape (1, 2)") and reason.endswith("...") and len(reason) <= 300


def test_a_load_failure_inside_a_nested_sequential_is_one_informative_line(tmp_path):
    """The Teachable Machine shape of failure: a Sequential called on two tensors in the saved graph,
    its nested functional taking one."""
    seq = keras.Sequential([_nested_functional()])
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    good = tmp_path / "good.keras"
    keras.Model([a, b], keras.layers.Add()([seq(a), seq(b)])).save(good)
    with zipfile.ZipFile(good) as z:
        files = {name: z.read(name) for name in z.namelist()}
    config = json.loads(files["config.json"])
    layer = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Sequential")
    first, second = (node["args"][0] for node in layer["inbound_nodes"])
    layer["inbound_nodes"][0]["args"] = [[first, second]]
    files["config.json"] = json.dumps(config)
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    with pytest.raises(ModelLoadError) as info:
        load_model(bad)
    message = str(info.value)
    assert "\n" not in message and "Exception encountered when calling" not in message
    assert "expects 1 named input(s)" in message and "but it received 2 input tensors" in message
