"""One test per rewrite rule of ``lightcompress/io/legacy.py``, each from a real file's config text.

The layer configs below are copied from the configs of files in the legacy corpus
(``benchmarks/legacy_corpus_manifest.json``; the weights never are): each test writes a small
``.h5`` with Keras 3, puts the Keras 2 config (real snippet, sizes shrunk) in place of its own,
checks that plain Keras 3 refuses the file, and that ``load_model`` loads it and predicts what the
Keras 3 model that wrote the weights predicts.
"""

import copy
import sys
import json
import warnings

import h5py
import keras
import numpy as np
import pytest

from lightcompress.errors import LightCompressWarning
from lightcompress.io import legacy
from lightcompress.io.models import load_model

# 010-teachable-machine-keras-model (keras 2.3.0-tf): a MobileNetV2 depthwise convolution.
TM_DEPTHWISE = json.loads("""{"class_name": "DepthwiseConv2D", "config": {"name": "expanded_conv_depthwise",
 "trainable": true, "dtype": "float32", "kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
 "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1, "activation": "linear", "use_bias": false,
 "bias_initializer": {"class_name": "Zeros", "config": {}}, "bias_regularizer": null, "activity_regularizer": null,
 "bias_constraint": null, "depth_multiplier": 1, "depthwise_initializer": {"class_name": "VarianceScaling",
 "config": {"scale": 1, "mode": "fan_avg", "distribution": "uniform", "seed": null}}, "depthwise_regularizer": null,
 "depthwise_constraint": null}, "name": "expanded_conv_depthwise", "inbound_nodes": [[["Conv1_relu", 0, 0, {}]]]}""")
# The same file: the nested Functional's input layer and its input/output lists, and a ReLU(6).
TM_MODEL3 = json.loads("""{"name": "model3", "input_layers": [["input_1", 0, 0]],
 "output_layers": [["out_relu", 0, 0]]}""")
TM_INPUT = json.loads("""{"class_name": "InputLayer", "config": {"batch_input_shape": [null, 224, 224, 3],
 "dtype": "float32", "sparse": false, "ragged": false, "name": "input_1"}, "name": "input_1", "inbound_nodes": []}""")
TM_RELU6 = json.loads("""{"class_name": "ReLU", "config": {"name": "Conv1_relu", "trainable": true, "dtype": "float32",
 "max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0}, "name": "Conv1_relu",
 "inbound_nodes": [[["bn_Conv1", 0, 0, {}]]]}""")
# Its head: a Sequential whose InputLayer and first Dense both carry batch_input_shape.
TM_HEAD_DENSE = json.loads("""{"class_name": "Dense", "config": {"name": "dense_Dense5", "trainable": true,
 "batch_input_shape": [null, 1280], "dtype": "float32", "units": 100, "activation": "relu", "use_bias": true,
 "kernel_initializer": {"class_name": "VarianceScaling", "config": {"scale": 1, "mode": "fan_in",
 "distribution": "truncated_normal", "seed": null}}, "bias_initializer": {"class_name": "Zeros", "config": {}},
 "kernel_regularizer": null, "bias_regularizer": null, "activity_regularizer": null, "kernel_constraint": null,
 "bias_constraint": null}}""")

# 001-stockpredictionlstm-keras-model (keras 2.12.0): an LSTM with time_major.
LSTM_2_12 = json.loads("""{"class_name": "LSTM", "config": {"name": "lstm", "trainable": true, "dtype": "float32",
 "batch_input_shape": [null, 100, 1], "return_sequences": true, "return_state": false, "go_backwards": false,
 "stateful": false, "unroll": false, "time_major": false, "units": 50, "activation": "relu",
 "recurrent_activation": "sigmoid", "use_bias": true, "kernel_initializer": {"class_name": "GlorotUniform",
 "config": {"seed": null}}, "recurrent_initializer": {"class_name": "Orthogonal", "config": {"gain": 1.0,
 "seed": null}}, "bias_initializer": {"class_name": "Zeros", "config": {}}, "unit_forget_bias": true,
 "kernel_regularizer": null, "recurrent_regularizer": null, "bias_regularizer": null, "activity_regularizer": null,
 "kernel_constraint": null, "recurrent_constraint": null, "bias_constraint": null, "dropout": 0.0,
 "recurrent_dropout": 0.0, "implementation": 2}}""")
LSTM_INPUT = json.loads("""{"class_name": "InputLayer", "config": {"batch_input_shape": [null, 100, 1],
 "dtype": "float32", "sparse": false, "ragged": false, "name": "lstm_input"}}""")

# 012-python-chatbot-chatbot-model (keras 2.2.4-tf): a Sequential with no InputLayer.
CHATBOT_DENSE = json.loads("""{"class_name": "Dense", "config": {"name": "dense_10", "trainable": true,
 "batch_input_shape": [null, 91], "dtype": "float32", "units": 128, "activation": "relu", "use_bias": true,
 "kernel_initializer": {"class_name": "VarianceScaling", "config": {"scale": 1.0, "mode": "fan_avg",
 "distribution": "uniform", "seed": null}}, "bias_initializer": {"class_name": "Zeros", "config": {}},
 "kernel_regularizer": null, "bias_regularizer": null, "activity_regularizer": null, "kernel_constraint": null,
 "bias_constraint": null}}""")
