"""Data-parallel fine-tuning on 2 virtual CPU devices matches 1 device (JAX: keras.distribution,
TensorFlow: tf.distribute), and --devices is checked before any work. Each backend runs in its own
process (tests/distributed_run.py): a process fixes its devices when the backend starts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest
from typer.testing import CliRunner

from lightcompress.training import distribute
from lightcompress.cli import app
from lightcompress.errors import OptionError

ROOT = Path(__file__).resolve().parents[2]


def run(backend, **env):
    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "400",
                   "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **env}
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "distributed_run.py")], env=environment,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(out, engine):
    one, two = out["1"], out["2"]
    assert one["devices"] == 1 and one["engine"] == "keras"
    assert two["devices"] == 2 and two["engine"] == engine
    assert f"2 devices ({engine})" in two["report"]  # the report line names the engine and the count
    assert "devices (" not in one["report"]
    assert two["loss"][-1] == pytest.approx(one["loss"][-1], rel=0.02)  # the tolerance
    assert two["loss"][-1] < two["loss"][0]  # it trained
    distilled = out["distilled"]  # a second run on the same engine in the process, with a teacher
    assert distilled["devices"] == 2 and distilled["loss"][-1] < distilled["loss"][0]


@pytest.mark.slow  # a subprocess with two devices (~25 s); .ci/run runs -m slow
def test_two_tensorflow_devices_match_one():
    pytest.importorskip("tensorflow")
    check(run("tensorflow"), "tf.distribute.MirroredStrategy")


@pytest.mark.slow  # a subprocess with two devices (~30 s); .ci/run runs -m slow
def test_two_jax_devices_match_one():
    pytest.importorskip("jax")
    check(run("jax", XLA_FLAGS="--xla_force_host_platform_device_count=2"), "keras.distribution.DataParallel")


@pytest.mark.backend
@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "", 0, -2, 1.5, True, None])
def test_bad_devices_value_is_one_line(value):
    with pytest.raises(OptionError) as err:
        distribute.check_devices(value)
    assert str(err.value).startswith("devices=") and "\n" not in str(err.value)
    assert "'all' or a whole number" in str(err.value)


@pytest.mark.backend
@pytest.mark.parametrize("value, expected", [("all", "all"), (" ALL ", "all"), ("2", 2), (3, 3)])
def test_good_devices_values(value, expected):
    assert distribute.check_devices(value) == expected


@pytest.mark.backend
def test_more_devices_than_visible_is_refused():
    with pytest.raises(OptionError, match=r"devices=64 is more than the 1 CPU device\(s\) the \w+ backend sees"):
        distribute.placement(64)


@pytest.mark.backend
def test_all_on_a_cpu_only_machine_is_the_cpu_without_a_strategy():
    where = distribute.placement("all")
    assert where.count == 1 and where.engine == "keras" and where.describe() == "1 device (keras)"
    with distribute.scope(where):  # no engine: Keras alone
        pass


@pytest.mark.backend
def test_describe_names_engine_count_and_hosts():
    assert distribute.Placement("tf.distribute.MirroredStrategy", ("a", "b"), 2).describe() == \
        "2 devices (tf.distribute.MirroredStrategy)"
    assert distribute.Placement("tf.distribute.MultiWorkerMirroredStrategy", (), 4, hosts=2).describe() == \
        "4 devices on 2 hosts (tf.distribute.MultiWorkerMirroredStrategy)"


@pytest.mark.backend
def test_jax_batches_split_evenly_over_the_devices():
    import numpy as np

    where = distribute.Placement("keras.distribution.DataParallel", ("cpu:0", "cpu:1"), 2)
    x, y = np.zeros((101, 3)), np.zeros(101)
    assert distribute.local_share(x, y, 64, where)[2:] == (64, 2)
    with pytest.raises(OptionError, match="batch_size=63 does not split evenly over 2 devices"):
        distribute.local_share(x, y, 63, where)
    from lightcompress.training.finetune import _Batches

    batches = _Batches(x, y, 64, seed=0, shuffle=True, epochs=2, multiple=2)
    assert len(batches) == 2 and [len(batches[i][0]) for i in range(2)] == [64, 36]  # 37 -> 36: even


@pytest.mark.backend
def test_several_hosts_need_devices_all(monkeypatch):
    variable = "TF_CONFIG" if keras.backend.backend() == "tensorflow" else "KERAS_DISTRIBUTION_NUM_PROCESSES"
    value = json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}) \
        if variable == "TF_CONFIG" else "2"
    monkeypatch.setenv(variable, value)
    assert distribute.hosts() == 2
    with pytest.raises(OptionError, match="devices=2 cannot pick devices across 2 hosts"):
        distribute.placement(2)


runner = CliRunner()


@pytest.mark.backend
@pytest.mark.parametrize("value", ["two", "0", "-1", "1.5", "64"])
@pytest.mark.parametrize("command", ["finetune", "compress"])
def test_cli_devices_errors_are_one_line_in_flag_words_before_any_work(value, command, tmp_path):
    source = tmp_path / "m.keras"
    keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]).save(source)
    extra = ["--target-params", "0.5"] if command == "compress" else []
    result = runner.invoke(app, [command, str(source), "-d", "digits", "--devices", value, *extra])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --devices {value} "), result.output
    assert "devices=" not in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]  # nothing written


@pytest.mark.backend
def test_cli_devices_is_in_the_help_of_finetune_and_compress():
    for command in ("finetune", "compress"):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert "--devices" in result.output
