"""The shape of the package: one registry of layer types drives everything, no import cycles,
no command-line flags outside cli/, no side effects on import, private Keras in one module."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from lightcompress.factorization import candidates as analyze
from lightcompress import _keras_private as keras_private
from lightcompress.layers import registry
from lightcompress.layers.conv1d import CONV1D
from lightcompress.layers.conv2d import CONV2D
from lightcompress.layers.conv2d_transpose import CONV2D_TRANSPOSE
from lightcompress.layers.dense import DENSE
from lightcompress.layers.einsum_dense import EINSUM_DENSE
from lightcompress.layers.embedding import EMBEDDING
from lightcompress.layers.separable_conv2d import SEPARABLE_CONV2D
from lightcompress.factorization.apply import apply_plan
from lightcompress.planning import FixedRank, LayerFilter, make_plan

PACKAGE = Path(__file__).resolve().parents[1] / "lightcompress"


# -- the registry, parameterised over its entries ----------------------------------------------

def _model_with(entry, mode=None):
    """A tiny model holding one layer of ``entry``'s type named "target" (its module's ``example``),
    with a random full-rank kernel, and its input shape."""
    if entry.example is None:  # an entry added later must give its own example
        pytest.fail(f"registry entry {entry.name} has no example(); give its module one")
    return entry.example()


def _filter(mode):
    return LayerFilter(min_params=0, conv_mode=mode if mode in ("channel", "spatial", "tucker") else "channel")


def _entries():
    """(entry, mode) for every mode of every registered entry: what the tests below run over."""
    return [(entry, mode) for entry in registry.REGISTRY.values() for mode in entry.modes]


ENTRIES = _entries()


@pytest.mark.parametrize("entry,mode", ENTRIES, ids=[f"{e.name}-{m}" for e, m in ENTRIES])
def test_full_rank_twin_equals_the_original(entry, mode, rng):
    model, shape = _model_with(entry, mode)
    c = analyze.candidates(model)[0]
    plan = make_plan(model, FixedRank(10_000), _filter(mode))
    for p in plan.layers:  # lift the break-even clip: the full rank must be exact
        p.rank, p.mode = c.max_rank(mode), mode
    twin_model = apply_plan(model, plan)
    assert type(twin_model.get_layer("target_light")) is entry.twin
    x = rng.random((4, *shape[1:]), dtype=np.float32)
    np.testing.assert_allclose(twin_model.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("entry,mode", ENTRIES, ids=[f"{e.name}-{m}" for e, m in ENTRIES])
def test_truncated_kernel_is_what_the_twin_computes(entry, mode):
    model, _ = _model_with(entry, mode)
    c = analyze.candidates(model)[0]
    twin = entry.build_twin(c.layer, 2, mode)
    dense_kernel = entry.truncated_kernel(c.kernel, 2, mode)
    # the original layer holding the truncated kernel computes what the twin computes
    from lightcompress.data.synthetic import model_inputs_like

    x = model_inputs_like(model, batch=2)
    entry.assign_kernel(c.layer, dense_kernel)
    np.testing.assert_allclose(np.asarray(twin(x)), np.asarray(c.layer(x)), rtol=1e-4, atol=1e-5)
    factors = sum(int(np.prod(w.shape)) for w in twin.weights
                  if not w.path.split("/")[-1].startswith(("bias", "depthwise")))
    assert factors == c.factor_params(mode, 2)  # the factors alone (no bias, no depthwise kernel)


@pytest.mark.parametrize("entry,mode", ENTRIES, ids=[f"{e.name}-{m}" for e, m in ENTRIES])
def test_twin_lowers_to_standard_layers_computing_the_same(entry, mode, rng):
    from lightcompress.deploy.lower import lower_model

    model, shape = _model_with(entry, mode)
    twin_model = apply_plan(model, make_plan(model, FixedRank(2), _filter(mode)))
    lowered = lower_model(twin_model)
    assert all(type(layer).__module__.startswith("keras") for layer in lowered.layers)
    x = rng.random((3, *shape[1:]), dtype=np.float32)
    np.testing.assert_allclose(lowered.predict(x, verbose=0), twin_model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_mac_formulas_against_hand_counts():
    dense = keras.layers.Dense(12)
    assert registry.macs(dense, (None, 3, 20), (None, 3, 12)) == 3 * 20 * 12
    assert DENSE.macs(dense, (None, 3, 20), (None, 3, 12), "dense", 4) == 3 * 4 * (20 + 12)
    conv = keras.layers.Conv2D(10, (3, 2), padding="same")
    # 5x8 output positions, 3x2 kernel, 6 channels in, 10 out
    assert registry.macs(conv, (None, 9, 8, 6), (None, 5, 8, 10)) == 5 * 8 * 3 * 2 * 6 * 10
    assert CONV2D.macs(conv, (None, 9, 8, 6), (None, 5, 8, 10), "channel", 4) == 5 * 8 * (3 * 2 * 6 * 4 + 4 * 10)
    # spatial: a 3x1 conv over the full input width (8), then 1x2 to the output
    assert CONV2D.macs(conv, (None, 9, 8, 6), (None, 5, 8, 10), "spatial", 4) == 5 * 8 * 3 * 6 * 4 + 5 * 8 * 2 * 4 * 10


@pytest.mark.parametrize("entry,mode", ENTRIES, ids=[f"{e.name}-{m}" for e, m in ENTRIES])
def test_twin_round_trips_through_keras_and_h5(entry, mode, tmp_path, rng):
    model, shape = _model_with(entry, mode)
    plan = make_plan(model, FixedRank(2), _filter(mode))
    twin_model = apply_plan(model, plan)
    x = rng.random((2, *shape[1:]), dtype=np.float32)
    for suffix in (".keras", ".h5"):
        path = tmp_path / f"m{suffix}"
        twin_model.save(path)
        again = keras.saving.load_model(path)
        np.testing.assert_allclose(again.predict(x, verbose=0), twin_model.predict(x, verbose=0), rtol=1e-6)


def test_mac_formulas_of_the_other_entries_against_hand_counts():
    conv1d = keras.layers.Conv1D(10, 3)
    # 9 output steps, kernel 3, 6 channels in, 10 out
    assert registry.macs(conv1d, (None, 11, 6), (None, 9, 10)) == 9 * 3 * 6 * 10
    assert CONV1D.macs(conv1d, (None, 11, 6), (None, 9, 10), "channel", 4) == 9 * (3 * 6 * 4 + 4 * 10)
    # spatial: 1-wide conv over all 11 input steps, then the 3-wide conv to 9 outputs
    assert CONV1D.macs(conv1d, (None, 11, 6), (None, 9, 10), "spatial", 4) == 11 * 6 * 4 + 9 * 3 * 4 * 10
    transpose = keras.layers.Conv2DTranspose(7, (3, 2), strides=2)
    # each of the 5x6 input pixels scatters a 3x2 kernel 8 -> 7; the 1x1 runs on the 11x12 output
    assert registry.macs(transpose, (None, 5, 6, 8), (None, 11, 12, 7)) == 5 * 6 * 3 * 2 * 8 * 7
    assert CONV2D_TRANSPOSE.macs(transpose, (None, 5, 6, 8), (None, 11, 12, 7), "channel", 4) == (
        5 * 6 * 3 * 2 * 8 * 4 + 11 * 12 * 4 * 7)
    separable = keras.layers.SeparableConv2D(12, 3, depth_multiplier=2, padding="same")
    # 6x6 outputs: depthwise 3x3 on 5*2 channels, then pointwise 10 -> 12 (or 10 -> 4 -> 12)
    assert registry.macs(separable, (None, 6, 6, 5), (None, 6, 6, 12)) == 36 * (9 * 10 + 10 * 12)
    assert SEPARABLE_CONV2D.macs(separable, (None, 6, 6, 5), (None, 6, 6, 12), "pointwise", 4) == (
        36 * (9 * 10 + 10 * 4 + 4 * 12))
    einsum = keras.layers.EinsumDense("abc,cde->abde", (4, 3, 5), bias_axes="de")
    einsum.build((None, 4, 12))
    # 4 positions, a (12) x (3*5) matrix
    assert registry.macs(einsum, (None, 4, 12), (None, 4, 3, 5)) == 4 * 12 * 15
    assert EINSUM_DENSE.macs(einsum, (None, 4, 12), (None, 4, 3, 5), "einsum", 2) == 4 * 2 * (12 + 15)
    embedding = keras.layers.Embedding(30, 9)
    # a lookup costs nothing; the factorised table multiplies each of 5 rank-4 rows by a 4x9 matrix
    assert registry.macs(embedding, (None, 5), (None, 5, 9)) == 0
    assert EMBEDDING.macs(embedding, (None, 5), (None, 5, 9), "table", 4) == 5 * 4 * 9
    td = keras.layers.TimeDistributed(keras.layers.Dense(9))
    assert registry.macs(td, (None, 4, 11), (None, 4, 9)) == 4 * 11 * 9
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    x = keras.Input((5, 8))
    y = keras.Input((7, 8))
    mha(x, y)
    # projections: q on 5 positions, k and v on 7, output on 5, each 8 -> 2x4 (or back);
    # scores 2 heads x 5 x 7 x 4, values 2 x 5 x 7 x 4
    expected = (5 + 7 + 7 + 5) * 8 * 8 + 2 * 5 * 7 * 4 * 2
    assert registry.macs(mha, [(None, 5, 8), (None, 7, 8)], (None, 5, 8)) == expected


def test_a_new_layer_type_is_one_module(rng):
    """tests/toy_layer_type.py adds a type (a new Keras layer, its twin, reshapes, MAC formula,
    lowering and entry) in one module: a model holding it is planned, converted (exact at full
    rank), counted and lowered with no other change."""
    from lightcompress.deploy.lower import lower_model

    from . import toy_layer_type as toy

    try:
        inputs = keras.Input((40,))
        model = keras.Model(inputs, toy.Linear(30, name="toy")(inputs))
        x = rng.random((4, 40), dtype=np.float32)
        full = make_plan(model, FixedRank(10_000), LayerFilter(min_params=0, conv_mode="channel"))
        full.layers[0].rank = 30  # lift the break-even clip: the full rank must be exact
        np.testing.assert_allclose(apply_plan(model, full).predict(x, verbose=0), model.predict(x, verbose=0),
                                   rtol=1e-4, atol=1e-5)
        plan = make_plan(model, FixedRank(5), LayerFilter(min_params=0, conv_mode="channel"))
        assert [(p.kind, p.rank) for p in plan.converted] == [("Linear", 5)]
        converted = apply_plan(model, plan)
        assert type(converted.get_layer("toy_light")) is toy.LightLinear
        macs = {s.name: s.macs for s in analyze.layer_stats(model) + analyze.layer_stats(converted)}
        assert (macs["toy"], macs["toy_light"]) == (40 * 30, 5 * (40 + 30))
        lowered = lower_model(converted)
        assert all(type(layer).__module__.startswith("keras") for layer in lowered.layers)
        np.testing.assert_allclose(lowered.predict(x, verbose=0), converted.predict(x, verbose=0), atol=1e-5)
    finally:
        registry.unregister(toy.LINEAR)
        sys.modules.pop(toy.__name__)


def test_a_new_layer_types_example_runs_the_parameterised_tests(rng, tmp_path):
    """Importing the toy type's module alone adds it, with its ``example()``, to what the
    parameterised tests run over; each of them passes on it."""
    import importlib

    toy = importlib.import_module(f"{__package__}.toy_layer_type")  # afresh if an earlier test dropped it
    try:
        assert (toy.LINEAR, "linear") in _entries() and toy.LINEAR.example is toy.example
        test_full_rank_twin_equals_the_original(toy.LINEAR, "linear", rng)
        test_truncated_kernel_is_what_the_twin_computes(toy.LINEAR, "linear")
        test_twin_lowers_to_standard_layers_computing_the_same(toy.LINEAR, "linear", rng)
        test_twin_round_trips_through_keras_and_h5(toy.LINEAR, "linear", tmp_path, rng)
    finally:
        registry.unregister(toy.LINEAR)
        sys.modules.pop(toy.__name__)
    assert (toy.LINEAR, "linear") not in _entries()


def test_a_composite_lowers_through_its_own_entry(rng):
    """A MultiHeadAttention twin is lowered by the composite's own ``lower`` (deploy/lower.py names
    no layer class): a plain MultiHeadAttention computing the same once its parts are swapped in."""
    from lightcompress.io import substitutions
    from lightcompress.layers.multi_head_attention import MULTI_HEAD_ATTENTION

    model, shape = _model_with(MULTI_HEAD_ATTENTION)
    twin_model = apply_plan(model, make_plan(model, FixedRank(2), LayerFilter(min_params=0, conv_mode="channel")))
    assert type(twin_model.get_layer("target_light")) is MULTI_HEAD_ATTENTION.twin
    twin = twin_model.get_layer("target_light")
    plain, swaps = MULTI_HEAD_ATTENTION.lower(twin, lambda sub, name: keras.Sequential(
        registry.twin_entry(sub).lower(sub), name=name))
    assert len(swaps) == 4  # every projection factorised
    substitutions.substitute(plain, swaps)
    assert type(plain) is keras.layers.MultiHeadAttention
    q, v = rng.random((2, 5, 8), dtype=np.float32), rng.random((2, 7, 8), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(plain(q, v)), np.asarray(twin(q, v)), rtol=1e-5, atol=1e-5)


def test_a_class_is_counted_by_one_mac_formula():
    """Registering a class that already has a MAC formula fails: in the old table a later entry
    silently replaced SeparableConv2D's counter, leaving its own formula dead code."""
    from lightcompress.layers import separable_conv2d

    layer = keras.layers.SeparableConv2D(12, 3, depth_multiplier=2, padding="same")
    shapes = ((None, 6, 6, 5), (None, 6, 6, 12))
    assert registry.macs(layer, *shapes) == separable_conv2d.separable_macs(layer, *shapes, None, None)
    with pytest.raises(registry.RegistryError, match=r"^SeparableConv2D already has a MAC formula"):
        registry.count_macs(keras.layers.SeparableConv2D, lambda layer, i, o: 0)
    with pytest.raises(registry.RegistryError, match=r"^SeparableConv2D is already registered"):
        registry.register(SEPARABLE_CONV2D)
    assert registry.macs(layer, *shapes) == 36 * (9 * 10 + 10 * 12)


