"""What a newcomer reads in the first hour: one CLI test per kind of wording fixed."""

import importlib.util
import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from lightcompress.cli import app
from lightcompress import report as reports

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def _conv_model(shape=(8, 8, 1)):
    return keras.Sequential([
        keras.Input(shape),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_a"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_b"),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu", name="wide"),
        keras.layers.Dense(10, activation="softmax", name="head"),
    ])


@pytest.fixture
def conv_file(tmp_path):
    path = tmp_path / "cnn.keras"
    _conv_model().save(path)
    return path


# 1. latency wording: flags, not Python names; times with enough digits to read
def test_latency_in_readable_units_and_the_guard_by_its_flag(conv_file, tmp_path):
    light = tmp_path / "cnn.light.keras"
    assert runner.invoke(app, ["convert", str(conv_file), "--rank", "4", "-o", str(light)]).exit_code == 0
    result = runner.invoke(app, ["compare", str(conv_file), str(light), "--runtime", "keras", "--repeats", "2",
                                 "--markdown"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("| latency batch 1"))
    assert re.search(r"\((µs|ms)\)", row)
    assert not re.search(r"\b0\.00\d\b", row)  # never 0.002 (0.469x)
    from lightcompress.deploy.measure import ModelMeasure
    from lightcompress.deploy.timing import Latency

    fast, slow = (ModelMeasure(n, 1, 1, 1, 1, 1, "litert", latency=[
        Latency.from_samples(1, [ms * 0.99, ms, ms * 1.01] * 5, warmup=1)]) for n, ms in (("b", 0.001), ("a", 0.00213)))
    text = reports.markdown(reports.compare_sections(reports.compare_dict([fast, slow], "cpu")))
    assert "--allow-slower" in text and "allow_slower" not in text
    assert "| latency batch 1 (µs), median (IQR) | 1.00 (0.0200) | 2.13 (0.0426) |" in text
    assert "| batch 1 vs first | - | 2.13x, slower |" in text


# 2. --rank 8 gives rank 8 everywhere unless clipped, and says where and why
@pytest.mark.parametrize("mode", [None, "auto", "spatial", "tucker"])
def test_rank_8_is_rank_8_in_every_mode_unless_clipped(conv_file, tmp_path, mode):
    args = ["convert", str(conv_file), "--rank", "8", "-o", str(tmp_path / "r8.keras"), "--json"]
    result = runner.invoke(app, args + (["--conv-mode", mode] if mode else []))
    assert result.exit_code == 0, result.output
    layers = {layer["name"]: layer for layer in json.loads(result.stdout)["layers"]}
    assert layers["conv_b"]["rank"] == 8 and layers["wide"]["rank"] == 8
    assert layers["conv_b"]["mode"] == (mode if mode not in (None, "auto") else layers["conv_b"]["mode"])
    if mode is None:
        assert layers["conv_b"]["mode"] == "channel"  # the one default, defaults.DEFAULT_CONV_MODE
    narrow = layers["head"]  # 128 -> 10: rank 8 would save under --min-saving 0.2 of it
    assert narrow["rank"] < 8 and "rank 8 clipped to" in narrow["note"] and "min_saving" in narrow["note"]
    table = runner.invoke(app, args[:-1] + ["--force"] + (["--conv-mode", mode] if mode else []))
    assert "head: rank 8 clipped to 7" in " ".join(table.stdout.split())


def test_python_and_cli_share_the_conv_mode_default():
    import inspect as pyinspect

    import lightcompress
    from lightcompress.defaults import DEFAULT_CONV_MODE
    from lightcompress.planning import LayerFilter

    assert LayerFilter().conv_mode == DEFAULT_CONV_MODE
    for verb in (lightcompress.plan, lightcompress.convert, lightcompress.compress):
        assert pyinspect.signature(verb).parameters["conv_mode"].default == DEFAULT_CONV_MODE
    help_text = runner.invoke(app, ["convert", "--help"]).stdout
    assert "tucker" in help_text and "default" in help_text


# 3. a plain convert explains its random-input check
def test_convert_without_data_says_random_inputs_say_little(conv_file, tmp_path):
    result = runner.invoke(app, ["convert", str(conv_file), "--rank", "4", "-o", str(tmp_path / "o.keras")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "random inputs are not the data the model was trained for" in text
    assert "pass --dataset NAME" in text and "data-aware" in text


# 4. no data set given (there is no silent default, issue 38): the error says so and names the flag
# and the choices; with the digits given, a 28x28 model gets the real mismatch and its flag
def test_missing_dataset_error_names_the_flag(tmp_path):
    path = tmp_path / "m28.keras"
    _conv_model((28, 28, 1)).save(path)
    args = ["finetune", str(path), "--epochs", "1", "-o", str(tmp_path / "t.keras")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "no data set was given and this needs one" in line
    assert "pass --dataset NAME: one of digits, mnist" in line
    result = runner.invoke(app, args + ["-d", "digits"])
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "images are 8x8 but the model takes 28x28" in line
    assert line.endswith("pass --resize to resize them.")
    assert not (tmp_path / "t.keras").exists()


# 5. numbers explained: optimizer state in the input file, train/held-out counts, change against what;
# int8 outputs read as probabilities
@pytest.mark.slow  # compress, export and compare through the CLI (~8 s); .ci/run runs -m slow
def test_numbers_are_explained(tmp_path):
    model = _conv_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(np.zeros((4, 8, 8, 1)), np.zeros(4), verbose=0)
    h5 = tmp_path / "trained.h5"
    model.save(h5)
    out = tmp_path / "trained.light.keras"
    result = runner.invoke(app, ["convert", str(h5), "--rank", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "optimizer state" in " ".join(result.stdout.split())
    # wide enough that a long temporary path (pytest-xdist's) is not wrapped inside the sentence
    result = runner.invoke(app, ["finetune", str(out), "-d", "digits", "--epochs", "1", "-o", str(tmp_path / "t.keras")],
                           env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert re.search(r"\([\d,]+ training images, [\d,]+ held out for validation\)", text)
    assert f"points against the input, {out}" in text

    from lightcompress.training.evaluation import output_kind

    class Quantised:
        def predict(self, x, **kwargs):
            z = np.random.default_rng(0).normal(size=(len(x), 10)) * 4
            p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
            return np.round(p * 256) / 256  # an int8 softmax, dequantised

    assert output_kind(Quantised(), np.zeros((64, 2))) == "probabilities"


# 6. logs: a heading before the first epoch line; signed changes; --plot says where
def test_logs_have_headings_signs_and_the_plot_path(conv_file, tmp_path):
    result = runner.invoke(app, ["finetune", str(conv_file), "-d", "digits", "--epochs", "1", "-o",
                                 str(tmp_path / "t.keras")])
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert "fine-tuning" in err and err.index("fine-tuning") < err.index("epoch 1/1")
    plot = tmp_path / "spectra.png"
    result = runner.invoke(app, ["inspect", str(conv_file), "--plot", str(plot)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output  # wide: a long temporary path must not wrap mid-name
    assert f"plot saved to {plot}" in " ".join(result.stderr.split()) and plot.exists()
    assert re.search(r"it is [\d.]+x smaller \([\d,]+ of [\d,]+ params\)", result.stdout) and "saves 1" not in result.stdout
    sens = {"examples": 10, "base_loss": 1.0, "base_accuracy": 0.5, "skipped": {}, "from_cache": True,
            "cache_file": None, "layers": [{"name": "d", "options": [
                {"rank": None, "mode": None, "params": 9, "loss": 1.0, "accuracy": 0.5},
                {"rank": 2, "mode": "dense", "params": 4, "loss": 1.0004, "accuracy": 0.5}]}]}
    text = reports.markdown(reports.sensitivity_sections(sens))
    assert "| +0.0004 |" in text and "+-" not in text
    assert not re.search(r"issue \d", (REPO / "README.md").read_text())


# 7. fetch_real_models: a good checksum keeps the file, a bad one leaves nothing and exits 1
def test_fetch_real_models_checks_sha256(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("fetch_real_models", REPO / "benchmarks" / "fetch_real_models.py")
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)
    source = tmp_path / "source.h5"
    source.write_bytes(b"a model")
    fetch.SHA256 = {"good.h5": fetch.sha256_of(source), "bad.h5": "0" * 64}
    dest = tmp_path / "real_models"
    url = source.as_uri()
    assert fetch.main(["--dest", str(dest), "--url", f"good.h5={url}", "good.h5"]) == 0
    assert (dest / "good.h5").read_bytes() == b"a model"
    assert fetch.main(["--dest", str(dest), "--url", f"bad.h5={url}", "bad.h5"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: bad.h5: sha256") and "nothing kept" in err[0]
    assert sorted(p.name for p in dest.iterdir()) == ["good.h5"]
    assert "/real_models/" in (REPO / ".gitignore").read_text()


def test_fetch_real_models_offline_says_what_it_needs_and_reads_a_folder(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("fetch_real_models", REPO / "benchmarks" / "fetch_real_models.py")
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)
    copies = tmp_path / "copies"
    copies.mkdir()
    (copies / "m.h5").write_bytes(b"a model")
    fetch.SHA256 = {"m.h5": fetch.sha256_of(copies / "m.h5")}
    # an address no network answers: one line that says the network is needed and the way round it
    fetch.URLS = {"m.h5": "http://unreachable.invalid/m.h5"}
    assert fetch.main(["--dest", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs the network" in err[0] and "--from FOLDER" in err[0]
    assert fetch.main(["--dest", str(tmp_path / "b"), "--from", str(copies)]) == 0
    assert (tmp_path / "b" / "m.h5").read_bytes() == b"a model"
    assert fetch.main(["--from", str(tmp_path / "none")]) == 2


def test_help_paragraphs_flow_to_the_terminal_width():
    """Typer keeps a docstring's single line breaks, so at 80 columns every source line of a
    command's description ended ragged; each paragraph is one line for the terminal to wrap, and
    list lines stay lines."""
    from typer.testing import CliRunner

    from lightcompress.cli import app
    from lightcompress.cli.typer_app import reflow

    assert reflow("First line.\n\n    One paragraph\n    in two lines.\n\n    - a\n    - b\n") == (
        "First line.\n\nOne paragraph in two lines.\n\n- a\n- b")
    out = CliRunner().invoke(app, ["tradeoffs", "--help"], env={"COLUMNS": "200"}).output
    assert "(calibrated on training images), compress at each of --budgets" in out


def test_a_layer_faster_than_the_timer_resolves_is_not_shown_as_zero():
    """A plan's per-layer times have the runtime's overhead taken off; a tiny factorised layer
    printed "0.0 us vs 0.5 us as it is", which reads as a broken timer."""
    from lightcompress.planning.costs import latency_note

    assert latency_note(0.0, 5e-7) == "<0.1 us vs 0.5 us as it is"
    assert latency_note(2.34e-6, 3.2e-6) == "2.3 us vs 3.2 us as it is"