# 021-basicdcgan-discriminator (keras 2.2.4-tf): the same, on a convolution.
DCGAN_CONV = json.loads("""{"class_name": "Conv2D", "config": {"name": "conv2d", "trainable": false,
 "batch_input_shape": [null, 28, 28, 1], "dtype": "float32", "filters": 64, "kernel_size": [5, 5],
 "strides": [2, 2], "padding": "same", "data_format": "channels_last", "dilation_rate": [1, 1],
 "activation": "linear", "use_bias": true, "kernel_initializer": {"class_name": "GlorotUniform",
 "config": {"seed": null}}, "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": null,
 "bias_regularizer": null, "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null}}""")

# 009-keras-notes-my-new-model (keras 3 writing a legacy .h5): an initializer saved as a function.
FUNCTION_INIT_DENSE = json.loads("""{"class_name": "Dense", "config": {"name": "dense_1", "trainable": true,
 "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null},
 "units": 1, "activation": "linear", "use_bias": true, "kernel_initializer": {"module": "builtins",
 "class_name": "function", "config": "random_normal", "registered_name": "function"}, "bias_initializer":
 {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": null},
 "kernel_regularizer": null, "bias_regularizer": null, "kernel_constraint": null, "bias_constraint": null}}""")


def _sequential(name, layers):
    return {"class_name": "Sequential", "config": {"name": name, "layers": layers}}


def _with(layer, **changes):
    """A copy of a real layer config with some values changed (sizes shrunk for a fast test)."""
    layer = copy.deepcopy(layer)
    layer["config"].update(changes)
    return layer


def _keras2_file(tmp_path, model, config, name="model.h5"):
    """``model``'s weights in a .h5 written by Keras 3, its config replaced by ``config`` (the form a
    Keras 2 file holds), its version attribute by a Keras 2 one."""
    path = tmp_path / name
    model.save(path)
    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.12.0"
    return path


def _loads_like(path, reference, x, notes):
    expected = reference.predict(x, verbose=0)
    try:  # the file really is a form plain Keras 3 refuses or misreads
        plain = keras.models.load_model(path, compile=False)
        wrong = not np.allclose(plain.predict(x, verbose=0), expected, atol=1e-6)
    except Exception:  # noqa: BLE001 - any of Keras's errors
        wrong = True
    assert wrong, "plain Keras 3 reads this file right: the fixture is not a form that needs a rule"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(path)
    got = [str(w.message).split(": ", 1)[1] for w in caught if issubclass(w.category, LightCompressWarning)]
    assert got == notes
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-6)
    return model


def test_depthwise_groups_is_dropped(tmp_path):
    reference = keras.Sequential([keras.Input((6, 6, 3)),
                                  keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False,
                                                               name="expanded_conv_depthwise")])
    depthwise = copy.deepcopy(TM_DEPTHWISE)
    del depthwise["name"], depthwise["inbound_nodes"]
    config = _sequential("sequential", [_with(TM_INPUT, batch_input_shape=[None, 6, 6, 3]), depthwise])
    fixed, done = legacy.rewrite_config(config)
    assert "groups" not in fixed["config"]["layers"][1]["config"]
    assert "groups" in config["config"]["layers"][1]["config"]  # the caller's config is left alone
    x = np.random.default_rng(0).random((2, 6, 6, 3), dtype=np.float32)
    _loads_like(_keras2_file(tmp_path, reference, config), reference, x, [
        "dropped 'groups': 1 from DepthwiseConv2D layer 'expanded_conv_depthwise' (tf.keras 2.3-2.15 wrote it; "
        "a depthwise convolution has no groups)"])


def test_depthwise_groups_other_than_one_is_left_for_keras_to_refuse():
    config = _sequential("s", [_with(TM_DEPTHWISE, groups=2)])
    fixed, done = legacy.rewrite_config(config)
    assert fixed["config"]["layers"][0]["config"]["groups"] == 2 and not done


def test_lstm_time_major_is_dropped(tmp_path):
    reference = keras.Sequential([keras.Input((7, 1)), keras.layers.LSTM(5, activation="relu", name="lstm",
                                                                         return_sequences=True)])
    config = _sequential("sequential", [_with(LSTM_INPUT, batch_input_shape=[None, 7, 1]),
                                        _with(LSTM_2_12, batch_input_shape=[None, 7, 1], units=5)])
    x = np.random.default_rng(0).random((3, 7, 1), dtype=np.float32)
    _loads_like(_keras2_file(tmp_path, reference, config), reference, x, [
        "dropped 'time_major': false from recurrent layer 'lstm' (Keras 2 wrote it; Keras 3 is batch-major only)"])


def test_time_major_true_and_wrapped_recurrent_layers():
    """True is a different computation: left for Keras to refuse. A Bidirectional's inner layer is
    rewritten like any other."""
    fixed, done = legacy.rewrite_config(_sequential("s", [_with(LSTM_2_12, time_major=True)]))
    assert fixed["config"]["layers"][-1]["config"]["time_major"] is True and list(done.done) == ["first-layer-shape"]
    wrapped = {"class_name": "Bidirectional", "config": {"name": "bidirectional", "layer": LSTM_2_12,
                                                         "merge_mode": "concat"}}
    fixed, done = legacy.rewrite_config(_sequential("s", [wrapped]))
    assert "time_major" not in fixed["config"]["layers"][0]["config"]["layer"]["config"]
    assert "dropped 'time_major': false from recurrent layer 'lstm' (Keras 2 wrote it; Keras 3 is batch-major " \
           "only)" in done.lines()


