"""Issue 17 benchmark: a VGG16-sized model (keras.applications.VGG16, weights=None: 138M params,
553 MB .keras) converted and inspected, against the floor of a plain Keras load + save of the
same file. Each command runs in its own process under /usr/bin/time -v (wall time, peak RSS),
one after another, so the ratios compare runs made minutes apart on the same machine.

    python benchmarks/scale_vgg16.py [--work /tmp/scale] [--tree PATH ...] [--rank 64]
        [--conv-mode auto] [--limit SECONDS] [--repeat N]

With ``--repeat N`` the floor and the commands run N times, interleaved (floor, convert,
inspect, floor, ...), and the table gives medians: a single floor varies by a third here
(page cache, disk writes), more than the differences measured.

``--tree`` (repeatable) runs the lightcompress in that source tree (PYTHONPATH), e.g. a checkout
of an older commit for a before/after table; default: this checkout. Nothing is written into
the repository; the model and outputs live under ``--work``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MAKE = """
import keras
keras.applications.VGG16(weights=None).save({path!r})
"""
FLOOR = """
import keras
keras.models.load_model({path!r}).save({out!r})
"""


def timed(args, env, log, limit=None):
    """(wall seconds, peak RSS bytes) of ``args`` run under /usr/bin/time -v; (None, None) when it
    ran past ``limit`` seconds and was stopped."""
    stats = Path(f"{log}.time")
    prefix = ["timeout", str(limit)] if limit else []
    with open(log, "w") as out:
        done = subprocess.run(["/usr/bin/time", "-v", "-o", str(stats), *prefix, *args], stdout=out,
                              stderr=subprocess.STDOUT, env=env)
    text = stats.read_text()
    if limit and done.returncode == 124:
        return None, None
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}); see {log}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    seconds = sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall.split(":"))))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) * 1024
    return seconds, rss


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/scale")
    parser.add_argument("--tree", action="append", default=None)
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--skip", action="append", default=[], help="convert or inspect")
    parser.add_argument("--conv-mode", action="append", default=None,
                        help="convert's --conv-mode, repeatable (default: the command's own default)")
    parser.add_argument("--limit", type=float, default=None, help="stop a command after this many seconds")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command; the table gives medians")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = work / "vgg16.keras"
    py = sys.executable
    if not model.exists():
        subprocess.run([py, "-c", MAKE.format(path=str(model))], check=True)
    rows = []
    for tree in args.tree or [str(ROOT)]:
        env = dict(os.environ, PYTHONPATH=tree, TF_CPP_MIN_LOG_LEVEL="2")
        os.chdir(tree)  # python -m takes the package from the working directory first
        tag = Path(tree).name
        commands = {"keras load + save (floor)": [py, "-c", FLOOR.format(path=str(model), out=str(work / "floor.keras"))]}
        for mode in ([] if "convert" in args.skip else args.conv_mode or [None]):
            extra = [] if mode is None else ["--conv-mode", mode]
            commands[" ".join(["convert --rank", str(args.rank), *extra])] = [
                py, "-m", "lightcompress", "convert", str(model), "--rank", str(args.rank), *extra,
                "-o", str(work / f"{tag}.light.keras"), "--force"]
        if "inspect" not in args.skip:
            commands["inspect"] = [py, "-m", "lightcompress", "inspect", str(model), "--json"]
        runs = {name: [] for name in commands}
        for i in range(args.repeat):
            for j, (name, command) in enumerate(commands.items()):
                runs[name].append(timed(command, env, work / f"{tag}.{j}.{i}.log", args.limit if j else None))
        floor = tuple(statistics.median(v) for v in zip(*runs["keras load + save (floor)"]))
        for name, measured in runs.items():
            if any(wall is None for wall, _ in measured):
                rows.append((tag, name, None, None, floor, []))
                continue
            walls = [wall for wall, _ in measured]
            rows.append((tag, name, statistics.median(walls), statistics.median(r for _, r in measured), floor, walls))
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(f"medians of {args.repeat} run(s) each")
    print("| tree | command | wall | peak RSS | time / floor | memory / floor | walls |")
    print("|---|---|---|---|---|---|---|")
    for tag, name, wall, rss, (fwall, frss), walls in rows:
        if wall is None:
            print(f"| {tag} | {name} | stopped after {args.limit:.0f} s | | > {args.limit / fwall:.1f}x | | |")
            continue
        print(f"| {tag} | {name} | {wall:.1f} s | {rss / 2**30:.2f} GiB | {wall / fwall:.2f}x | {rss / frss:.2f}x | "
              f"{', '.join(f'{w:.1f}' for w in walls)} |")

if __name__ == "__main__":
    main()
