"""LightReversibleEmbedding: the twin of Keras's and keras-hub's ReversibleEmbedding (the token
embedding of every keras-hub language model), forward and reverse, tied and untied; a planted
low-rank table found by energy; keras-hub's class registered only once keras-hub is imported."""

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import lightcompress
from lightcompress.layers import LightReversibleEmbedding, registry
from lightcompress.layers.reversible_embedding import REVERSIBLE_EMBEDDING, table_matrix

pytestmark = pytest.mark.skipif(not hasattr(keras.layers, "ReversibleEmbedding"),
                                reason="this Keras has no keras.layers.ReversibleEmbedding")
ROOT = Path(__file__).resolve().parents[2]
VOCAB, DIM = 40, 8


def _hub_class():
    keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is not installed (pip install '.[hub]')")
    return keras_hub.layers.ReversibleEmbedding


def _layer(cls, tie_weights, rng, **kwargs):
    """A built ReversibleEmbedding with a random, full-rank table (and reverse table when untied)."""
    layer = cls(VOCAB, DIM, tie_weights=tie_weights, **kwargs)
    layer.build()
    layer.embeddings.assign(rng.normal(size=(VOCAB, DIM)).astype("float32"))
    if not tie_weights:
        layer.reverse_embeddings.assign(rng.normal(size=(DIM, VOCAB)).astype("float32"))
    return layer


@pytest.mark.parametrize("source", ["keras", "keras_hub"])
@pytest.mark.parametrize("tie_weights, soft_cap", [(True, None), (False, None), (True, 4.0), (False, 4.0)])
def test_full_rank_twin_equals_the_reversible_embedding_both_ways(source, tie_weights, soft_cap, rng):
    cls = _hub_class() if source == "keras_hub" else keras.layers.ReversibleEmbedding
    layer = _layer(cls, tie_weights, rng, logit_soft_cap=soft_cap)
    entry = registry.entry_for(layer)
    assert entry is REVERSIBLE_EMBEDDING
    full = DIM if tie_weights else 2 * DIM  # untied: one matrix [E | Rᵀ] of (vocab, 2·dim)
    twin = entry.make_twin(layer, full, "table")
    assert type(twin) is LightReversibleEmbedding and twin.logit_soft_cap == soft_cap
    assert [tuple(w.shape) for w in twin.weights] == [(VOCAB, full), (full, DIM)] + ([] if tie_weights else [(full, DIM)])
    ids = rng.integers(0, VOCAB, (3, 6))
    hidden = rng.normal(size=(3, 6, DIM)).astype("float32")
    np.testing.assert_allclose(twin(ids), layer(ids), atol=1e-5)
    np.testing.assert_allclose(twin(hidden, reverse=True), layer(hidden, reverse=True), atol=1e-5)
    again = LightReversibleEmbedding.from_config(twin.get_config())
    assert again.get_config() == twin.get_config()


def test_a_planted_low_rank_table_is_found_at_energy_and_saved(tmp_path, rng):
    """ids -> embedding -> reverse (untied): [E | Rᵀ] of rank 3 is converted at rank 3, exact, smaller."""
    layer = keras.layers.ReversibleEmbedding(VOCAB, DIM, tie_weights=False, name="tokens")
    inputs = keras.Input((6,), dtype="int32")
    model = keras.Model(inputs, layer(layer(inputs), reverse=True))
    planted = rng.normal(size=(VOCAB, 3)) @ rng.normal(size=(3, 2 * DIM))
    REVERSIBLE_EMBEDDING.assign_kernel(layer, planted.astype("float32"))
    np.testing.assert_allclose(table_matrix(layer), planted, rtol=1e-6, atol=1e-6)
    x = rng.integers(0, VOCAB, (4, 6)).astype("int32")
    result = lightcompress.convert(model, energy=0.99999, min_params=0, x=x)
    twin = result.model.get_layer("tokens_light")
    assert type(twin) is LightReversibleEmbedding and twin.rank == 3
    assert result.params_after == 3 * (VOCAB + 2 * DIM) < result.params_before == 2 * VOCAB * DIM
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(result.model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)
    result.model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)


def test_macs_count_each_direction():
    layer = keras.layers.ReversibleEmbedding(VOCAB, DIM)
    layer.build()
    assert registry.macs(layer, (None, 6), (None, 6, DIM)) == 0  # a lookup
    assert registry.macs(layer, (None, 6, DIM), (None, 6, VOCAB)) == 6 * DIM * VOCAB
    twin = REVERSIBLE_EMBEDDING.make_twin(layer, 2, "table")
    assert registry.macs(twin, (None, 6), (None, 6, DIM)) == 6 * 2 * DIM
    assert registry.macs(twin, (None, 6, DIM), (None, 6, VOCAB)) == 6 * 2 * (DIM + VOCAB)


@pytest.mark.slow  # 10-25 s on 2 cores; the default suite stays within 5 minutes (.ci/run runs -m slow)
def test_keras_hub_is_registered_once_imported_and_never_imported_by_lightcompress():
    _hub_class()
    code = ("import sys, keras, lightcompress.layers\n"
            "from lightcompress.layers import registry\n"
            "before = 'keras_hub' in sys.modules\n"
            "import keras_hub\n"
            "layer = keras_hub.layers.ReversibleEmbedding(10, 4)\n"
            "print(before, registry.entry_for(layer).name, registry.macs(layer, (None, 3, 4), (None, 3, 10)))\n")
    env = {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-3:] == ["False", "ReversibleEmbedding", str(3 * 4 * 10)]
