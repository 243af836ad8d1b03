"""Subclassed and keras-hub models: planned layers swapped in place, the class kept, the input model
unchanged, saved and reloaded in a fresh process (io/substitutions, factorization/inplace)."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import lightcompress
from lightcompress import LightConv2D, LightDense
from lightcompress.factorization.apply import apply_plan
from lightcompress.factorization.candidates import candidates, iter_layers
from lightcompress.io import models as model_io, substitutions
from lightcompress.planning import make_plan

from ..models import policy
from ..subclassed_models import Net, bert_classifier, images, net, token_inputs

ROOT = Path(__file__).resolve().parents[2]


def _full_rank(model, plan):
    """``plan`` with every converted layer at its largest rank (the twin computes the original)."""
    found = {c.name: c for c in candidates(model)}
    plan.layers = [dataclasses.replace(p, rank=found[p.name].max_rank(p.mode)) if p.converted else p
                   for p in plan.layers]
    return plan


def _predict(model, x):
    return np.asarray(model.predict(x, verbose=0))


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _fresh_process(script, **paths):
    """Run ``script`` in a new Python (the worktree importable); its last stdout line, as JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    code = "import json, sys, numpy as np\n" + textwrap.dedent(script).format(**{k: repr(str(v)) for k, v in paths.items()})
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- a user's keras.Model subclass -----------------------------------------------------------

def test_subclass_layers_are_named_by_attribute():
    model = net()
    assert [name for name, _ in iter_layers(model)] == ["conv", "pool", "fc", "block/inner", "heads/0", "heads/1"]
    assert [c.name for c in candidates(model)] == ["conv", "fc", "block/inner", "heads/0", "heads/1"]


