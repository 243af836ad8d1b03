"""Without data, do no harm (issue 39): `convert --target-params 0.5` with no data set on real
models that are not Fashion-MNIST, three ways, and the top-1 agreement with the original measured
on realistic inputs the conversion never saw.

1. ``--no-synthesis``: planned on the weights alone (the energy floor), compared on random inputs;
2. the default: calibrated on inputs synthesised from the model's BatchNorm statistics where it has
   them (else the same as 1);
3. ``--samples``: calibrated on realistic unlabelled inputs (half of the realistic set).

The realistic inputs and the models come from ``benchmarks/nodata_inputs.py`` (its
``manifest.json``); the models are pinned (sha256) in ``benchmarks/legacy_corpus_manifest.json``.
Each realistic set is split in two: the odd rows are the samples of way 3, the even rows the
evaluation set of all three ways. The agreement the report printed (``output_difference``) sits
beside the measured one, so the gap between the two is the honesty of the estimate.

    python benchmarks/nodata_inputs.py --out /tmp/zoo39/inputs
    nice python benchmarks/nodata_zoo.py --inputs /tmp/zoo39/inputs --jsonl benchmarks/nodata_zoo.jsonl

Each conversion runs in a child process (``lightcompress convert ... --json``) and is timed whole.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WAYS = {"weights": ["--no-synthesis"], "synthesised": [], "samples": None}


def agreement(original, converted, x) -> float:
    a = np.argmax(np.asarray(original.predict(x, verbose=0)).reshape(len(x), -1), axis=1)
    b = np.argmax(np.asarray(converted.predict(x, verbose=0)).reshape(len(x), -1), axis=1)
    return float(np.mean(a == b))


def run_one(model_path: Path, x: np.ndarray, work: Path, budget: float, trust: bool, ways=tuple(WAYS),
            extra_args=()) -> list[dict]:
    import lightcompress

    evaluate, samples = x[0::2], x[1::2]
    samples_file = work / "samples.npy"
    np.save(samples_file, samples)
    original = lightcompress.load_model(model_path, trust=trust)
    rows = []
    for way, extra in WAYS.items():
        if way not in ways:
            continue
        out = work / f"{way}.keras"
        args = extra if extra is not None else ["--samples", str(samples_file)]
        command = [sys.executable, "-m", "lightcompress", "convert", str(model_path), "--target-params", str(budget),
                   "-o", str(out), "--force", "--json", *args, *extra_args] + (["--trust-model"] if trust else [])
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        row = {"way": way, "seconds": round(seconds, 1), "exit": done.returncode}
        if done.returncode != 0:
            row["error"] = (done.stderr.strip().splitlines() or ["?"])[-1]
            rows.append(row)
            continue
        report = json.loads(done.stdout)
        difference = report.get("output_difference") or {}
        converted = lightcompress.load_model(out, trust=trust)
        row.update(measured=round(agreement(original, converted, evaluate), 4), examples=len(evaluate),
                   printed=difference.get("agreement"), printed_on=difference.get("source"),
                   printed_examples=difference.get("examples"), params=report["totals"]["params_after"],
                   params_before=report["totals"]["params_before"], method=report.get("method"),
                   synthesis_seconds=(report.get("synthesis") or {}).get("seconds"))
        rows.append(row)
    return rows


def table(records: list[dict]) -> str:
    lines = ["| model | kind | params | way | agreement (realistic) | printed (on) | convert s |",
             "|---|---|---:|---|---:|---|---:|"]
    for r in records:
        for w in r["ways"]:
            if w["exit"]:
                lines.append(f"| {r['name']} | {r['kind']} | | {w['way']} | failed: {w.get('error')} | | {w['seconds']} |")
                continue
            printed = "—" if w["printed"] is None else f"{w['printed']:.1%} ({(w['printed_on'] or '')[:24]})"
            lines.append(f"| {r['name']} | {r['kind']} | {w['params_before']:,} | {w['way']} | {w['measured']:.1%} "
                         f"of {w['examples']} | {printed} | {w['seconds']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=Path, default=Path("/tmp/zoo39/inputs"))
    parser.add_argument("--corpus", type=Path, default=Path("/work/corpus/files"))
    parser.add_argument("--jsonl", type=Path, default=Path(__file__).with_name("nodata_zoo.jsonl"))
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--ways", nargs="*", default=list(WAYS), choices=list(WAYS))
    parser.add_argument("--extra", default="", help="more convert options, e.g. '--no-data-floor 0.8'")
    args = parser.parse_args(argv)
    manifest = json.loads((args.inputs / "manifest.json").read_text())
    records = []
    for entry in manifest["models"]:
        name = entry["model_file"]
        if args.only and not any(o in name for o in args.only):
            continue
        x = np.load(args.inputs / entry["inputs_file"]).astype("float32")
        with tempfile.TemporaryDirectory() as work:
            ways = run_one(args.corpus / name, x, Path(work), args.budget, bool(entry.get("trust")), args.ways,
                           args.extra.split())
        record = {"name": name, "kind": entry.get("kind") or str(entry.get("representation", ""))[:40], "inputs": entry.get("source", ""), "ways": ways,
                  "budget": args.budget, "extra": args.extra}
        records.append(record)
        print(json.dumps(record), flush=True)
        with open(args.jsonl, "a") as f:
            f.write(json.dumps(record) + "\n")
    print(table(records))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