# -- the package's shape ---------------------------------------------------------------------

def _imports(path: Path):
    """Modules of the package that ``path`` imports at module level (relative imports)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if path.name == "__init__.py":
        package += ".__init__"
    found = set()
    for node in tree.body:  # module level only: imports inside functions are deliberate and lazy
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: -node.level]
            target = ".".join(base + ([node.module] if node.module else []))
            names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            found.update(names)
    return found


def test_no_import_cycle_inside_the_package():
    modules = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in (i.removesuffix(".__init__") for i in _imports(path))
                       if m in modules and m != name and not name.startswith(m + ".")}
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node])


def test_no_library_module_outside_cli_mentions_a_flag():
    """Errors and every stage below the reports speak Python (``name=value``); the CLI phrases them
    in flags. The reports' rendered notes are the command line's own output and may name flags."""
    import re

    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if {"cli", "report"} & set(path.relative_to(PACKAGE).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.search(r"(^|\s)--[a-z]", node.value):
                offenders.append(f"{path.name}:{node.lineno}: {node.value.strip()[:60]}")
    assert not offenders, "library messages must speak Python (name=value), not flags:\n" + "\n".join(offenders)


def _fresh_python(code, cwd):
    """Run ``code`` in a new Python process in ``cwd``, importing this checkout's package."""
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True)