@pytest.mark.parametrize("first, reference_layers, shape", [
    (_with(CHATBOT_DENSE, batch_input_shape=[None, 9], units=4),
     [keras.layers.Dense(4, activation="relu", name="dense_10")], (9,)),
    (_with(DCGAN_CONV, batch_input_shape=[None, 8, 8, 1], filters=3, trainable=True),
     [keras.layers.Conv2D(3, 5, strides=2, padding="same", name="conv2d")], (8, 8, 1)),
], ids=["dense", "conv2d"])
def test_a_first_layer_batch_input_shape_becomes_an_input_layer(tmp_path, first, reference_layers, shape):
    reference = keras.Sequential([keras.Input(shape), *reference_layers,
                                  keras.layers.Flatten(name="flatten"), keras.layers.Dense(2, name="out")])
    config = _sequential("sequential", [first, {"class_name": "Flatten", "config": {"name": "flatten"}},
                                        {"class_name": "Dense", "config": {"name": "out", "units": 2}}])
    fixed, _ = legacy.rewrite_config(config)
    assert fixed["config"]["layers"][0] == {"class_name": "InputLayer", "config": {
        "batch_shape": [None, *shape], "dtype": "float32", "sparse": False, "name": f"{first['config']['name']}_input"}}
    assert "batch_input_shape" not in fixed["config"]["layers"][1]["config"]
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    _loads_like(_keras2_file(tmp_path, reference, config), reference, x, [
        f"put an InputLayer before layer '{first['config']['name']}': Keras 2's 'batch_input_shape' on a "
        f"Sequential's first layer"])


def test_a_function_initializer_is_read_as_its_class(tmp_path):
    reference = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, name="dense_1")])
    config = _sequential("sequential_1", [{"class_name": "InputLayer", "config": {"batch_shape": [None, 3],
                                                                                  "dtype": "float32", "name": "in"}},
                                          FUNCTION_INIT_DENSE])
    x = np.random.default_rng(0).random((4, 3), dtype=np.float32)
    _loads_like(_keras2_file(tmp_path, reference, config), reference, x, [
        "initializer saved as a function read as its Keras class (layer 'dense_1')"])


# -- a nested MobileNetV2-like model, as Teachable Machine writes it ------------------------------

def _tm_reference():
    """Sequential[Sequential[Functional model3 (pad, conv, BN, ReLU6, depthwise, BN, ReLU6, 1x1, BN,
    ReLU6), pooling], Sequential head[Dense, Dense]], named as Teachable Machine names them."""
    x = inputs = keras.Input((8, 8, 3), name="input_1")
    x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name="Conv1_pad")(x)
    x = keras.layers.Conv2D(4, 3, strides=2, use_bias=False, name="Conv1")(x)
    x = keras.layers.BatchNormalization(name="bn_Conv1")(x)
    x = keras.layers.ReLU(6.0, name="Conv1_relu")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="expanded_conv_depthwise")(x)
    x = keras.layers.BatchNormalization(name="expanded_conv_depthwise_BN")(x)
    x = keras.layers.ReLU(6.0, name="expanded_conv_depthwise_relu")(x)
    x = keras.layers.Conv2D(5, 1, use_bias=False, name="Conv_1")(x)
    x = keras.layers.BatchNormalization(name="Conv_1_bn")(x)
    x = keras.layers.ReLU(6.0, name="out_relu")(x)
    model3 = keras.Model(inputs, x, name="model3")
    base = keras.Sequential([keras.Input((8, 8, 3)), model3,
                             keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")], name="sequential_9")
    head = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="relu", name="dense_Dense5"),
                             keras.layers.Dense(3, activation="softmax", use_bias=False, name="dense_Dense6")],
                            name="sequential_11")
    model = keras.Sequential([keras.Input((8, 8, 3)), base, head], name="sequential_12")
    rng = np.random.default_rng(1)
    for layer in model3.layers:  # BatchNorm statistics that are not the identity
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.random(w.shape).astype("float32") + 0.5 for w in layer.get_weights()])
    return model


def _node(layer, inbound):
    layer = copy.deepcopy(layer)
    layer["name"] = layer["config"]["name"]
    layer["inbound_nodes"] = [[[inbound, 0, 0, {}]]] if inbound else []
    return layer


def _bn(name):  # the BatchNormalization config Teachable Machine files hold (axis as a list)
    return {"class_name": "BatchNormalization", "config": {"name": name, "trainable": True, "dtype": "float32",
                                                           "axis": [3], "momentum": 0.999, "epsilon": 0.001,
                                                           "center": True, "scale": True}}


