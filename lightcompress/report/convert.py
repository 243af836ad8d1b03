"""The ``convert`` report: the plan layer by layer, totals, the output difference, accuracy before and after."""

from __future__ import annotations

import math



from dataclasses import asdict


from .render import SCHEMA_VERSION, Section, energy_text, num, ratio, shape_text, size, times


def conversion_dict(conversion, source, output, file_bytes_before, file_bytes_after) -> dict:
    """The `convert` report as a JSON-ready dict."""
    c = conversion
    return {
        "schema": SCHEMA_VERSION,
        "report": "convert",
        "source": str(source),
        "output": str(output),
        "policy": c.plan.policy,
        "method": c.method,
        "calibration": None if c.calibration_seconds is None else {
            "samples": c.calibration_samples, "seconds": round(c.calibration_seconds, 3)},
        "layers": c.plan.to_dict()["layers"],
        "totals": {
            "params_before": c.params_before,
            "params_after": c.params_after,
            "params_ratio": ratio(c.params_after, c.params_before),
            "weight_bytes_before": c.weight_bytes_before,
            "weight_bytes_after": c.weight_bytes_after,
            "file_bytes_before": file_bytes_before,
            "file_bytes_after": file_bytes_after,
            "file_bytes_ratio": ratio(file_bytes_after, file_bytes_before),
            "layers_converted": len(c.plan.converted),
            "layers_skipped": len(c.plan.layers) - len(c.plan.converted),
        },
        "output_difference": None if c.difference is None else asdict(c.difference),
        "input_sizes": getattr(c, "input_sizes", None),
        "not_compared": getattr(c, "not_compared", None),
        "not_considered": list(getattr(c.plan, "not_considered", [])),
        "notes": list(c.plan.notes),
        "budget": c.plan.budget,
    }


BUDGET_UNITS = {"params": "params", "macs": "MACs", "latency": "latency"}


def budget_line(b) -> str:
    """What a budgeted plan keeps of the original's cost against its target: "MACs: 0.497 of the
    original's (target 0.5)"; for latency, planned from the per-layer times and measured whole."""
    if b.get("runtime") is None:  # counted from the model (params, MACs), not timed in a runtime
        return f"{BUDGET_UNITS[b['metric']]}: {b['planned']:.3f} of the original's (target {b['target']:g})"
    aimed = f", aimed at {b['aimed']:.3f}" if b.get("aimed") is not None else ""
    measured = (f", {b['measured']:.3f} measured whole" if b.get("measured") is not None else "")
    missed = ", missed: nothing cheaper was found" if b.get("measured", 0) > b["target"] else ""
    return (f"latency in {b['runtime']}: {b['planned']:.3f} of the original's planned from each layer's "
            f"times{aimed}{measured} (target {b['target']:g}{missed})")


def plan_section(title, layer_dicts) -> Section:
    """One row per layer of a plan: rank, mode, params before -> after, energy, error, and why."""
    outputs = any(layer.get("output_error") is not None for layer in layer_dicts)
    layers = Section(title, ["layer", "type", "kernel", ">rank", "mode", ">params", ">energy", ">error"]
                     + ([">output error"] if outputs else []))
    for layer in layer_dicts:
        converted = layer["rank"] is not None
        params = num(layer["params_before"])
        out_err = layer.get("output_error")
        layers.rows.append([
            layer["name"], layer["kind"], shape_text(layer["kernel_shape"]),
            layer["rank"] if converted else "-", layer["mode"] or "kept",
            f"{params} -> {num(layer['params_after'])}" if converted else params,
            energy_text(layer["energy"]) if converted else "", f"{layer['error']:.3f}" if converted else "",
        ] + ([f"{out_err:.3f}" if converted and out_err is not None else ""] if outputs else []))
        if layer["skipped"]:
            layers.lines.append(f"kept {layer['name']}: {layer['skipped']}")
        elif layer["note"]:
            layers.lines.append(f"{layer['name']}: {layer['note']}")
    layers.lines.append("energy: 1 - error²; error: relative error of the kernel the factors compute"
                        + ("; output error: relative error of the layer's outputs on the calibration images."
                           if outputs else "."))
    return layers


def difference_line(d) -> str:
    """Outputs vs the original, predictions first: a small relative difference of probabilities
    must not read as lossless when the top-1 class changed."""
    where = f"outputs vs original on {d['examples']} {d['source']}: "
    numbers = f"relative difference {d['relative']:.3g}, max abs {d['max_abs']:.3g}"
    if d.get("agreement") is None:
        return where + numbers
    changed = d.get("changed")
    if changed is None:
        changed = round((1 - d["agreement"]) * d["examples"])
    low, high = agreement_interval(d["examples"] - changed, d["examples"])
    interval = f"95% interval {low:.1%}-{high:.1%}"
    verdict = (f"same top-1 class on every example (agreement {interval})" if changed == 0 else
               f"top-1 class CHANGED on {changed} of {d['examples']} (agreement {d['agreement']:.1%}, {interval})")
    return f"{where}{verdict}; {numbers}{_caveat(d['source'])}"


def _caveat(source: str) -> str:
    """What an agreement on synthesised inputs is worth (docs/RESULTS.md, issue 39); random inputs
    have ``RANDOM_INPUTS_NOTE`` on a line of their own."""
    if source.startswith("inputs synthesised"):
        return ("; on synthesised inputs this read from 27 points below to 4 points above the agreement on real "
                "inputs, on real models")
    return ""


