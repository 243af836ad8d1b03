"""The ``compare`` report: several models side by side.

Every latency is a median with its spread (the interquartile range) and the calls it took; the
models were timed in turns (``measure.measure_all``), and each one's ratio to the first carries a
verdict (``timing.verdict``): "faster" or "slower" only beyond the noise of both medians, else
"same within noise (±x%)". The headline compares one model with another (the second with the
first; in the int8 compare, compressed int8 with original int8).
"""

from __future__ import annotations

from dataclasses import asdict

from ..deploy.timing import verdict
from .render import SCHEMA_VERSION, Section, num, ratio, significant, size, time_unit, times_factor


def _verdict(base_latency, latency) -> dict:
    v = verdict(base_latency, latency)
    return {"batch": latency.batch, "ratio": round(v.ratio, 4), "noise": round(v.noise, 4), "word": v.word,
            "text": v.text()}


def compare_dict(measures, device, evaluations=None, agreements=None, layers=None, dataset=None, *,
                 labels=None, headline=None, notes=()) -> dict:
    """``measures``: measure.ModelMeasure per model (the first is the reference; each latency is
    given a verdict against the first's). ``labels``: column names (default: the file names).
    ``headline``: (model, against) indices of the pair the report's sentence is about (default:
    the second against the first when there are two). ``notes``: lines for the footnote."""
    base = measures[0]
    labels = labels or [m.path.rsplit("/", 1)[-1] for m in measures]
    models = []
    for i, m in enumerate(measures):
        entry = asdict(m)
        entry["label"] = labels[i]
        entry["ratios"] = {
            "params": ratio(m.params, base.params),
            "macs": ratio(m.macs, base.macs),
            "weight_bytes": ratio(m.weight_bytes, base.weight_bytes),
            "file_bytes": ratio(m.file_bytes, base.file_bytes),
            **{f"latency_batch_{lat.batch}": ratio(lat.median_ms, base_lat.median_ms)
               for lat, base_lat in zip(m.latency, base.latency)},
        }
        for timed, lat, base_lat in zip(entry["latency"], m.latency, base.latency):
            timed["verdict"] = None if i == 0 else _verdict(base_lat, lat)
        if evaluations:
            entry["evaluation"] = asdict(evaluations[i])
            entry["agreement"] = agreements[i] if agreements else None
        models.append(entry)
    if headline is None and len(measures) == 2:
        headline = (1, 0)
    return {"schema": SCHEMA_VERSION, "report": "compare", "device": device, "dataset": dataset,
            "models": models, "layers": layers or [], "notes": list(notes),
            "headline": None if headline is None else _headline(measures, models, *headline)}


def _headline(measures, models, new, base) -> dict:
    """Model ``new`` against model ``base``: a verdict per batch, the accuracy change, one sentence."""
    timed = [_verdict(b, n) for b, n in zip(measures[base].latency, measures[new].latency)]
    points = None
    if "evaluation" in models[new]:
        points = round((models[new]["evaluation"]["accuracy"] - models[base]["evaluation"]["accuracy"]) * 100, 4)
    parts = []
    for v in timed:
        factor, rest = v["text"].split(", ", 1)
        parts.append(f"{factor} at batch {v['batch']}, {rest}")
    if points is not None:
        parts.append(f"accuracy {points:+.1f} pts")
    text = f"{models[new]['label']} vs {models[base]['label']}: " + "; ".join(parts)
    return {"model": new, "against": base, "latency": timed, "accuracy_points": points, "text": text}


def _calls(models, j) -> str:
    counts = sorted({m["latency"][j]["repeats"] for m in models})
    return f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,}-{counts[-1]:,}"


def compare_sections(data: dict) -> list[Section]:
    models = data["models"]
    names = [m.get("label") or m["path"].rsplit("/", 1)[-1] for m in models]
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
        cells = [f"latency batch {lat['batch']} ({unit}), median (IQR)"]
        for m in models:
            timed = m["latency"][j]
            iqr = (timed["q3_ms"] - timed["q1_ms"]) if timed.get("q1_ms") is not None else 0.0
            cells.append(f"{significant(timed['median_ms'] * factor)} ({significant(iqr * factor)})")
        summary.rows.append(cells)
        summary.rows.append([f"batch {lat['batch']} vs first"]
                            + ["-" if m is base else m["latency"][j]["verdict"]["text"] for m in models])
    if "evaluation" in base:
        for label, key, fmt in (("accuracy", "accuracy", "{:.4f}"), ("loss", "loss", "{:.4f}")):
            cells = [label]
            for m in models:
                v = m["evaluation"][key]
                delta = "" if m is base else f" ({(v - base['evaluation'][key]) * (100 if key == 'accuracy' else 1):+.2f}{' pts' if key == 'accuracy' else ''})"
                cells.append(fmt.format(v) + delta)
            summary.rows.append(cells)
        summary.rows.append(["agreement with first"] + [f"{m['agreement']:.4f}" for m in models])
    if data.get("headline"):
        summary.lines.append(data["headline"]["text"])
    runtimes = sorted({m.get("runtime", "") for m in models})
    where = runtimes[0] if len(runtimes) == 1 else "each model's runtime (" + "; ".join(
        f"{n}: {m.get('runtime', '')}" for n, m in zip(names, models)) + ")"
    calls = " and ".join(f"{_calls(models, j)} calls at batch {lat['batch']}" for j, lat in enumerate(base["latency"]))
    summary.lines.append(
        f"latency: median (IQR) per model of {calls}, after {base['latency'][0]['warmup']} warm-up; the models "
        f"timed in turns (interleaved), so that ratios compare them under the same conditions; \"faster\" or "
        f"\"slower\" only beyond the noise of both medians; in {where}, on {data['device']}"
        + (f"; accuracy on the test images of {data['dataset']}" if data.get("dataset") else "")
    )
    summary.lines.extend(data.get("notes", []))
    slower = [f"{n} ({m['latency'][0]['verdict']['text']})" for n, m in zip(names, models)
              if m is not base and m["latency"][0].get("verdict") and m["latency"][0]["verdict"]["word"] == "slower"]
    if slower:
        summary.lines.append(f"note: slower than {names[0]} at batch 1 beyond the noise: {', '.join(slower)}; "
                             "compress never picks a factorisation measured slower than the layer it replaces "
                             "unless you pass --allow-slower")
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