def _tm_config():
    """The Keras 2 config of ``_tm_reference``, from 010-teachable-machine-keras-model's text."""
    relu = lambda name: _with(TM_RELU6, name=name)  # noqa: E731
    conv = lambda name, filters, size, strides: {"class_name": "Conv2D", "config": {  # noqa: E731
        "name": name, "trainable": True, "dtype": "float32", "filters": filters, "kernel_size": [size, size],
        "strides": [strides, strides], "padding": "valid", "data_format": "channels_last",
        "dilation_rate": [1, 1], "groups": 1, "activation": "linear", "use_bias": False}}
    chain = [
        _with(TM_INPUT, batch_input_shape=[None, 8, 8, 3]),
        {"class_name": "ZeroPadding2D", "config": {"name": "Conv1_pad", "trainable": True, "dtype": "float32",
                                                   "padding": [[0, 1], [0, 1]], "data_format": "channels_last"}},
        conv("Conv1", 4, 3, 2), _bn("bn_Conv1"), relu("Conv1_relu"),
        TM_DEPTHWISE, _bn("expanded_conv_depthwise_BN"), relu("expanded_conv_depthwise_relu"),
        conv("Conv_1", 5, 1, 1), _bn("Conv_1_bn"), relu("out_relu"),
    ]
    nodes = [_node(layer, chain[i - 1]["config"]["name"] if i else None) for i, layer in enumerate(chain)]
    model3 = {"class_name": "Functional", "config": {**TM_MODEL3, "layers": nodes}}
    model3_input = {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 8, 8, 3], "dtype": "float32",
                                                           "sparse": False, "ragged": False, "name": "model3_input"}}
    pooling = {"class_name": "GlobalAveragePooling2D", "config": {"name": "global_average_pooling2d",
                                                                  "trainable": True, "dtype": "float32",
                                                                  "data_format": "channels_last"}}
    head_input = {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 5], "dtype": "float32",
                                                         "sparse": False, "ragged": False,
                                                         "name": "dense_Dense5_input"}}
    head = [head_input, _with(TM_HEAD_DENSE, batch_input_shape=[None, 5], units=4),
            {"class_name": "Dense", "config": {"name": "dense_Dense6", "trainable": True, "dtype": "float32",
                                               "units": 3, "activation": "softmax", "use_bias": False}}]
    top_input = {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 8, 8, 3], "dtype": "float32",
                                                        "sparse": False, "ragged": False,
                                                        "name": "sequential_9_input"}}
    return _sequential("sequential_12", [top_input, _sequential("sequential_9", [model3_input, model3, pooling]),
                                         _sequential("sequential_11", head)])


def test_a_nested_mobilenet_with_groups_as_keras_2_wrote_it_loads(tmp_path):
    reference = _tm_reference()
    x = np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32)
    model = _loads_like(_keras2_file(tmp_path, reference, _tm_config(), "keras_model.h5"), reference, x, [
        "dropped 'groups': 1 from DepthwiseConv2D layer 'expanded_conv_depthwise' (tf.keras 2.3-2.15 wrote it; "
        "a depthwise convolution has no groups)",
        "nested model 'model3': its one input and output read as single tensors (Keras 2 wrote lists of one, "
        "which Keras 3 passes on as lists)"])
    assert [layer.name for layer in model.layers] == ["sequential_9", "sequential_11"]


def test_a_top_level_functional_keeps_its_lists():
    """Only a nested model's one-element lists are unwrapped, and only in a Keras 2 file: a top-level
    model's are its own API, and in a Keras 3 file a list of one is what its author built."""
    config = {"class_name": "Functional", "config": {**TM_MODEL3, "layers": [TM_INPUT]}}
    fixed, done = legacy.rewrite_config(config, keras_2=True)
    assert fixed == config and not done
    nested = _sequential("s", [{"class_name": "Functional", "config": {**TM_MODEL3, "layers": [TM_INPUT]}}])
    assert legacy.rewrite_config(nested)[0] == nested
    assert legacy.rewrite_config(nested, keras_2=True)[0] != nested


# 015-mario-level-generator-model (keras 2.2.0): a Sequential config that is a bare list.
MARIO_LSTM = json.loads("""{"class_name": "LSTM", "config": {"name": "lstm_1", "trainable": true,
 "batch_input_shape": [null, 40, 23], "dtype": "float32", "return_sequences": false, "return_state": false,
 "go_backwards": false, "stateful": false, "unroll": false, "units": 128, "activation": "tanh",
 "recurrent_activation": "hard_sigmoid", "use_bias": true, "kernel_initializer": {"class_name": "VarianceScaling",
 "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": null}}, "recurrent_initializer":
 {"class_name": "Orthogonal", "config": {"gain": 1.0, "seed": null}}, "bias_initializer": {"class_name": "Zeros",
 "config": {}}, "unit_forget_bias": true, "kernel_regularizer": null, "recurrent_regularizer": null,
 "bias_regularizer": null, "activity_regularizer": null, "kernel_constraint": null, "recurrent_constraint": null,
 "bias_constraint": null, "dropout": 0.0, "recurrent_dropout": 0.0, "implementation": 1}}""")
MARIO_REST = json.loads("""[{"class_name": "Dense", "config": {"name": "dense_1", "trainable": true, "units": 23,
 "activation": "linear", "use_bias": true, "kernel_initializer": {"class_name": "VarianceScaling", "config":
 {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": null}}, "bias_initializer": {"class_name":
 "Zeros", "config": {}}, "kernel_regularizer": null, "bias_regularizer": null, "activity_regularizer": null,
 "kernel_constraint": null, "bias_constraint": null}}, {"class_name": "Activation", "config": {"name":
 "activation_1", "trainable": true, "activation": "softmax"}}]""")

