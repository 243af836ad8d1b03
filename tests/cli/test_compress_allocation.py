"""`compress --allocation error` from the command line, and a bad --allocation (issue 24)."""

import json

from typer.testing import CliRunner

from lightcompress.cli import app

from .test_reliability import _fails

runner = CliRunner()


def test_compress_allocates_by_error_from_the_command_line(small, tmp_path):
    path, data = small
    result = runner.invoke(app, ["compress", str(path), "-d", str(data), "--target-macs", "0.6", "--allocation", "error",
                                 "--epochs", "1", "--allow-slower", "--no-cache", "--runtime", "keras",
                                 "--holdout", "8", "--repeats", "3", "-o", str(tmp_path / "c.keras"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["allocation"] == "error" and report["sensitivity"] is None
    assert report["plan"]["policy"].startswith("error allocation, target macs 0.6")
    assert report["plan"]["budget"]["planned"] <= 0.6


def test_a_bad_allocation_is_refused_in_one_line_before_any_work(small, tmp_path):
    path, data = small
    out = tmp_path / "out"
    out.mkdir()
    _fails(["compress", path, "-d", data, "--target-params", "0.5", "--allocation", "best", "-o", out / "c.keras"],
           "--allocation best is unknown; use one of sensitivity, error.", [path, data], out)
    text = runner.invoke(app, ["compress", "--help"], env={"COLUMNS": "200"}).stdout
    assert "--allocation" in text and "no model evaluated" in text
