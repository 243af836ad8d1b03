"""No silent data set (issue 38): only the demo has a default data set; a command or verb that needs
data and is given none says --dataset (data=) first, before any other check; an unknown data set
is named before an existing output is; a resize across data sets is never a first hint."""

import keras
import pytest

import lightcompress
from lightcompress.errors import DataError

from ..cli_checks import fails

NO_DATA = ("no data set was given and this needs one; pass --dataset NAME: one of digits, mnist, fashion_mnist, "
           "cifar10, cifar100, a .npz file, a folder of images in class sub-folders, a .tfrecord file or "
           "module:function.")


@pytest.mark.parametrize("command", [
    ["evaluate", "{m}"],
    ["finetune", "{m}", "-o", "{d}/o.keras"],
    ["compress", "{m}", "--target-params", "0.5", "-o", "{d}/o.keras"],
    ["tradeoffs", "{m}", "--no-baselines"],
    ["finetune", "{m}", "-o", "{m}"],  # an output that is the input: the data set is named first
    ["compress", "{m}", "--target-params", "0.5", "--plot", "{m}"],  # so is a plot path that exists
])
def test_a_command_that_needs_data_says_dataset_first(small, tmp_path, command):
    path, _ = small
    line = fails([a.format(m=path, d=tmp_path) for a in command], NO_DATA, [path], tmp_path)
    assert line == f"error: {NO_DATA}"


def test_an_unknown_data_set_is_named_before_an_existing_output(small, tmp_path):
    path, _ = small
    existing = tmp_path / "o.keras"
    existing.write_bytes(b"an earlier output")
    fails(["finetune", path, "-d", "fmnist", "-o", existing], "unknown data set 'fmnist'", [path, existing], tmp_path)


def test_a_28x28_model_without_data_is_not_evaluated_on_resized_digits(tmp_path):
    """The newcomer's case: a 28x28 model and no --dataset used to end, with --resize, in an
    accuracy on 8x8 digits stretched to 28x28, exit 0."""
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    path = tmp_path / "m28.keras"
    model.save(path)
    fails(["evaluate", path, "--resize"], NO_DATA, [path], tmp_path)
    # asked for explicitly, the resize still works (digits at 28x28: an accuracy, exit 0)
    from ..cli_checks import runner
    from lightcompress.cli import app

    result = runner.invoke(app, ["evaluate", str(path), "-d", "digits", "--resize"])
    assert result.exit_code == 0, result.output


def test_the_python_verbs_ask_for_data_in_python_terms():
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    for verb in (lightcompress.evaluate, lightcompress.finetune):
        with pytest.raises(DataError, match=r"no data set was given and this needs one; pass data=NAME"):
            verb(model)
    with pytest.raises(DataError, match=r"pass data=NAME"):
        lightcompress.compress(model, target_params=0.5)