@pytest.fixture(scope="module")
def fresh_processes(tmp_path_factory):
    """The two fresh processes the registration tests look at, run once for all three (each starts
    Keras: seconds): one imports lightcompress, then Keras, and loads a saved model of every twin
    type; the other imports Keras, then lightcompress, and loads a LightDense model. Each first
    prints the class Keras has registered as 'lightcompress>LightConv1D'."""
    keras.utils.set_random_seed(1234)
    rng = np.random.default_rng(0)
    twins, expected, classes = tmp_path_factory.mktemp("twins"), {}, {}
    for name, model in _twin_models().items():
        classes[name] = {type(layer).__name__ for layer in model.layers}
        x = [rng.random((2, *t.shape[1:]), dtype=np.float32) for t in model.inputs]
        np.savez(twins / f"{name}.npz", *x)
        model.save(twins / f"{name}.keras")
        expected[name] = model.predict(x if len(x) > 1 else x[0], verbose=0)
    registered = "print(keras.saving.get_registered_object('lightcompress>LightConv1D').__name__)"
    lightcompress_first = _fresh_python(f"""
import lightcompress
import keras, numpy as np
from pathlib import Path
{registered}
for path in sorted(Path({str(twins)!r}).glob("*.keras")):
    model = keras.models.load_model(path)
    x = list(np.load(path.with_suffix(".npz")).values())
    np.save(path.with_suffix(".out.npy"), model.predict(x if len(x) > 1 else x[0], verbose=0))
""", twins)
    from lightcompress import LightDense

    dense = keras.layers.Dense(8)
    dense.build((None, 16))
    inputs = keras.Input((16,))
    dense_file = tmp_path_factory.mktemp("dense") / "m.keras"
    keras.Model(inputs, LightDense.from_dense(dense, 2)(inputs)).save(dense_file)
    keras_first = _fresh_python(f"import keras, lightcompress; {registered}; "
                                f"m = keras.saving.load_model({str(dense_file)!r}); print(type(m.layers[-1]).__name__)",
                                dense_file.parent)
    return {"lightcompress first": lightcompress_first.stdout.split(), "keras first": keras_first.stdout.split(),
            "twins": twins, "expected": expected, "classes": classes}


