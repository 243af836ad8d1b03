"""The ``tradeoffs`` report: every candidate on one model measured alike, the Pareto fronts of
accuracy against file size and against latency, and one recommendation."""

from __future__ import annotations

from pathlib import Path

from ..deploy.timing import Latency, verdict
from .render import SCHEMA_VERSION, Section, num, significant, size, time_unit, times_factor

FRONTS = {"size": "file_bytes", "latency": "latency_batch_1"}
FRONT_COSTS = {"size": lambda entry: entry["file_bytes"],
               "latency": lambda entry: entry["latency"][0]["median_ms"] / entry["original_latency"][0]["median_ms"]}
FRONT_WORDS = {"size": "the file size", "latency": "the batch-1 latency"}


def measured(entry) -> bool:
    return entry.get("accuracy") is not None


def cost(entry, front) -> float:
    """File bytes, or the batch-1 latency as a fraction of the original's timed beside it, of a
    measured entry."""
    return FRONT_COSTS[front](entry)


def pareto(points) -> list:
    """For (cost, accuracy) pairs: True where no other pair costs at most as much with at least the
    accuracy, and is better in one of them (None: not placed)."""

    def beats(b, a):
        return b[0] <= a[0] and b[1] >= a[1] and (b[0] < a[0] or b[1] > a[1])

    placed = [p for p in points if None not in p]
    return [None not in p and not any(beats(q, p) for q in placed) for p in points]


def recommend(entries, max_drop) -> dict:
    """The smallest and the fastest (batch 1) candidate losing at most ``max_drop`` accuracy points
    against the original (the first entry), in one sentence."""
    base, others = entries[0], [e for e in entries[1:] if measured(e)]
    ref = base["accuracy"]
    within = f"within {max_drop:g} point{'' if max_drop == 1 else 's'} of the original's accuracy ({ref:.4f})"
    near = [e for e in others if (ref - e["accuracy"]) * 100 <= max_drop + 1e-9]
    if not near:
        if not others:
            return {"text": "No candidate could be measured; the lines above say why.", "smallest": None,
                    "fastest": None}
        closest = max(others, key=lambda e: e["accuracy"])
        return {"text": f"No candidate stays {within}: the closest is {closest['name']} ({closest['accuracy']:.4f}, "
                        f"{(closest['accuracy'] - ref) * 100:+.2f} pts); try more epochs or a larger budget.",
                "smallest": None, "fastest": None}
    smallest = min(near, key=lambda e: cost(e, "size"))
    fastest = min(near, key=lambda e: cost(e, "latency"))
    faster = verdict(Latency.from_dict(fastest["original_latency"][0]),
                     Latency.from_dict(fastest["latency"][0])).word == "faster"

    def said(e, front):
        ratio = times_factor(cost(e, front), cost(base, front))
        return f"{e['accuracy']:.4f}, {ratio} {FRONT_WORDS[front]}"

    if smallest is fastest and faster:
        text = (f"Recommended: {smallest['name']}, the smallest and the fastest candidate {within}: "
                f"{said(smallest, 'size')}, {times_factor(cost(fastest, 'latency'), cost(base, 'latency'))} the "
                f"batch-1 latency.")
    elif faster:
        text = (f"Within {max_drop:g} point{'' if max_drop == 1 else 's'} of the original's accuracy ({ref:.4f}), "
                f"the smallest is {smallest['name']} ({said(smallest, 'size')}) and the fastest at batch 1 is "
                f"{fastest['name']} ({said(fastest, 'latency')}).")
    else:
        text = (f"Within {max_drop:g} point{'' if max_drop == 1 else 's'} of the original's accuracy ({ref:.4f}), "
                f"the smallest is {smallest['name']} ({said(smallest, 'size')}); none is faster than the original "
                f"at batch 1 beyond the noise of the timings.")
    return {"text": text, "smallest": smallest["name"], "fastest": fastest["name"] if faster else None}


