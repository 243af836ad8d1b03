"""An estimate before long work (issue 38): `compress` says what it expects to take, phase by
phase, before it starts, in a line a log keeps; the result carries it beside the elapsed time."""

import json
import re

from lightcompress.cli import app
from lightcompress.flows.estimate import Estimate

from ..cli_checks import runner

LINE = re.compile(r"^estimate: about \d+(\.\d)? (s|min) in all: .*fine-tuning .*\(up to 1 epoch\(s\) of \d+ images, "
                  r"about .* each\).*; from \d+\.\d\d ms per image measured here", re.M)


def test_compress_prints_its_estimate_before_the_work_and_reports_it(small, tmp_path):
    path, data = small
    result = runner.invoke(app, ["compress", str(path), "-d", str(data), "--target-params", "0.6", "--epochs", "1",
                                 "--allow-slower", "--no-cache", "--runtime", "keras", "--holdout", "8",
                                 "--repeats", "3", "-o", str(tmp_path / "c.keras"), "--json"])
    assert result.exit_code == 0, result.output
    assert LINE.search(result.stderr), result.stderr
    lines = result.stderr.splitlines()
    first_plan = next(i for i, line in enumerate(lines) if line.startswith("plan ("))
    assert next(i for i, line in enumerate(lines) if line.startswith("estimate: ")) < first_plan  # said first
    assert re.search(r"^sensitivity: \d+/\d+ \(", result.stderr, re.M)  # progress a log keeps (not a terminal)
    report = json.loads(result.stdout)
    names = [p["name"] for p in report["estimate"]["phases"]]
    assert names == ["calibration", "sensitivity analysis", "fine-tuning", "evaluation and compare"]
    assert report["estimate"]["seconds"] > 0 and report["elapsed_seconds"] > 0


def test_the_estimate_counts_each_phase_in_image_passes():
    est = Estimate(per_image_ms=2.0, phases=[("fine-tuning", 120.0, "up to 3 epoch(s)"), ("sensitivity analysis", 0.4, "x")])
    assert est.seconds == 120.4
    line = est.line()
    assert line.startswith("estimate: about 2.0 min in all: fine-tuning 2.0 min (up to 3 epoch(s))")
    assert "; sensitivity analysis under 1 s (x); " in line