def agreement_interval(same: int, examples: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of an agreement of ``same`` in ``examples``: on 6 held-out
    samples, 6 of 6 says only that the agreement is likely above 61%.

    >>> [round(v, 3) for v in agreement_interval(6, 6)]
    [0.61, 1.0]
    """
    if examples <= 0:
        return 0.0, 1.0
    p, n = same / examples, examples
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


# Random inputs are noise, not the images the model learned: its classes on them mean little.
RANDOM_INPUTS_NOTE = (
    "note: random inputs are not the data the model was trained for, so a changed class here says "
    "little about accuracy (on real models their agreement was up to 78 points off); pass --dataset NAME (the model's data) to make the factors data-aware and "
    "compare on its test images, with accuracy before and after")


def not_considered_lines(rows) -> list[str]:
    """One line per (type, reason) of the weighted layers no factorisation considered."""
    groups: dict = {}
    for r in rows:
        g = groups.setdefault((r["kind"], r["reason"]), [0, 0, []])
        g[0] += 1
        g[1] += r["params"]
        g[2].append(r["name"])
    lines = []
    for (kind, reason), (count, params, names) in groups.items():
        which = names[0] if count == 1 else f"{count} layers, e.g. {names[0]}"
        lines.append(f"not considered: {kind} ({which}; {num(params)} params): {reason}")
    return lines


def conversion_sections(data: dict) -> list[Section]:
    layers = plan_section(f"convert ({data['policy']}, {data.get('method', 'svd')}): {data['source']}",
                          data["layers"])
    cal = data.get("calibration")
    if cal:
        on = cal.get("source", "training images")
        layers.lines.append(f"data-aware factors: calibrated on {cal['samples']:,} {on} in {cal['seconds']:.1f} s")
    made = data.get("synthesis")
    if made:
        layers.lines.append(
            f"no data set: {made['inputs']} calibration inputs synthesised from the statistics of "
            f"{made['batchnorm_layers']} BatchNorm layer(s) in {made['seconds']:.1f} s ({made['steps']} steps; "
            f"mismatch {made['mismatch_before']:.2f} -> {made['mismatch_after']:.2f}); a data set or samples of "
            "real inputs calibrate better")
    layers.lines.extend(data.get("notes", []))

    t = data["totals"]
    totals = Section("", ["", ">before", ">after", ">change"], [
        ["params", num(t["params_before"]), num(t["params_after"]), times(t["params_after"], t["params_before"])],
        ["weight bytes", size(t["weight_bytes_before"]), size(t["weight_bytes_after"]),
         times(t["weight_bytes_after"], t["weight_bytes_before"])],
        ["file bytes", size(t["file_bytes_before"]), size(t["file_bytes_after"]),
         times(t["file_bytes_after"], t["file_bytes_before"])],
    ])
    if t.get("optimizer_bytes_before"):
        totals.lines.append(
            f"file bytes: the input file also holds {size(t['optimizer_bytes_before'])} of optimizer state "
            "(the training run's optimizer weights), which the output does not keep; that is why the file "
            "shrinks more than the params")
    if data.get("budget"):
        totals.lines.append(budget_line(data["budget"]))
    difference = data["output_difference"]
    if difference is None:
        totals.lines.append(f"outputs not compared: {data.get('not_compared') or 'no inputs to compare on'}; pass "
                            f"--input-shape (one example's size, e.g. --input-shape 128 for a sequence length) or "
                            f"--dataset NAME to compare them")
    else:
        totals.lines.append(difference_line(difference))
        if data.get("input_sizes"):
            totals.lines.append(f"random {data['input_sizes']}")
        if difference["source"] == "random inputs":
            totals.lines.append(RANDOM_INPUTS_NOTE)
    totals.lines.extend(not_considered_lines(data.get("not_considered", [])))
    if "accuracy" in data:
        totals.lines.extend(before_after_lines(data["accuracy"], "the original", "converted"))
    totals.lines.append(f"{t['layers_converted']} layers converted, {t['layers_skipped']} kept; saved {data['output']}")
    return [layers, totals]


def before_after(before, after) -> dict:
    """Two Evaluations side by side, as stored under "accuracy" in convert and finetune reports."""
    return {"before": asdict(before), "after": asdict(after),
            "accuracy_change": round(after.accuracy - before.accuracy, 6)}


def accuracy_line(name, e):
    top5 = f", top-5 {e['top5_accuracy']:.4f}" if e.get("top5_accuracy") is not None else ""
    return f"{name}: accuracy {e['accuracy']:.4f}{top5}, loss {e['loss']:.4f} on {e['examples']:,} test images"


def before_after_lines(ba, before=None, after=None):
    """Accuracy before and after, and the change; ``before`` / ``after`` say what each model is."""
    label_before = "before" + (f" ({before})" if before else "")
    label_after = "after" + (f" ({after})" if after else "")
    width = max(len(label_before), len(label_after))
    against = f" against {before}" if before else ""
    return [accuracy_line(label_before.ljust(width), ba["before"]), accuracy_line(label_after.ljust(width), ba["after"]),
            f"accuracy change: {ba['accuracy_change'] * 100:+.2f} points{against}"]
