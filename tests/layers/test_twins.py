import itertools

import keras
import numpy as np
import pytest

from lightcompress import LightConv2D, LightDense
from lightcompress.errors import LightCompressError, RankError
from lightcompress.layers import conv2d

pytestmark = pytest.mark.backend  # the layers use keras.ops only: checked on JAX too (.ci/run)
ATOL = 2e-5


def _full_rank_dense(use_bias, activation, input_dim=12, units=7):
    dense = keras.layers.Dense(units, use_bias=use_bias, activation=activation,
                               bias_initializer="random_normal")
    dense.build((None, input_dim))
    return dense, LightDense.from_dense(dense, rank=min(input_dim, units))


@pytest.mark.parametrize("use_bias, activation", [(True, None), (False, "relu"), (True, "tanh")])
def test_light_dense_equals_dense_at_full_rank(rng, use_bias, activation):
    dense, light = _full_rank_dense(use_bias, activation)
    x = rng.normal(size=(5, 12)).astype("float32")
    np.testing.assert_allclose(light(x), dense(x), atol=ATOL)
    x3 = rng.normal(size=(2, 3, 12)).astype("float32")  # Dense acts on the last axis
    np.testing.assert_allclose(light(x3), dense(x3), atol=ATOL)


def test_light_dense_params_and_weights():
    dense = keras.layers.Dense(16, name="fc")
    dense.build((None, 40))
    light = LightDense.from_dense(dense, rank=3)
    assert light.count_params() == 3 * (40 + 16) + 16
    assert [w.shape for w in light.weights] == [(40, 3), (3, 16), (16,)]
    assert [w.path.split("/")[-1] for w in light.weights] == ["kernel_a", "kernel_b", "bias"]
    assert light.name == "fc_light"
    nobias = keras.layers.Dense(16, use_bias=False)
    nobias.build((None, 40))
    assert LightDense.from_dense(nobias, 3).count_params() == 3 * 56


CONV_CASES = [
    # kernel, strides, padding, dilation
    *itertools.product([(1, 1), (3, 3), (5, 5), (3, 2)], [(1, 1), (2, 2)], ["same", "valid"], [(1, 1)]),
    *itertools.product([(3, 3), (2, 3)], [(1, 1)], ["same", "valid"], [(2, 2)]),
    ((3, 3), (2, 1), "same", (1, 1)),
]


@pytest.mark.parametrize("mode", ["channel", "spatial"])
@pytest.mark.parametrize("kernel, strides, padding, dilation", CONV_CASES)
def test_light_conv_equals_conv_at_full_rank(rng, mode, kernel, strides, padding, dilation):
    for use_bias in (True, False):
        conv = keras.layers.Conv2D(6, kernel, strides=strides, padding=padding, dilation_rate=dilation,
                                   use_bias=use_bias, activation="relu",
                                   bias_initializer="random_normal")
        conv.build((None, 11, 13, 4))
        rank = min(_matrix_shape(conv, mode))
        light = LightConv2D.from_conv2d(conv, rank, factorization=mode)
        x = rng.normal(size=(2, 11, 13, 4)).astype("float32")
        np.testing.assert_allclose(light(x), conv(x), atol=1e-4)
        assert light.compute_output_shape((None, 11, 13, 4)) == conv.compute_output_shape((None, 11, 13, 4))


def _matrix_shape(conv, mode):
    kh, kw, c, f = conv.kernel.shape
    return (kh * kw * c, f) if mode == "channel" else (kh * c, kw * f)


@pytest.mark.parametrize("mode", ["channel", "spatial"])
def test_light_conv_low_rank_error_matches_svd(rng, mode):
    from lightcompress import linalg as svd
    from lightcompress.layers.conv2d import conv_kernel_to_matrix
    conv = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)
    conv.build((None, 9, 9, 5))
    kernel = keras.ops.convert_to_numpy(conv.kernel)
    light = LightConv2D.from_conv2d(conv, 2, factorization=mode)
    # The composed kernel is the rank-2 truncation: measure it through the layer outputs on
    # unit impulses, which read the kernel out exactly.
    s = svd.singular_values(conv_kernel_to_matrix(kernel, mode))
    expected = svd.reconstruction_error(s, 2) * np.linalg.norm(kernel)
    x = np.zeros((5, 9, 9, 5), "float32")
    for c in range(5):
        x[c, 4, 4, c] = 1.0
    diff = keras.ops.convert_to_numpy(light(x) - conv(x))  # each impulse reads the flipped kernel
    assert np.linalg.norm(diff) == pytest.approx(expected, rel=1e-4)