# 028-comparing-multiple-pre-trained-bigru-model (keras 2.4.0): a Bidirectional GRU.
BIGRU = json.loads("""{"class_name": "Bidirectional", "config": {"name": "bidirectional_4", "trainable": true,
 "dtype": "float32", "layer": {"class_name": "GRU", "config": {"name": "gru_4", "trainable": true, "dtype": "float32",
 "return_sequences": false, "return_state": false, "go_backwards": false, "stateful": false, "unroll": false,
 "time_major": false, "units": 16, "activation": "tanh", "recurrent_activation": "hard_sigmoid", "use_bias": true,
 "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": null}}, "recurrent_initializer":
 {"class_name": "Orthogonal", "config": {"gain": 1.0, "seed": null}}, "bias_initializer": {"class_name": "Zeros",
 "config": {}}, "kernel_regularizer": null, "recurrent_regularizer": null, "bias_regularizer": null,
 "activity_regularizer": null, "kernel_constraint": null, "recurrent_constraint": null, "bias_constraint": null,
 "dropout": 0.0, "recurrent_dropout": 0.0, "implementation": 1, "reset_after": false}}, "merge_mode": "concat"}}""")

# 043-dat255-voicecommandassistant-lstm-mfcc (a .keras written by tf.keras 2.15): the model's module
# and a BatchNormalization.
ENGINE_TOP = json.loads("""{"module": "keras.src.engine.functional", "class_name": "Functional",
 "registered_name": "Functional", "build_config": {"input_shape": [null, 63, 40]}}""")
ENGINE_BN = json.loads("""{"module": "keras.layers", "class_name": "BatchNormalization", "config": {"name":
 "batch_normalization", "trainable": true, "dtype": "float32", "axis": [2], "momentum": 0.99, "epsilon": 0.001,
 "center": true, "scale": true, "beta_initializer": {"module": "keras.initializers", "class_name": "Zeros",
 "config": {}, "registered_name": null}, "gamma_initializer": {"module": "keras.initializers", "class_name": "Ones",
 "config": {}, "registered_name": null}, "moving_mean_initializer": {"module": "keras.initializers", "class_name":
 "Zeros", "config": {}, "registered_name": null}, "moving_variance_initializer": {"module": "keras.initializers",
 "class_name": "Ones", "config": {}, "registered_name": null}, "beta_regularizer": null, "gamma_regularizer": null,
 "beta_constraint": null, "gamma_constraint": null}, "registered_name": null, "build_config": {"input_shape":
 [null, 63, 64]}, "name": "batch_normalization", "inbound_nodes": [[["conv1d", 0, 0, {}]]]}""")

# 014-sentiment-classifer-model (keras 2.x, HDF5 under a .keras name): an Embedding of any length.
EMBEDDING_INPUT = json.loads("""{"class_name": "InputLayer", "config": {"batch_input_shape": [null, null],
 "dtype": "float32", "sparse": false, "ragged": false, "name": "embedding_input"}}""")
EMBEDDING = json.loads("""{"class_name": "Embedding", "config": {"name": "embedding", "trainable": true,
 "dtype": "float32", "batch_input_shape": [null, null], "input_dim": 10000, "output_dim": 16,
 "embeddings_initializer": {"class_name": "RandomUniform", "config": {"minval": -0.05, "maxval": 0.05,
 "seed": null}}, "embeddings_regularizer": null, "activity_regularizer": null, "embeddings_constraint": null,
 "mask_zero": false, "input_length": null}}""")


def test_a_sequential_saved_as_a_bare_list_is_read(tmp_path):
    reference = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4, name="lstm_1"),
                                  keras.layers.Dense(3, name="dense_1"),
                                  keras.layers.Activation("softmax", name="activation_1")])
    lstm = _with(MARIO_LSTM, batch_input_shape=[None, 5, 3], units=4, recurrent_activation="sigmoid")
    rest = copy.deepcopy(MARIO_REST)
    rest[0]["config"]["units"] = 3
    config = {"class_name": "Sequential", "config": [lstm, *rest]}
    x = np.random.default_rng(0).random((2, 5, 3), dtype=np.float32)
    _loads_like(_keras2_file(tmp_path, reference, config), reference, x, [
        "Sequential 'sequential': its config, a bare list of layers (Keras 2.0-2.2), read as a named list",
        "put an InputLayer before layer 'lstm_1': Keras 2's 'batch_input_shape' on a Sequential's first layer"])


def test_a_nested_bare_list_sequential_is_read_too():
    inner = {"class_name": "Sequential", "config": copy.deepcopy(MARIO_REST)}
    fixed, done = legacy.rewrite_config({"class_name": "Sequential", "config": [MARIO_LSTM, inner]})
    assert [layer["class_name"] for layer in fixed["config"]["layers"]] == ["InputLayer", "LSTM", "Sequential"]
    assert fixed["config"]["layers"][2]["config"] == {"name": "sequential_1", "layers": MARIO_REST}
    assert done.done["sequential-list"] == ["sequential", "sequential_1"]


