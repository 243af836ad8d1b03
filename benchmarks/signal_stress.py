"""Signals at many delays, as a hostile user or a busy machine delivers them (issue 26): SIGINT and
SIGTERM sent to `lightcompress finetune` and `compress` at each delay; every run must end with its
signal's exit code (130, 143) and one error line, no traceback.

    python benchmarks/signal_stress.py 0.3,0.8,1.5,2.2,3,4,5,6,8 [--load 2]

--load N starts N busy loops for the run (a loaded machine stretches start-up, where TensorFlow's
import once raced the signal). Prints one line per run and the tally; exit 1 if any run was wrong.
"""

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "sample_models" / "digits_mlp.keras"
RUNS = {"finetune": ["--epochs", "500", "--patience", "500"],
        "compress": ["--target-params", "0.5", "--epochs", "500", "--allow-slower", "--no-cache", "--runtime", "keras"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("delays", help="seconds after the start, separated by commas")
    parser.add_argument("--load", type=int, default=0, help="busy loops to run meanwhile")
    args = parser.parse_args(argv)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    tally, bad = collections.Counter(), []
    try:
        for when in [float(d) for d in args.delays.split(",")]:
            for command, extra in RUNS.items():
                for signame, code in (("SIGINT", 130), ("SIGTERM", 143)):
                    folder = Path(tempfile.mkdtemp(prefix="lc-signal-"))
                    shutil.copy(SAMPLE, folder / "in.keras")
                    proc = subprocess.Popen([sys.executable, "-m", "lightcompress", command, "in.keras", "--dataset",
                                             "digits", *extra, "-o", "out.keras"], cwd=folder,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    time.sleep(when)
                    proc.send_signal(getattr(signal, signame))
                    _, err = proc.communicate(timeout=300)
                    lines = [line for line in err.splitlines() if line.strip()]
                    ok = (proc.returncode == code and "Traceback" not in err and bool(lines)
                          and lines[-1].startswith(f"error: interrupted ({signame})")
                          and sum(line.startswith("error") for line in lines) == 1)
                    tally[ok] += 1
                    print(f"{when:5.2f} s {command:8s} {signame:7s} exit {proc.returncode:4d} "
                          f"{'ok' if ok else 'WRONG'}: {lines[-1][:110] if lines else '<no output>'}", flush=True)
                    if not ok:
                        bad.append(err[-1500:])
                    shutil.rmtree(folder, ignore_errors=True)
    finally:
        for p in busy:
            p.kill()
    print(f"{tally[True]} of {sum(tally.values())} correct")
    for err in bad:
        print("---\n" + err)
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