@pytest.mark.slow  # shares the two fresh processes of fresh_processes (~20 s); .ci/run runs -m slow
def test_importing_the_package_registers_the_twins_and_nothing_else(tmp_path, fresh_processes):
    """``import lightcompress`` is cheap (no Keras, no TensorFlow) and has one documented effect:
    every twin is registered with Keras when Keras loads, in either import order. Nothing is
    printed and no file is written where it runs."""
    out = _fresh_python("import sys, lightcompress; print('keras' in sys.modules, 'tensorflow' in sys.modules)", tmp_path)
    assert (out.stdout.split(), out.stderr) == (["False", "False"], "")
    assert list(tmp_path.iterdir()) == []
    for order in ("lightcompress first", "keras first"):
        assert fresh_processes[order][0] == "LightConv1D", order


# One model per twin type, each saved by this process and loaded by a fresh one.
def _twin_models():
    from lightcompress.layers import registry

    models = {}
    for entry in registry.REGISTRY.values():
        model, _ = _model_with(entry, entry.modes[0])
        models[entry.twin.__name__] = apply_plan(model, make_plan(model, FixedRank(2), _filter(entry.modes[0])))
    for composite in registry.COMPOSITES.values():
        model, _ = _model_with(composite)
        plan = make_plan(model, FixedRank(2), LayerFilter(min_params=0, conv_mode="channel"))
        models[composite.twin.__name__] = apply_plan(model, plan)
    return models


