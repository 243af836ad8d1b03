"""The ``compare`` report: several models side by side."""

from __future__ import annotations



from dataclasses import asdict


from .render import SCHEMA_VERSION, Section, num, ratio, significant, size, time_unit, times_factor


def compare_dict(measures, device, evaluations=None, agreements=None, layers=None, dataset=None) -> dict:
    """``measures``: measure.ModelMeasure per model (the first is the reference)."""
    base = measures[0]
    models = []
    for i, m in enumerate(measures):
        entry = asdict(m)
        entry["ratios"] = {
            "params": ratio(m.params, base.params),
            "macs": ratio(m.macs, base.macs),
            "weight_bytes": ratio(m.weight_bytes, base.weight_bytes),
            "file_bytes": ratio(m.file_bytes, base.file_bytes),
            **{f"latency_batch_{lat.batch}": ratio(lat.median_ms, base_lat.median_ms)
               for lat, base_lat in zip(m.latency, base.latency)},
        }
        if evaluations:
            entry["evaluation"] = asdict(evaluations[i])
            entry["agreement"] = agreements[i] if agreements else None
        models.append(entry)
    return {"schema": SCHEMA_VERSION, "report": "compare", "device": device, "dataset": dataset,
            "models": models, "layers": layers or []}


def compare_sections(data: dict) -> list[Section]:
    models = data["models"]
    names = [m["path"].rsplit("/", 1)[-1] for m in models]
    base = models[0]
    summary = Section("compare: " + " vs ".join(names), [""] + [">" + n for n in names])

    def row(label, key, fmt):
        if all(m[key] is None for m in models):  # e.g. params of exported artefacts: not known
            return
        cells = [label]
        for m in models:
            value = m[key]
            cells.append(fmt(value) + ("" if m is base or value is None else f" ({times_factor(value, base[key])})"))
        summary.rows.append(cells)

    row("params", "params", num)
    row("trainable params", "trainable_params", num)
    row("MACs per example", "macs", num)
    row("weight bytes", "weight_bytes", size)
    row("file bytes", "file_bytes", size)
    for j, lat in enumerate(base["latency"]):
        unit, factor = time_unit([m["latency"][j]["median_ms"] for m in models])
        cells = [f"latency batch {lat['batch']} ({unit})"]
        for m in models:
            ms = m["latency"][j]["median_ms"]
            cells.append(significant(ms * factor) + ("" if m is base else f" ({times_factor(ms, lat['median_ms'])})"))
        summary.rows.append(cells)
    if "evaluation" in base:
        for label, key, fmt in (("accuracy", "accuracy", "{:.4f}"), ("loss", "loss", "{:.4f}")):
            cells = [label]
            for m in models:
                v = m["evaluation"][key]
                delta = "" if m is base else f" ({(v - base['evaluation'][key]) * (100 if key == 'accuracy' else 1):+.2f}{' pts' if key == 'accuracy' else ''})"
                cells.append(fmt.format(v) + delta)
            summary.rows.append(cells)
        summary.rows.append(["agreement with first"] + [f"{m['agreement']:.4f}" for m in models])
    reps = base["latency"][0]
    runtimes = sorted({m.get("runtime", "") for m in models})
    where = runtimes[0] if len(runtimes) == 1 else "each model's runtime (" + "; ".join(
        f"{n}: {m.get('runtime', '')}" for n, m in zip(names, models)) + ")"
    summary.lines.append(
        f"latency: median of {reps['repeats']} calls after {reps['warmup']} warm-up, in {where}, on {data['device']}"
        + (f"; accuracy on the test images of {data['dataset']}" if data.get("dataset") else "")
    )
    if any(m is not base and m["latency"][0]["median_ms"] > reps["median_ms"] * 1.05 for m in models):
        summary.lines.append("note: a model slower than the first at batch 1 is shown as such (>1x); "
                             "compress never picks such a layer unless you pass --allow-slower")
    not_counted = sorted({k for m in models for k in m["not_counted"]})
    if not_counted:
        summary.lines.append("MACs not counted (as zero) for: " + ", ".join(not_counted))
    sections = [summary]
    if data["layers"]:
        per_layer = Section("per layer", ["layer"] + [">" + n for n in names])
        for layer in data["layers"]:
            cells = [layer["name"]]
            for entry in layer["models"]:
                if entry is None:
                    cells.append("-")
                elif entry["rank"] is None:
                    cells.append(f"{entry['kind']} {num(entry['params'])}")
                else:
                    cells.append(f"{entry['kind']} r{entry['rank']} {entry['mode']} {num(entry['params'])}")
            per_layer.rows.append(cells)
        per_layer.lines.append("each cell: layer type, rank and mode for LightLayers, params")
        sections.append(per_layer)
    return sections