def test_light_conv_params_follow_formula():
    conv = keras.layers.Conv2D(32, (3, 3))
    conv.build((None, 28, 28, 16))
    channel = LightConv2D.from_conv2d(conv, 5, "channel")
    spatial = LightConv2D.from_conv2d(conv, 5, "spatial")
    assert channel.count_params() == 5 * (3 * 3 * 16 + 32) + 32
    assert spatial.count_params() == 5 * (3 * 16 + 3 * 32) + 32
    paper = LightConv2D(32, 3, rank=5, factorization="paper")
    paper.build((None, 28, 28, 16))
    assert paper.count_params() == 3 * 3 * 16 * 5 + 5 + 3 * 3 * 5 * 32 + 32


def test_twin_copies_settings():
    conv = keras.layers.Conv2D(4, (3, 2), strides=2, padding="same", activation="elu", name="c1",
                               kernel_regularizer="l2")
    conv.build((None, 8, 8, 3))
    light = LightConv2D.from_conv2d(conv, 2, "spatial")
    config = light.get_config()
    assert (config["strides"], config["padding"], config["kernel_size"]) == ((2, 2), "same", (3, 2))
    assert config["activation"] == "elu" and light.name == "c1_light"
    assert config["kernel_regularizer"] is not None


def _round_trip_model():
    inputs = keras.Input((10, 10, 3))
    x = LightConv2D(8, 3, rank=2, padding="same", activation="relu", name="c")(inputs)
    x = LightConv2D(8, 3, rank=2, factorization="spatial", strides=2, name="s")(x)
    x = LightConv2D(4, 3, rank=2, factorization="paper", name="p")(x)
    x = keras.layers.Flatten()(x)
    outputs = LightDense(5, rank=3, activation="softmax", name="d")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_save_and_reload_without_custom_objects(tmp_path, rng, suffix):
    model = _round_trip_model()
    x = rng.normal(size=(3, 10, 10, 3)).astype("float32")
    path = tmp_path / f"m{suffix}"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]
    assert loaded.get_layer("s").get_config() == model.get_layer("s").get_config()


def test_lightlayers_train_and_loss_falls(rng):
    model = _round_trip_model()
    x = rng.normal(size=(64, 10, 10, 3)).astype("float32")
    y = (x[:, :, :, 0].mean(axis=(1, 2)) > 0).astype("int32") + 2 * (x[:, 0, 0, 1] > 0)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: LightDense(0, 2), r"units=0 is invalid"),
        (lambda: LightDense(4, -1), r"rank=-1 is invalid"),
        (lambda: LightDense(4, 2.0), r"rank=2.0 is invalid"),
        (lambda: LightConv2D(4, 3, rank=2, factorization="cp"), r"factorization='cp' is unknown"),
        (lambda: LightConv2D(4, 3, rank=2, input_rank=2), r"input_rank=2 only applies to factorization='tucker'"),
        (lambda: LightConv2D(4, 0, rank=2), r"kernel_size=0 is invalid"),
        (lambda: LightConv2D(4, (3, 3, 3), rank=2), r"kernel_size=\(3, 3, 3\) is invalid"),
        (lambda: LightConv2D(4, 3, rank=2, padding="causal"), r"padding='causal' is invalid"),
        (lambda: LightConv2D(4, 3, rank=2, strides=2, dilation_rate=2), r"strides=\(2, 2\) with dilation_rate"),
    ],
)
def test_constructor_errors_name_the_value(make, message):
    with pytest.raises(LightCompressError, match=message):
        make()