def tradeoffs_dict(source, model_sha256, dataset, entries, *, budgets, epochs, work_dir, baselines, max_drop,
                   optimizer_bytes=0, plot=None) -> dict:
    """``entries``: one dict per candidate (the original first), as ``flows.tradeoffs`` makes
    them; each gets ``pareto``: {"size": bool, "latency": bool}."""
    places = [e for e in entries if measured(e)]
    fronts = {front: pareto([(cost(e, front), e["accuracy"]) for e in places]) for front in FRONTS}
    for i, e in enumerate(places):
        e["pareto"] = {front: on[i] for front, on in fronts.items()}
    return {
        "schema": SCHEMA_VERSION,
        "report": "tradeoffs",
        "source": str(source),
        "model_sha256": model_sha256,
        "dataset": dataset,
        "budgets": list(budgets),
        "epochs": epochs,
        "device": entries[0].get("device"),
        "work_dir": str(work_dir),
        "plot": None if plot is None else str(plot),
        "baselines": baselines,
        "optimizer_bytes": optimizer_bytes,
        "max_drop": max_drop,
        "candidates": entries,
        "recommendation": recommend(entries, max_drop),
    }


def _runtimes(entries) -> str:
    kinds = {}
    for e in entries:
        kinds.setdefault("int8 .tflite files" if e["int8"] else "Keras models", e["runtime"])
    return ", ".join(f"{kind} in the {runtime}" for kind, runtime in kinds.items())


def tradeoffs_sections(data: dict) -> list:
    entries = data["candidates"]
    base = entries[0]
    places = [e for e in entries if measured(e)]
    units = [time_unit([e["latency"][j]["median_ms"] for e in places]) for j in range(len(base["latency"]))]
    columns = ["candidate", ">accuracy (pts)", ">params", ">file", *[
        f">batch {lat['batch']} ({unit})" for lat, (unit, _) in zip(base["latency"], units)], "front", "run"]
    table = Section(f"tradeoffs: {Path(data['source']).name} on {data['dataset']}, fine-tuned up to "
                    f"{data['epochs']} epoch(s) each", columns)
    for e in entries:
        if not measured(e):
            table.rows.append([e["name"], "-", "-", "-", *["-" for _ in units], "", e["status"]])
            continue
        first = e is base
        accuracy = f"{e['accuracy']:.4f}" + ("" if first else f" ({(e['accuracy'] - base['accuracy']) * 100:+.2f})")
        params = num(e["params"]) + (f" ({num(e['nonzero'])} non-zero)" if e["method"] == "prune" else "")
        file = size(e["file_bytes"]) + ("" if first else f" ({times_factor(e['file_bytes'], base['file_bytes'])})")
        times = [significant(lat["median_ms"] * factor)
                 + ("" if first else f" ({times_factor(lat['median_ms'], ref['median_ms'])})")
                 for lat, ref, (_, factor) in zip(e["latency"], e["original_latency"], units)]
        front = ", ".join(k for k in FRONTS if e["pareto"][k])
        table.rows.append([e["name"], accuracy, params, file, *times, front, e["status"]])
    table.lines.append(
        f"accuracy on the test images of {data['dataset']} (change from the original in points); file: bytes on "
        f"disk (x the original's); latency: median at each batch size on {data['device']}, {_runtimes(places)}; "
        f"its x is against the original timed beside each candidate, so it need not match the first row")
    table.lines.append("front: on the Pareto front of accuracy against file size / against batch-1 latency (no other "
                       "candidate is as small / as fast and at least as accurate)")
    if data.get("optimizer_bytes"):
        table.lines.append(f"the original file holds {size(data['optimizer_bytes'])} of optimizer state; the "
                           f"candidates' files hold none")
    if any(e["method"] in ("prune", "cluster") for e in places):
        table.lines.append("pruned and clustered models are stored dense: their file bytes and latency are the "
                           "original's (lightcompress baseline shows their gzip and int8 sizes)")
    if data.get("baselines"):
        table.lines.append(f"pruning and clustering: {data['baselines']}")
    for e in entries:
        if e.get("error"):
            table.lines.append(f"{e['name']}: {e['status']}: {e['error']}")
    counts = {s: sum(e["status"] == s for e in entries) for s in ("reused", "made", "measured")}
    table.lines.append(f"work folder {data['work_dir']}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
                       + "; the same command continues a stopped run")
    table.lines.append(data["recommendation"]["text"])
    return [table]
