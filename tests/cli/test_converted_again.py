"""Converting a converted model (issue 38): it used to exit 0 with '0 layers converted' and write
model.light.light.keras; now it is refused in one line that says what to do, and nothing is written."""

from lightcompress.cli import app

from ..cli_checks import fails, runner


def test_converting_a_converted_model_is_refused_in_one_line(small, tmp_path):
    path, _ = small
    light = tmp_path / "m.light.keras"
    result = runner.invoke(app, ["convert", str(path), "--rank", "4", "--min-params", "0", "-o", str(light)])
    assert result.exit_code == 0, result.output
    fails(["convert", light, "--rank", "2", "--min-params", "0"],
          "the model is already converted: its factorisable layers are LightLayers ('fc_light', 'head_light') and "
          "nothing else is left to factorise; convert the original model at the rank you want instead.",
          [path, light], tmp_path)