def test_a_wrapped_layer_gets_its_module(tmp_path):
    reference = keras.Sequential([keras.Input((4, 3)),
                                  keras.layers.Bidirectional(keras.layers.GRU(2, reset_after=False, name="gru_4"),
                                                             name="bidirectional_4")])
    wrapped = copy.deepcopy(BIGRU)
    wrapped["config"]["layer"]["config"].update(units=2, recurrent_activation="sigmoid")
    config = _sequential("sequential", [{"class_name": "InputLayer", "config": {
        "batch_input_shape": [None, 4, 3], "dtype": "float32", "name": "in"}}, wrapped])
    x = np.random.default_rng(0).random((2, 4, 3), dtype=np.float32)
    _loads_like(_keras2_file(tmp_path, reference, config), reference, x, [
        "wrapper layer 'bidirectional_4': the wrapped layer's config given the 'module' key Keras 3 needs there "
        "(Keras 2 wrote none)",
        "dropped 'time_major': false from recurrent layer 'gru_4' (Keras 2 wrote it; Keras 3 is batch-major only)"])


def _rewrite_archive(source, target, change):
    import zipfile

    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                change(config)
                data = json.dumps(config).encode()
            elif item.filename == "metadata.json":
                data = json.dumps({"keras_version": "2.15.0", "date_saved": "2025-04-24@12:48:51"}).encode()
            dst.writestr(item, data)
    return target


def test_a_keras_archive_of_tf_keras_2_15_is_read(tmp_path):
    """tf.keras 2.13-2.15 wrote `.keras` archives naming Keras 2's module for the model and
    BatchNormalization axes as lists; Keras 3 refuses both."""
    inputs = keras.Input((6, 4), name="input_1")
    x = keras.layers.Conv1D(5, 3, padding="same", name="conv1d")(inputs)
    outputs = keras.layers.BatchNormalization(name="batch_normalization")(x)
    reference = keras.Model(inputs, outputs, name="model")
    reference.get_layer("batch_normalization").set_weights(
        [np.full(5, v, np.float32) for v in (1.5, 0.2, 0.3, 2.0)])
    reference.save(tmp_path / "k3.keras")

    def as_2_15(config):
        config.update({k: v for k, v in ENGINE_TOP.items() if k != "build_config"})
        bn = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "BatchNormalization")
        bn["config"]["axis"] = copy.deepcopy(ENGINE_BN["config"]["axis"])

    path = _rewrite_archive(tmp_path / "k3.keras", tmp_path / "lstm_mfcc.keras", as_2_15)
    x = np.random.default_rng(0).random((2, 6, 4), dtype=np.float32)
    _loads_like(path, reference, x, [
        "model 'model': Keras 2's module (keras.src.engine, tf_keras.src.engine) read as Keras 3's",
        "BatchNormalization layer 'batch_normalization': axis [n] read as n (Keras 2 wrote a list)"])


def test_a_legacy_h5_batch_norm_axis_is_left_to_keras():
    """In an .h5 (no 'module' keys) Keras 3 converts the list itself: no rewrite, no note."""
    config = _sequential("s", [_bn("bn")])
    fixed, done = legacy.rewrite_config(config)
    assert fixed == config and not done
    fixed, done = legacy.rewrite_config(_sequential("s", [ENGINE_BN]))
    assert fixed["config"]["layers"][0]["config"]["axis"] == 2


def test_an_embedding_input_of_any_length_is_not_filled_from_the_vocabulary():
    """A None input size is filled from the first kernel's input size, except before an Embedding:
    there the first kernel's size is the vocabulary (10000), not the sequence length."""
    config = _sequential("sequential", [EMBEDDING_INPUT, EMBEDDING])
    assert not legacy.needs_fan_in(config)
    fixed, done = legacy.rewrite_config(config, fan_in=10000)
    assert fixed["config"]["layers"][0]["config"]["batch_input_shape"] == [None, None] and not done
    dense_first = _sequential("s", [_with(EMBEDDING_INPUT, batch_input_shape=[None, None]), CHATBOT_DENSE])
    assert legacy.needs_fan_in(dense_first)


# -- the fallback: weights carried from tf_keras ---------------------------------------------------

def _fake_tf_keras(monkeypatch, model, tmp_path, calls):
    """``legacy._read_with_tf_keras`` answering what the tf_keras worker writes for ``model``."""
    arrays, layers = {}, []
    for path, layer in legacy._leaf_layers(model):
        weights = layer.trainable_weights + layer.non_trainable_weights
        arrays.update({f"{path}|{i}": np.asarray(w.numpy()) for i, w in enumerate(weights)})
        layers.append({"path": path, "class": type(layer).__name__,
                       "weights": [[w.name, list(w.shape)] for w in weights]})
    np.savez(tmp_path / "fake_weights.npz", **arrays)

    def read(path, folder, seconds):
        calls.append(path)
        return {"layers": layers, "inputs": [list(model.inputs[0].shape)]}, np.load(tmp_path / "fake_weights.npz")

    monkeypatch.setattr(legacy, "_read_with_tf_keras", read)