def test_rank_above_limit_names_layer_shape_and_range():
    dense = keras.layers.Dense(6, name="fc")
    dense.build((None, 4))
    with pytest.raises(RankError, match=r"layer 'fc': rank=5 is out of range for a matrix of shape \(4, 6\); use a whole number from 1 to 4"):
        LightDense.from_dense(dense, 5)
    with pytest.raises(RankError, match=r"layer 'x': rank=9 is out of range .*\(27, 8\).* 1 to 8"):
        LightConv2D(8, 3, rank=9, name="x").build((None, 5, 5, 3))
    conv = keras.layers.Conv2D(8, 3)
    conv.build((None, 5, 5, 3))
    with pytest.raises(LightCompressError, match=r"cannot be initialised from a trained Conv2D"):
        LightConv2D.from_conv2d(conv, 2, factorization="paper")


def test_unbuilt_and_grouped_layers_are_refused():
    with pytest.raises(LightCompressError, match=r"layer 'free' is not built"):
        LightDense.from_dense(keras.layers.Dense(3, name="free"), 1)
    grouped = keras.layers.Conv2D(4, 3, groups=2, name="g")
    grouped.build((None, 6, 6, 4))
    with pytest.raises(LightCompressError, match=r"layer 'g' is a grouped Conv2D \(groups=2\)"):
        LightConv2D.from_conv2d(grouped, 1)


# -- the Conv2D kernel as a matrix (layers/conv2d.py) -----------------------------------------

@pytest.mark.parametrize("mode", ["channel", "spatial"])
def test_conv_reshape_round_trips_at_full_rank(mode):
    kernel = np.random.default_rng(2).normal(size=(3, 5, 4, 6)).astype(np.float32)
    n, m = conv2d.conv_matrix_shape(kernel.shape, mode)
    first, second = conv2d.CONV2D.factors(kernel, min(n, m), mode)
    assert (first.shape, second.shape) == conv2d.conv_factor_shapes(kernel.shape, min(n, m), mode)
    # Compose the two kernels back into one: sum over the rank axis.
    if mode == "channel":
        rebuilt = np.einsum("hwcr,rf->hwcf", first, second[0, 0])
    else:
        rebuilt = np.einsum("hcr,wrf->hwcf", first[:, 0], second[0])
    np.testing.assert_allclose(rebuilt, kernel, atol=1e-5)


def test_spatial_matrix_layout():
    kernel = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    matrix = conv2d.conv_kernel_to_matrix(kernel, "spatial")
    assert matrix.shape == (8, 15)
    assert matrix[1 * 4 + 2, 2 * 5 + 3] == kernel[1, 2, 2, 3]


def test_bad_conv_modes_and_kernels():
    with pytest.raises(LightCompressError, match=r"conv mode 'depth' is unknown"):
        conv2d.conv_matrix_shape((3, 3, 1, 1), "depth")
    with pytest.raises(LightCompressError, match=r"Conv2D kernel .* got shape \(3, 3\)"):
        conv2d.conv_kernel_to_matrix(np.ones((3, 3)), "channel")


@pytest.mark.parametrize("mode", ["channel", "spatial"])
def test_truncated_kernel_matches_the_factors(mode):
    kernel = np.random.default_rng(3).normal(size=(3, 2, 4, 5)).astype(np.float32)
    first, second = conv2d.CONV2D.factors(kernel, 2, mode)
    if mode == "channel":
        expected = np.einsum("hwcr,rf->hwcf", first, second[0, 0])
    else:
        expected = np.einsum("hcr,wrf->hwcf", first[:, 0], second[0])
    got = conv2d.CONV2D.truncated_kernel(kernel, 2, mode)
    assert got.shape == kernel.shape and got.dtype == kernel.dtype
    np.testing.assert_allclose(got, expected, atol=1e-5)
    n, m = conv2d.conv_matrix_shape(kernel.shape, mode)
    np.testing.assert_allclose(conv2d.CONV2D.truncated_kernel(kernel, min(n, m), mode), kernel, atol=1e-5)