@pytest.mark.slow  # shares the two fresh processes of fresh_processes (~20 s); .ci/run runs -m slow
def test_every_twin_loads_in_a_fresh_process_that_imports_lightcompress_first(fresh_processes):
    for name, classes in fresh_processes["classes"].items():
        assert name in classes
    for name, want in fresh_processes["expected"].items():
        np.testing.assert_allclose(np.load(fresh_processes["twins"] / f"{name}.out.npy"), want, rtol=1e-6, atol=1e-6)


@pytest.mark.slow  # shares the two fresh processes of fresh_processes (~20 s); .ci/run runs -m slow
def test_keras_then_lightcompress_registers_the_layers(fresh_processes):
    assert fresh_processes["keras first"][-1] == "LightDense"


def test_private_keras_apis_are_still_there():
    """If this fails, a Keras release moved an internal that keras_private.py leans on: fix it there."""
    with keras_private.unsafe_scope():
        pass
    inputs = keras.Input((4,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    sequential = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert keras_private.is_graph_model(functional) and keras_private.is_graph_model(sequential)
    for model in (functional, sequential):
        nodes = keras_private.graph_nodes(model)
        dense = model.layers[-1]
        assert len(nodes.get(id(dense), [])) == 1, (
            f"keras_private.graph_nodes found no call of the Dense layer in a {type(model).__name__} "
            f"under Keras {keras.__version__}: one of {keras_private.PRIVATE_APIS} moved")


def test_seeding_without_tensorflow_seeds_keras_as_keras_does():
    """keras_private.seed_without_tensorflow (the JAX/PyTorch path) leans on Keras's global seed state."""
    keras.utils.set_random_seed(5)
    expected = keras.ops.convert_to_numpy(keras.random.uniform((4,)))
    keras.utils.set_random_seed(6)
    keras_private.seed_without_tensorflow(5)
    got = keras.ops.convert_to_numpy(keras.random.uniform((4,)))
    np.testing.assert_array_equal(got, expected, err_msg=f"one of {keras_private.PRIVATE_APIS} moved")


@pytest.mark.slow  # every verb's docstring example run (~14 s); .ci/run runs -m slow
def test_the_verbs_docstrings_run():
    import doctest

    import lightcompress

    for name in ("load_model", "inspect", "plan", "convert", "finetune", "compress"):
        fn = getattr(lightcompress, name)
        assert ">>>" in (fn.__doc__ or ""), f"lightcompress.{name} has no runnable example"
    from lightcompress import api  # the verbs' module (``lightcompress.<verb>`` reads it)

    results = [doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL)
               for module in (lightcompress, api)]
    assert sum(r.attempted for r in results) > 10 and sum(r.failed for r in results) == 0


@pytest.mark.slow  # the whole demo (~40 s); the README's first command runs it too; .ci/run runs -m slow
def test_demo_json(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from lightcompress.cli import app
    from lightcompress.deploy import latency

    # The latency profile at 3 of its 7 ladder steps: each step of each layer is a .tflite of its own
    # (under half the conversions, about half the test's time); the ladder is tests/deploy/test_latency.py's.
    monkeypatch.setattr(latency, "LATENCY_LADDER", (1 / 8, 1 / 2, 1.0))
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--epochs", "2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["report"] == "demo" and data["compress"]["report"] == "compress"
    compare = data["compress"]["compare"]
    # int8 is the target: original and compressed, each float and int8, the headline int8 against int8
    assert compare["report"] == "compare" and [m["label"] for m in compare["models"]] == [
        "original float", "original int8", "compressed float", "compressed int8"]
    assert compare["models"][2]["params"] <= 0.21 * compare["models"][0]["params"]
    assert data["compress"]["export"]["verification"]["accuracy"] is not None
    deployable = tmp_path / "digits_cnn.compressed.int8.tflite"
    assert deployable.exists() and compare["models"][3]["path"] == str(deployable)
    assert compare["models"][3]["file_bytes"] == deployable.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(  # the original's int8 file was not kept
        ["digits_cnn.keras", "digits_cnn.compressed.keras", "digits_cnn.compressed.plan.json", deployable.name])
    assert data["verdict"].startswith(compare["headline"]["text"] + ". ")
    assert data["verdict"].startswith("compressed int8 vs original int8: ")
    assert "faster" in data["verdict"] or "no speed-up" in data["verdict"] or "slower" in data["verdict"]
    from rich.console import Console

    from lightcompress.flows import demo
    from lightcompress import report

    console = Console(record=True, width=120)
    report.render(demo.sections(data), console)
    text = console.export_text()
    assert "compare:" in text and "agreement" in text and "int8" in text and data["verdict"][:30] in text
    again = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--epochs", "1"])
    assert again.exit_code == 1 and "exists; pass --force" in again.stderr