def _unreadable_weights(tmp_path, model, version="2.4.0"):
    """A Keras 2 style .h5 of ``model`` whose weights Keras 3's reader refuses (one saved layer more
    than the config builds) while its config builds."""
    path = tmp_path / "unreadable.h5"
    model.save(path)
    with h5py.File(path, "r+") as f:
        f.attrs["keras_version"] = version
        weights = f["model_weights"]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in weights.attrs["layer_names"]]
        weights.attrs["layer_names"] = np.array([n.encode() for n in [*names, "stray"]])
        group = weights.create_group("stray")
        group.attrs["weight_names"] = [b"stray/kernel:0"]
        group.create_dataset("stray/kernel:0", data=np.ones((2, 2), np.float32))
    return path


def _dense_model():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu", name="d1"),
                             keras.layers.Dense(3, name="d2")])


def test_weights_keras_3_cannot_read_are_carried_from_tf_keras(tmp_path, monkeypatch):
    reference = _dense_model()
    path = _unreadable_weights(tmp_path, reference)
    calls = []
    _fake_tf_keras(monkeypatch, reference, tmp_path, calls)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(path)
    notes = [str(w.message) for w in caught if issubclass(w.category, LightCompressWarning)]
    assert calls == [path] and len(notes) == 1
    assert notes[0].startswith(f"{path}: weights carried from tf_keras layer by layer (2 layers) into the model its "
                               f"config builds; Keras 3 could not read them: ")
    assert "Layer count mismatch" in notes[0]
    x = np.random.default_rng(0).random((3, 6), dtype=np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), reference.predict(x, verbose=0))


def test_carried_weights_of_another_shape_are_one_line(tmp_path, monkeypatch):
    from lightcompress.errors import ModelLoadError

    path = _unreadable_weights(tmp_path, _dense_model())
    other = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, name="d1"), keras.layers.Dense(3, name="d2")])
    _fake_tf_keras(monkeypatch, other, tmp_path, [])
    with pytest.raises(ModelLoadError) as err:
        load_model(path)
    message = str(err.value)
    assert "\n" not in message and "Layer count mismatch" in message
    assert message.endswith("carrying its weights from tf_keras did not work either: layer 'd1' holds weights of "
                            "shapes [(6, 5), (5,)] in the file and [(6, 4), (4,)] in Keras 3")


def test_a_file_keras_3_wrote_is_not_carried(tmp_path, monkeypatch):
    from lightcompress.errors import ModelLoadError

    reference = _dense_model()
    path = _unreadable_weights(tmp_path, reference, version="3.15.0")
    calls = []
    _fake_tf_keras(monkeypatch, reference, tmp_path, calls)
    with pytest.raises(ModelLoadError, match="Layer count mismatch"):
        load_model(path)
    assert calls == []


def test_keras_2_hard_sigmoid_is_kept(tmp_path):
    """Keras 2's hard_sigmoid (0.2x + 0.5) is not Keras 3's (x/6 + 0.5): plain Keras 3 loads the
    file and computes something else; lightcompress names Keras 2's, and the model saves and loads."""
    from lightcompress.layers.keras2_activations import keras2_hard_sigmoid

    reference = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4, recurrent_activation=keras2_hard_sigmoid,
                                                                         name="lstm_1"),
                                  keras.layers.Dense(3, activation=keras2_hard_sigmoid, name="dense_1")])
    reference.set_weights([w * 4 for w in reference.get_weights()])  # gates well past the slopes' common range
    lstm = _with(MARIO_LSTM, batch_input_shape=[None, 5, 3], units=4)
    dense = _with(MARIO_REST[0], units=3, activation="hard_sigmoid")
    config = _sequential("sequential", [lstm, dense])
    x = np.random.default_rng(0).random((2, 5, 3), dtype=np.float32)
    model = _loads_like(_keras2_file(tmp_path, reference, config), reference, x, [
        "'hard_sigmoid' of layers 'lstm_1', 'dense_1' read as Keras 2's (clip(0.2x + 0.5), not Keras 3's "
        "clip(x/6 + 0.5))",
        "put an InputLayer before layer 'lstm_1': Keras 2's 'batch_input_shape' on a Sequential's first layer"])
    model.save(tmp_path / "again.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "again.keras").predict(x, verbose=0),
                               reference.predict(x, verbose=0), atol=1e-6)


def test_hard_sigmoid_of_a_keras_3_file_is_keras_3s():
    config = _sequential("s", [_with(MARIO_REST[0], activation="hard_sigmoid")])
    assert legacy.rewrite_config(config)[0] == config
    assert legacy.rewrite_config(config, keras_2=True)[0] != config


# 075-character-language-models-bilstm-model-128 (keras 2.x): a model name TensorFlow's graphs refuse.
BILSTM_CHARS = json.loads("""{"class_name": "Functional", "config": {"name": "BiLSTM_Model_v0.2.0>bilstm_model_128>",
 "layers": [{"class_name": "InputLayer", "config": {"batch_input_shape": [null, 15, 80], "dtype": "float32",
 "sparse": false, "ragged": false, "name": "input_left"}, "name": "input_left", "inbound_nodes": []},
 {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 15, 80], "dtype": "float32", "sparse": false,
 "ragged": false, "name": "input_right"}, "name": "input_right", "inbound_nodes": []},
 {"class_name": "Concatenate", "config": {"name": "concatenate", "trainable": true, "dtype": "float32", "axis": -1},
 "name": "concatenate", "inbound_nodes": [[["input_left", 0, 0, {}], ["input_right", 0, 0, {}]]]},
 {"class_name": "Dense", "config": {"name": "output", "trainable": true, "dtype": "float32", "units": 113,
 "activation": "softmax", "use_bias": true, "kernel_initializer": {"class_name": "GlorotUniform", "config":
 {"seed": null}}, "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": null,
 "bias_regularizer": null, "activity_regularizer": null, "kernel_constraint": null, "bias_constraint": null},
 "name": "output", "inbound_nodes": [[["concatenate", 0, 0, {}]]]}],
 "input_layers": [["input_left", 0, 0], ["input_right", 0, 0]], "output_layers": [["output", 0, 0]]}}""")