def test_subclass_full_rank_reproduces_the_original_and_leaves_it_unchanged():
    model, x = net(), images()
    before, expected = _weights(model), _predict(model, x)
    plan = _full_rank(model, make_plan(model, *policy(rank=4, min_params=0)))
    assert len(plan.converted) == 5
    light = apply_plan(model, plan)
    assert type(light) is Net and light is not model
    assert {type(layer) for _, layer in iter_layers(light)} >= {LightDense, LightConv2D}
    assert isinstance(light.block.inner, LightDense) and isinstance(light.heads[1], LightDense)
    np.testing.assert_allclose(_predict(light, x), expected, atol=1e-5)
    # The source model: same weights, same outputs, its own layers.
    for a, b in zip(before, _weights(model)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(_predict(model, x), expected)
    assert type(model.fc) is keras.layers.Dense and not set(map(id, light.weights)) & set(map(id, model.weights))


@pytest.mark.slow  # convert, save and reload in a fresh process (~9 s); .ci/run runs -m slow
def test_subclass_energy_on_planted_low_rank_kernels_saves_params(tmp_path):
    model, x = net(plant_rank=2), images()
    expected = _predict(model, x)
    result = lightcompress.convert(model, energy=0.99999, min_params=0, x=x)
    light = result.model
    assert type(light) is Net
    assert light.count_params() == result.params_after < result.params_before == model.count_params()
    assert all(getattr(layer, "rank", None) == 2 for name, layer in iter_layers(light) if name != "pool")
    np.testing.assert_allclose(_predict(light, x), expected, atol=1e-4)
    # The old layers are untracked: their weights are gone from the model.
    assert len(light.weights) == len(model.weights) + 5  # kernel -> kernel_a, kernel_b in 5 layers

    path = model_io.save_model(light, tmp_path / "net.light.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", _predict(light, x))
    got = _fresh_process("""
        import lightcompress
        from lightcompress.errors import ModelLoadError
        try:  # the user's class is not imported yet: one line naming it
            lightcompress.load_model({path})
            unknown = None
        except ModelLoadError as err:
            unknown = str(err)
        import keras
        import tests.subclassed_models
        x, y = np.load({x}), np.load({y})
        ours = lightcompress.load_model({path})
        plain = keras.models.load_model({path})
        print(json.dumps({{"unknown": unknown, "class": type(ours).__name__, "plain_class": type(plain).__name__,
                           "params": int(ours.count_params()),
                           "ours": float(np.abs(np.asarray(ours.predict(x, verbose=0)) - y).max()),
                           "plain": float(np.abs(np.asarray(plain.predict(x, verbose=0)) - y).max())}}))
    """, path=path, x=tmp_path / "x.npy", y=tmp_path / "y.npy")
    assert got["unknown"] is not None and "'Net'" in got["unknown"] and "\n" not in got["unknown"]
    assert got["class"] == got["plain_class"] == "Net"
    assert got["params"] == result.params_after
    assert got["ours"] < 1e-6 and got["plain"] < 1e-6


def test_substitute_untracks_and_copy_keeps_the_twins():
    model = net()
    copy = substitutions.copy_model(model)
    assert type(copy) is Net and copy.count_params() == model.count_params()
    old = copy.block.inner
    twin = LightDense.from_dense(old, 4)
    params = copy.count_params()
    assert substitutions.substitute(copy, {id(old): twin}) >= 2  # the attribute and the tracked sublayer
    assert copy.block.inner is twin and twin.name == old.name
    assert copy.count_params() == params - 32 * 32 + 4 * 64
    recorded = substitutions.records(copy)
    assert [r["path"] for r in recorded] == ["block/inner"]
    again = substitutions.copy_model(copy)
    assert isinstance(again.block.inner, LightDense)
    x = images(4)
    np.testing.assert_allclose(_predict(again, x), _predict(copy, x), atol=1e-6)


def test_h5_output_of_a_converted_subclass_is_refused_in_one_line(tmp_path):
    model = net(plant_rank=2)
    light = lightcompress.convert(model, energy=0.99999, min_params=0, x=images(4)).model
    with pytest.raises(lightcompress.errors.OutputPathError, match=r"\.keras only"):
        model_io.save_model(light, tmp_path / "net.h5")
    assert not list(tmp_path.iterdir())


def test_cli_converts_a_saved_subclass(tmp_path):
    from typer.testing import CliRunner

    from lightcompress.cli import app

    source = model_io.save_model(net(), tmp_path / "net.keras")
    result = CliRunner().invoke(app, ["convert", str(source), "--rank", "4"])
    assert result.exit_code == 0, result.output
    written = tmp_path / "net.light.keras"
    assert written.exists()
    light = lightcompress.load_model(written)
    assert type(light) is Net and light.count_params() < net().count_params()
    assert any(isinstance(layer, (LightDense, LightConv2D)) for _, layer in iter_layers(light))
    assert _predict(light, images(4)).shape == (4, 4)


# -- keras-hub --------------------------------------------------------------------------------

@pytest.mark.slow  # 10-25 s on 2 cores; the default suite stays within 5 minutes (.ci/run runs -m slow)
def test_keras_hub_bert_classifier_converts_in_place_and_reloads(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    model, x = bert_classifier(), token_inputs()
    before, expected = _weights(model), _predict(model, x)
    names = [c.name for c in candidates(model)]
    for part in ("query", "key", "value", "attention_output"):
        assert f"bert_backbone/transformer_layer_0/_self_attention_layer/{part}" in names
    for ffn in ("_feedforward_intermediate_dense", "_feedforward_output_dense"):
        assert f"bert_backbone/transformer_layer_1/{ffn}" in names
    assert "bert_backbone/pooled_dense" in names and "logits" in names  # graph layers, by name

    plan = _full_rank(model, make_plan(model, *policy(rank=4, min_params=0)))
    light = apply_plan(model, plan)
    assert type(light) is keras_hub.models.BertTextClassifier
    layers = dict(iter_layers(light))
    assert type(layers["bert_backbone/transformer_layer_0/_self_attention_layer"]).__name__ == "LightMultiHeadAttention"
    assert isinstance(layers["bert_backbone/transformer_layer_1/_feedforward_output_dense"], LightDense)
    assert isinstance(light.output_dense, LightDense) and isinstance(light.backbone.pooled_dense, LightDense)
    y = _predict(light, x)
    np.testing.assert_allclose(y, expected, atol=1e-5)
    for a, b in zip(before, _weights(model)):
        np.testing.assert_array_equal(a, b)

    path = model_io.save_model(light, tmp_path / "bert.light.keras")
    for key, value in x.items():
        np.save(tmp_path / f"{key}.npy", value)
    np.save(tmp_path / "y.npy", y)
    got = _fresh_process("""
        import lightcompress
        x = {{k: np.load(f"{folder}/{{k}}.npy".replace("'", "")) for k in ("token_ids", "segment_ids", "padding_mask")}}
        model = lightcompress.load_model({path})
        print(json.dumps({{"class": type(model).__name__, "params": int(model.count_params()),
                           "diff": float(np.abs(np.asarray(model.predict(x, verbose=0)) - np.load({y})).max())}}))
    """, path=path, folder=tmp_path, y=tmp_path / "y.npy")
    assert got["class"] == "BertTextClassifier" and got["params"] == light.count_params()
    assert got["diff"] < 1e-6


def test_keras_hub_low_rank_conversion_shrinks_the_model():
    pytest.importorskip("keras_hub")
    model = bert_classifier()
    result = lightcompress.convert(model, rank=4, min_params=0, x=token_inputs())
    assert type(result.model).__name__ == "BertTextClassifier"
    assert result.model.count_params() == result.params_after < result.params_before


# -- a keras-hub causal LM: its token embedding factorised both ways, generate still runs --------

def _gpt2_causal_lm():
    """A tiny GPT-2 from a config (no download), no preprocessor, greedy sampling. The token table
    is drawn at unit scale: logits far apart, so a greedy pick is no near-tie that 1e-7 could flip."""
    keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is not installed (pip install '.[hub]')")
    backbone = keras_hub.models.GPT2Backbone(vocabulary_size=96, num_layers=2, num_heads=2, hidden_dim=32,
                                             intermediate_dim=64, max_sequence_length=32)
    table = backbone.token_embedding.embeddings
    table.assign(np.random.default_rng(0).normal(0, 1, tuple(table.shape)).astype("float32"))
    model = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    model.compile(sampler="greedy")
    return model


def _prompts(n=2, length=16, prompt=5, seed=0):
    """What ``generate`` takes without a preprocessor: token ids padded to the length generated to,
    and a padding mask over the prompt."""
    ids = np.random.default_rng(seed).integers(1, 96, (n, length)).astype("int32")
    mask = np.zeros((n, length), bool)
    mask[:, :prompt] = True
    return {"token_ids": np.where(mask, ids, 0).astype("int32"), "padding_mask": mask}


def _generated(model, prompts):
    return np.asarray(model.generate(prompts, stop_token_ids=None)["token_ids"])


def test_keras_hub_causal_lm_at_full_rank_generates_the_same_tokens():
    from lightcompress import LightReversibleEmbedding

    model, prompts = _gpt2_causal_lm(), _prompts()
    x = {"token_ids": prompts["token_ids"], "padding_mask": np.ones_like(prompts["padding_mask"])}
    names = [c.name for c in candidates(model)]
    assert names[0] == "gpt2_backbone/token_embedding"
    plan = _full_rank(model, make_plan(model, *policy(rank=4, min_params=0)))
    assert "gpt2_backbone/token_embedding" in [p.name for p in plan.converted]
    light = apply_plan(model, plan)
    assert type(light) is type(model)
    twin, original = light.backbone.token_embedding, model.backbone.token_embedding
    assert type(twin) is LightReversibleEmbedding and twin.rank == 32
    hidden = np.asarray(model.backbone(x))
    np.testing.assert_allclose(np.asarray(twin(hidden, reverse=True)), np.asarray(original(hidden, reverse=True)),
                               atol=1e-5)
    np.testing.assert_allclose(_predict(light, x), _predict(model, x), atol=1e-4)
    light.compile(sampler="greedy")  # a rebuilt keras-hub task is compiled with its defaults (top_k)
    expected = _generated(model, prompts)
    np.testing.assert_array_equal(_generated(light, prompts), expected)
    np.testing.assert_array_equal(expected[:, :5], prompts["token_ids"][:, :5])  # the prompt, then new tokens


@pytest.mark.slow  # ~15 s: a fresh Python; the full-rank generate test below stays in the default suite
def test_keras_hub_causal_lm_low_rank_generates_and_reloads_in_a_fresh_process(tmp_path):
    model, prompts = _gpt2_causal_lm(), _prompts()
    result = lightcompress.convert(model, rank=4, min_params=0, x=prompts)
    light = result.model
    assert type(light) is type(model) and result.params_after < result.params_before
    twin = light.backbone.token_embedding
    assert type(twin).__name__ == "LightReversibleEmbedding" and twin.rank == 4
    assert [tuple(w.shape) for w in twin.weights] == [(96, 4), (4, 32)]  # never the (96, 32) table
    light.compile(sampler="greedy")
    tokens = _generated(light, prompts)
    assert tokens.shape == (2, 16)
    np.testing.assert_array_equal(tokens[:, :5], prompts["token_ids"][:, :5])

    path = model_io.save_model(light, tmp_path / "gpt2.light.keras")
    for key, value in prompts.items():
        np.save(tmp_path / f"{key}.npy", value)
    np.save(tmp_path / "y.npy", _predict(light, prompts))
    got = _fresh_process("""
        import lightcompress
        x = {{k: np.load(f"{folder}/{{k}}.npy".replace("'", "")) for k in ("token_ids", "padding_mask")}}
        model = lightcompress.load_model({path})
        print(json.dumps({{"class": type(model).__name__, "params": int(model.count_params()),
                           "embedding": type(model.backbone.token_embedding).__name__,
                           "diff": float(np.abs(np.asarray(model.predict(x, verbose=0)) - np.load({y})).max())}}))
    """, path=path, folder=tmp_path, y=tmp_path / "y.npy")
    assert (got["class"], got["params"], got["embedding"]) == ("GPT2CausalLM", light.count_params(),
                                                                "LightReversibleEmbedding")
    assert got["diff"] < 1e-6


def test_subclass_layers_are_calibrated_on_what_their_call_receives():
    """Data-aware factors need each layer's inputs; a subclassed model has no graph, so they are
    recorded by wrapping the layers' calls. Reference: the moments computed by running the
    layers by hand, as ``Net.call`` does."""
    from lightcompress.factorization.statistics import collect

    model = net()
    x = images(24, seed=3)
    before = _predict(model, x)
    stats = collect(model, x, ["conv", "fc", "block/inner", "heads/0"], batch_size=10)
    assert not stats.skipped and set(stats.layers) == {"conv", "fc", "block/inner", "heads/0"}
    fc_in = np.asarray(model.pool(model.conv(x)))
    inner_in = np.asarray(model.fc(fc_in))
    for name, rows in (("fc", fc_in), ("block/inner", inner_in)):
        np.testing.assert_allclose(stats.layers[name].cov, rows.T @ rows / len(rows), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(stats.layers[name].mean, rows.mean(0), rtol=1e-4, atol=1e-6)
    assert stats.layers["conv"].rows == 24 * 6 * 6  # one im2col row per output position of the 3x3 conv
    assert "call" not in vars(model.fc)  # the hooks are gone
    np.testing.assert_array_equal(_predict(model, x), before)


def test_fine_tuning_heading_names_every_twin_of_a_subclass_by_its_path():
    """The line before the first epoch lists the LightLayers being trained, at every depth of a
    subclassed model (attribute paths), not only its top-level layers."""
    from lightcompress.cli.progress import RichProgress

    model = net()
    light = apply_plan(model, make_plan(model, *policy(rank=2, min_params=0)))
    progress = RichProgress()
    progress.set_model(light)
    progress.epochs = 1
    heading = progress.heading()
    for path in ("conv", "fc", "block/inner", "heads/0", "heads/1"):
        assert f"{path} r" in heading, heading


def test_subclass_layers_are_counted_and_profiled_like_graph_layers(tmp_path):
    """MACs and the per-layer latency profile need each layer's input and output shapes; in a
    subclassed model they come from one recorded call. Reference: the counts by hand (a 3x3 conv
    on 8x8x3 gives 6x6x8 outputs of 27 MACs each; Dense n->m: n*m)."""
    from lightcompress.deploy import latency
    from lightcompress.deploy.timing import Runtime
    from lightcompress.factorization.candidates import layer_stats, macs_per_rank
    from lightcompress.planning import LayerFilter

    model = net()
    expected = {"conv": 6 * 6 * 27 * 8, "fc": 8 * 32, "block/inner": 32 * 32, "heads/0": 32 * 4, "heads/1": 32 * 4}
    assert {r.name: r.macs for r in layer_stats(model) if r.macs is not None} == expected
    assert {name: f(None, None) for name, f in macs_per_rank(model).items()} == expected
    assert macs_per_rank(model)["fc"]("dense", 2) == 8 * 2 + 2 * 32
    profile = latency.profile(model, LayerFilter(min_params=0, conv_mode="channel", include=("block/inner",)),
                              Runtime("keras"), repeats=3, warmup=1, cache_dir=tmp_path)
    inner = profile.layer("block/inner")
    assert inner is not None and inner.options[0].rank is None and all(o.ms > 0 for o in inner.options)


@pytest.mark.parametrize("sample", ["fmnist_subclassed_cnn.keras", "fmnist_hub_vit.keras"])
def test_trained_samples_at_full_rank_predict_as_the_originals_on_real_images(sample):
    """The two shipped models that are no graph (a keras.Model subclass loaded with its class file,
    a keras-hub ViTImageClassifier), converted at full rank: the same predictions as the original
    on real Fashion-MNIST test images."""
    from lightcompress.data import sets

    if not sets.DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip("needs Fashion-MNIST offline (apt-get install dataset-fashion-mnist)")
    if sample == "fmnist_hub_vit.keras":
        pytest.importorskip("keras_hub")
    model = lightcompress.load_model(ROOT / "sample_models" / sample,
                                     custom_objects=str(ROOT / "sample_models" / "fmnist_subclassed.py"))
    x = sets.prepare(sets.load_dataset("fashion_mnist"), model).arrays("test")[0][:256]
    plan = _full_rank(model, make_plan(model, *policy(rank=4, min_params=0)))
    light = apply_plan(model, plan)
    assert len(plan.converted) >= 2 and any(isinstance(layer, (LightDense, LightConv2D))
                                            for _, layer in iter_layers(light))
    expected = _predict(model, x)
    got = _predict(light, x)
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert (got.argmax(1) == expected.argmax(1)).mean() == 1.0


def test_attention_projections_are_profiled(tmp_path):
    """A MultiHeadAttention's query/key/value/output projections are called inside its call(), in
    no graph: their calls are recorded, so the latency guard times them like any layer. (EinsumDense
    has no calibration view: its factors stay plain SVD, and the statistics say so rather than
    leaving it out; a MACs budget keeps a composite's parts as they are, planning/budget.py.)"""
    from lightcompress.deploy import latency
    from lightcompress.deploy.timing import Runtime
    from lightcompress.factorization.statistics import collect
    from lightcompress.planning import LayerFilter

    inputs = keras.Input((5, 8))
    outputs = keras.layers.MultiHeadAttention(2, 4, name="mha")(inputs, inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).random((12, 5, 8), dtype=np.float32)
    stats = collect(model, x, batch_size=5)
    assert stats.skipped["mha/query"] == "layer type has no calibration view (input_matrix)"
    profile = latency.profile(model, LayerFilter(min_params=0, conv_mode="channel", include=("mha/query",)),
                              Runtime("keras"), repeats=3, warmup=1, cache_dir=tmp_path)
    query = profile.layer("mha/query")
    assert query is not None and query.options[0].rank is None and len(query.options) > 1


@pytest.mark.slow  # ~17 s: two fresh processes; kept out of the quick suite (.ci/run runs -m slow)
@pytest.mark.parametrize("order", ["import keras, lightcompress", "import lightcompress, keras"])
def test_plain_keras_load_of_a_converted_subclass_needs_only_import_lightcompress(tmp_path, order):
    """The README's promise: with the user's classes importable, ``import lightcompress`` (either
    order with keras) is all a plain ``keras.models.load_model`` needs, the wrapper a converted
    subclass is saved in included (it failed with "Could not locate class 'SubstitutedModel'")."""
    model = net(plant_rank=2)
    light = apply_plan(model, make_plan(model, *policy(rank=2, min_params=0)))
    path = tmp_path / "light.keras"
    model_io.save_model(light, path)
    x = images(4, seed=5)
    np.save(tmp_path / "x.npy", x)
    out = _fresh_process(f"""
        {order}
        import tests.subclassed_models  # the user's classes
        m = keras.models.load_model({{path}})
        y = np.asarray(m.predict(np.load({{x}}), verbose=0))
        print(json.dumps({{{{"cls": type(m).__name__, "y": y.tolist()}}}}))
    """, path=path, x=tmp_path / "x.npy")
    assert out["cls"] == "Net"
    np.testing.assert_allclose(np.array(out["y"]), _predict(light, x), atol=1e-5)