def test_a_model_name_tensorflow_refuses_is_replaced(tmp_path):
    """Plain Keras 3 loads the file, then cannot predict: "Node name contains invalid characters"."""
    left, right = keras.Input((3, 4), name="input_left"), keras.Input((3, 4), name="input_right")
    joined = keras.layers.Concatenate(name="concatenate")([left, right])
    reference = keras.Model([left, right], keras.layers.Dense(5, activation="softmax", name="output")(joined))
    config = copy.deepcopy(BILSTM_CHARS)
    for layer in config["config"]["layers"][:2]:
        layer["config"]["batch_input_shape"] = [None, 3, 4]
    config["config"]["layers"][3]["config"]["units"] = 5
    rng = np.random.default_rng(0)
    x = [rng.random((2, 3, 4), dtype=np.float32), rng.random((2, 3, 4), dtype=np.float32)]
    model = _loads_like(_keras2_file(tmp_path, reference, config), reference, x, [
        "model 'BiLSTM_Model_v0.2.0>bilstm_model_128>' renamed 'BiLSTM_Model_v0.2.0_bilstm_model_128_': "
        "TensorFlow's graphs refuse its characters"])
    assert model.name == "BiLSTM_Model_v0.2.0_bilstm_model_128_"


# 114-sequence-variational-autoencod-decoder (keras 2.1.2): a Lambda saved as bytecode of Python 3.6.
OLD_LAMBDA = json.loads("""{"name": "lambda_1", "class_name": "Lambda", "config": {"name": "lambda_1",
 "trainable": true, "function": null, "function_type": "lambda", "output_shape": [2], "output_shape_type": "raw",
 "arguments": {}}, "inbound_nodes": [[["dense_2", 0, 0, {}], ["dense_3", 0, 0, {}]]]}""")
OLD_LAMBDA["config"]["function"] = [
    "4wEAAAAAAAAABAAAAAUAAABDAAAAczwAAAB8AFwCfQF9AnQAagF0AGoCfAGDAWQBGQB0A2QCGQBm\n"
    "AmQDdARkBI0DfQN8AXQAagV8AoMBfAMUABcAUwApBU7pAAAAANoKbGF0ZW50X2RpbecAAAAAAAAA\n"
    "ACkD2gVzaGFwZdoEbWVhbtoGc3RkZGV2KQbaAUvaDXJhbmRvbV9ub3JtYWxyBAAAANoGQ29uZmln\n"
    "2gtlcHNpbG9uX3N0ZNoDZXhwKQTaBGFyZ3PaBnpfbWVhbtoJel9sb2dfdmFy2gdlcHNpbG9uqQBy\n"
    "EAAAAPoPc2VxdWVuY2VfdmFlLnB52ghzYW1wbGluZ2gAAABzCAAAAAABCAEaAQgB\n", None, None]


def test_a_lambda_of_another_python_is_one_line_saying_so(tmp_path):
    from lightcompress.errors import ModelLoadError

    inputs = keras.Input((4,), name="input_1")
    mean, log_var = keras.layers.Dense(2, name="dense_2")(inputs), keras.layers.Dense(2, name="dense_3")(inputs)
    reference = keras.Model(inputs, keras.layers.Concatenate(name="lambda_1")([mean, log_var]), name="model_3")
    config = {"class_name": "Model", "config": {"name": "model_3", "layers": [
        {"name": "input_1", "class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "dtype": "float32",
                                                                   "sparse": False, "name": "input_1"},
         "inbound_nodes": []},
        *({"name": n, "class_name": "Dense", "config": {"name": n, "units": 2},
           "inbound_nodes": [[["input_1", 0, 0, {}]]]} for n in ("dense_2", "dense_3")),
        OLD_LAMBDA], "input_layers": [["input_1", 0, 0]], "output_layers": [["lambda_1", 0, 0]]}}
    path = _keras2_file(tmp_path, reference, config)
    with h5py.File(path, "r+") as f:
        f.attrs["keras_version"] = "2.1.2"
    with pytest.raises(ModelLoadError) as err:
        load_model(path, trust=True)
    message = str(err.value)  # the parenthesis is Python's own marshal error, which may vary by version
    assert message.startswith(f"{path}: layer 'lambda_1' (Lambda) holds Python bytecode written by another Python "
                              f"version, which Python {sys.version_info.major}.{sys.version_info.minor} cannot read (")
    assert message.endswith("); rebuild the Lambda from its source code, or replace it with Keras layers, and save "
                            "the model again.") and "\n" not in message
