"""The one module that renders results: JSON-ready dicts, rich tables, and Markdown.

Each report is first built as a dict with stable keys (the JSON form, documented in README.md).
The dict is then laid out once as a list of ``Section`` (a titled table plus lines of text), and
that layout is drawn either with rich (terminal) or as Markdown, so the forms never disagree.
Pictures are drawn by ``plots.py`` from the same dicts.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from rich import box
from rich.console import Console
from rich.table import Table

from ..factorization.candidates import not_counted

SCHEMA_VERSION = 1


@dataclass
class Section:
    title: str = ""
    columns: list = field(default_factory=list)  # names; a leading ">" right-aligns
    rows: list = field(default_factory=list)
    lines: list = field(default_factory=list)  # text printed after the table


def render(sections, console: Console | None = None):
    console = console or Console()
    for s in sections:
        if s.columns:
            table = Table(title=s.title or None, title_justify="left", box=box.SIMPLE_HEAD,
                          pad_edge=False, collapse_padding=True)
            for c in s.columns:
                right = c.startswith(">")
                table.add_column(c.lstrip(">"), justify="right" if right else "left",
                                 overflow="fold", no_wrap=right)
            for row in s.rows:
                table.add_row(*[str(v) for v in row])
            console.print(table)
        elif s.title:
            console.print(f"[bold]{s.title}[/bold]")
        for line in s.lines:
            console.print(line, highlight=False, markup=False)


def markdown(sections) -> str:
    out = []
    for s in sections:
        if s.title:
            out.append(f"### {s.title}\n")
        if s.columns:
            out.append("| " + " | ".join(c.lstrip(">") for c in s.columns) + " |")
            out.append("|" + "|".join("---:" if c.startswith(">") else "---" for c in s.columns) + "|")
            for row in s.rows:
                out.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
            out.append("")
        out.extend(f"{line}  " for line in s.lines)
        if s.lines:
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def print_json(data: dict):
    """One JSON document on stdout (no colours, no wrapping)."""
    print(json.dumps(data, indent=2))


# -- number formats ---------------------------------------------------------------------------

def _ratio(after, before):
    return round(after / before, 4) if before and after is not None else None


def _num(n):
    return f"{n:,}" if n is not None else "-"


def _bytes(n):
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024


def _times(after, before):
    if not before or not after:
        return "-"
    if round(before / after, 2) == 1 and round(after / before, 2) == 1:
        return "about the same"
    return f"{before / after:.2f}x smaller" if after < before else f"{after / before:.2f}x larger"


def _sig(v) -> str:
    """At least three significant digits, thousands separated: 2.13, 46.9, 469, 12,345."""
    if v == 0:
        return "0"
    decimals = max(0, 2 - math.floor(math.log10(abs(v))))
    return f"{v:,.{decimals}f}"


def _time_unit(values_ms) -> tuple[str, float]:
    """µs when the smallest time is under 1 ms, else ms: (unit, factor from ms)."""
    known = [v for v in values_ms if v]
    return ("µs", 1000.0) if known and min(known) < 1 else ("ms", 1.0)


def _duration(ms) -> str:
    """A time in µs or ms with at least three significant digits: "2.13 µs", "1.25 ms"."""
    if ms is None:
        return "-"
    unit, factor = _time_unit([ms])
    return f"{_sig(ms * factor)} {unit}"


def _x(after, before):
    """A change as a factor: 0.25x."""
    return f"{after / before:.3g}x" if before and after is not None else "-"


def _shape(shape):
    return "x".join(str(d) for d in shape) if shape else "-"


# -- convert ----------------------------------------------------------------------------------

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
        "layers": [{**asdict(p), "kernel_shape": list(p.kernel_shape)} for p in c.plan.layers],
        "totals": {
            "params_before": c.params_before,
            "params_after": c.params_after,
            "params_ratio": _ratio(c.params_after, c.params_before),
            "weight_bytes_before": c.weight_bytes_before,
            "weight_bytes_after": c.weight_bytes_after,
            "file_bytes_before": file_bytes_before,
            "file_bytes_after": file_bytes_after,
            "file_bytes_ratio": _ratio(file_bytes_after, file_bytes_before),
            "layers_converted": len(c.plan.converted),
            "layers_skipped": len(c.plan.layers) - len(c.plan.converted),
        },
        "output_difference": asdict(c.difference),
        "not_considered": list(getattr(c.plan, "not_considered", [])),
    }


def plan_section(title, layer_dicts) -> Section:
    """One row per layer of a plan: rank, mode, params before -> after, energy, error, and why."""
    outputs = any(layer.get("output_error") is not None for layer in layer_dicts)
    layers = Section(title, ["layer", "type", "kernel", ">rank", "mode", ">params", ">energy", ">error"]
                     + ([">output error"] if outputs else []))
    for layer in layer_dicts:
        converted = layer["rank"] is not None
        params = _num(layer["params_before"])
        out_err = layer.get("output_error")
        layers.rows.append([
            layer["name"], layer["kind"], _shape(layer["kernel_shape"]),
            layer["rank"] if converted else "-", layer["mode"] or "kept",
            f"{params} -> {_num(layer['params_after'])}" if converted else params,
            _energy(layer["energy"]) if converted else "", f"{layer['error']:.3f}" if converted else "",
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
    verdict = ("same top-1 class on every example" if changed == 0 else
               f"top-1 class CHANGED on {changed} of {d['examples']} (agreement {d['agreement']:.1%})")
    return f"{where}{verdict}; {numbers}"


# Random inputs are noise, not the images the model learned: its classes on them mean little.
RANDOM_INPUTS_NOTE = (
    "note: random inputs are not the data the model was trained for, so a changed class here says "
    "little about accuracy; pass --dataset NAME (the model's data) to make the factors data-aware and "
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
        lines.append(f"not considered: {kind} ({which}; {_num(params)} params): {reason}")
    return lines


def _energy(v) -> str:
    """A kept energy fraction, never rounded up to 1 when some energy was dropped."""
    text = f"{v:.3f}"
    if v < 1 and text == "1.000":
        digits = 4
        while f"{v:.{digits}f}" == "1." + "0" * digits and digits < 12:
            digits += 1
        text = f"{v:.{digits}f}"
    return text


def conversion_sections(data: dict) -> list[Section]:
    layers = plan_section(f"convert ({data['policy']}, {data.get('method', 'svd')}): {data['source']}",
                          data["layers"])
    cal = data.get("calibration")
    if cal:
        layers.lines.append(f"data-aware factors: calibrated on {cal['samples']:,} training images in "
                            f"{cal['seconds']:.1f} s")

    t = data["totals"]
    totals = Section("", ["", ">before", ">after", ">change"], [
        ["params", _num(t["params_before"]), _num(t["params_after"]), _times(t["params_after"], t["params_before"])],
        ["weight bytes", _bytes(t["weight_bytes_before"]), _bytes(t["weight_bytes_after"]),
         _times(t["weight_bytes_after"], t["weight_bytes_before"])],
        ["file bytes", _bytes(t["file_bytes_before"]), _bytes(t["file_bytes_after"]),
         _times(t["file_bytes_after"], t["file_bytes_before"])],
    ])
    if t.get("optimizer_bytes_before"):
        totals.lines.append(
            f"file bytes: the input file also holds {_bytes(t['optimizer_bytes_before'])} of optimizer state "
            "(the training run's optimizer weights), which the output does not keep; that is why the file "
            "shrinks more than the params")
    totals.lines.append(difference_line(data["output_difference"]))
    if data["output_difference"]["source"] == "random inputs":
        totals.lines.append(RANDOM_INPUTS_NOTE)
    totals.lines.extend(not_considered_lines(data.get("not_considered", [])))
    if "accuracy" in data:
        totals.lines.extend(_before_after_lines(data["accuracy"], "the original", "converted"))
    totals.lines.append(f"{t['layers_converted']} layers converted, {t['layers_skipped']} kept; saved {data['output']}")
    return [layers, totals]


# -- finetune and evaluate --------------------------------------------------------------------

def before_after(before, after) -> dict:
    """Two Evaluations side by side, as stored under "accuracy" in convert and finetune reports."""
    return {"before": asdict(before), "after": asdict(after),
            "accuracy_change": round(after.accuracy - before.accuracy, 6)}


def _accuracy_line(name, e):
    top5 = f", top-5 {e['top5_accuracy']:.4f}" if e.get("top5_accuracy") is not None else ""
    return f"{name}: accuracy {e['accuracy']:.4f}{top5}, loss {e['loss']:.4f} on {e['examples']:,} test images"


def _before_after_lines(ba, before=None, after=None):
    """Accuracy before and after, and the change; ``before`` / ``after`` say what each model is."""
    label_before = "before" + (f" ({before})" if before else "")
    label_after = "after" + (f" ({after})" if after else "")
    width = max(len(label_before), len(label_after))
    against = f" against {before}" if before else ""
    return [_accuracy_line(label_before.ljust(width), ba["before"]), _accuracy_line(label_after.ljust(width), ba["after"]),
            f"accuracy change: {ba['accuracy_change'] * 100:+.2f} points{against}"]


def finetune_dict(source, output, prepared, fit, before, after) -> dict:
    """The `finetune` report (also the history file saved beside the model)."""
    return {
        "schema": SCHEMA_VERSION,
        "report": "finetune",
        "source": str(source),
        "output": str(output),
        "dataset": prepared.name,
        "train_images": prepared.count("train"),
        "heldout_images": int(round(prepared.count("train") * fit.settings.validation_split)),
        "data_changes": prepared.changes,
        "device": fit.device,
        "engine": fit.engine,
        "devices": fit.devices,
        "settings": asdict(fit.settings),
        "epochs_run": fit.epochs_run,
        "best_epoch": fit.best_epoch,
        "interrupted": fit.interrupted,
        "started_from_input": fit.started_from_input,
        "epoch_seconds": [round(s, 3) for s in fit.epoch_seconds],
        "learning_rates": fit.learning_rates,
        "history": fit.history,
        "accuracy": before_after(before, after),
    }


def finetune_sections(data: dict) -> list[Section]:
    lines = []
    if data.get("started_from_input"):
        lines.append("interrupted before the first epoch completed: the weights are the input's, unchanged")
    elif data["interrupted"]:
        lines.append("interrupted: kept the best weights of the completed epochs")
    seconds = data["epoch_seconds"]
    per_epoch = f"{sum(seconds) / len(seconds):.1f} s per epoch" if seconds else "no full epoch"
    held = data.get("heldout_images") or 0
    images = (f"{data['train_images'] - held:,} training images, {held:,} held out for validation" if held
              else f"{data['train_images']:,} training images")
    lines.append(
        f"fine-tuned {data['source']} on {data['dataset']} ({images}): "
        f"{data['epochs_run']} epoch(s), best {data['best_epoch']}, {per_epoch} on {data['device']}"
    )
    if data["data_changes"]:
        lines.append("data: " + "; ".join(data["data_changes"]))
    lines.extend(_before_after_lines(data["accuracy"], f"the input, {data['source']}", "fine-tuned"))
    lines.append(f"saved {data['output']}")
    return [Section(lines=lines)]


def evaluation_dict(source, prepared, evaluation, device) -> dict:
    return {
        "schema": SCHEMA_VERSION,
        "report": "evaluate",
        "source": str(source),
        "dataset": prepared.name,
        "data_changes": prepared.changes,
        "device": device,
        **asdict(evaluation),
    }


def evaluation_sections(data: dict) -> list[Section]:
    return [Section(lines=[_accuracy_line(f"{data['source']} on {data['dataset']}", data),
                           f"{data['seconds']:.2f} s on {data['device']}"])]


# -- inspect ----------------------------------------------------------------------------------

def inspect_dict(source, stats, spectra, conv_mode) -> dict:
    """``stats``: analyze.LayerStats rows; ``spectra``: {layer name: analyze.SpectrumSummary}."""
    layers = []
    for s in stats:
        entry = asdict(s)
        summary = spectra.get(s.name)
        entry["spectrum"] = None if summary is None else {
            **asdict(summary), "matrix_shape": list(summary.matrix_shape)}
        layers.append(entry)
    counted = [s for s in stats if s.macs is not None]
    return {
        "schema": SCHEMA_VERSION,
        "report": "inspect",
        "source": str(source),
        "conv_mode": conv_mode,
        "layers": layers,
        "totals": {
            "params": int(sum(s.params for s in stats)),
            # None when a counted layer's size is unknown (an input of free size): no false total
            "macs": None if any(s.size_unknown for s in stats) else int(sum(s.macs for s in counted)),
            "not_counted": not_counted(stats),
        },
    }


def inspect_sections(data: dict) -> list[Section]:
    table = Section(f"inspect: {data['source']}",
                    ["layer", "type", "output", ">params", ">MACs", ">r90", ">r95", ">r99", ">break-even",
                     ">params@r95"])
    for layer in data["layers"]:
        sp = layer["spectrum"]
        ranks = sp["energy_ranks"] if sp else {}
        table.rows.append([
            layer["name"], layer["kind"], _shape(layer["output_shape"]), _num(layer["params"]),
            _num(layer["macs"]) if layer["macs"] is not None else "-",
            ranks.get("0.9", ""), ranks.get("0.95", ""), ranks.get("0.99", ""),
            sp["break_even_rank"] if sp else "",
            _num(sp["energy_params"]["0.95"]) if sp else "",
        ])
    t = data["totals"]
    table.lines = [
        f"total: {_num(t['params'])} params, "
        + (f"{_num(t['macs'])} MACs per example" if t["macs"] is not None else
           "MACs unknown: the input size is not fixed (give the model a fixed input shape)")
        + (f" (not counted, as zero: {', '.join(t['not_counted'])})" if t["not_counted"] else ""),
        f"rN: smallest rank keeping N% of the spectral energy ({data['conv_mode']} mode for Conv2D); "
        "break-even: largest rank that still saves parameters; params@r95: the layer's cost at r95.",
    ]
    compressible = [layer for layer in data["layers"] if layer["spectrum"]]
    for layer in compressible:
        sp = layer["spectrum"]
        r95 = sp["energy_ranks"]["0.95"]
        verdict = (f"it is {_times(sp['energy_params']['0.95'], layer['params'])} "
                   f"({_num(sp['energy_params']['0.95'])} of {_num(layer['params'])} params)"
                   if r95 <= sp["break_even_rank"] else "it would not save parameters")
        table.lines.append(f"{layer['name']}: at 95% energy (rank {r95}) {verdict}")
    return [table]


# -- compare ----------------------------------------------------------------------------------

def compare_dict(measures, device, evaluations=None, agreements=None, layers=None, dataset=None) -> dict:
    """``measures``: measure.ModelMeasure per model (the first is the reference)."""
    base = measures[0]
    models = []
    for i, m in enumerate(measures):
        entry = asdict(m)
        entry["ratios"] = {
            "params": _ratio(m.params, base.params),
            "macs": _ratio(m.macs, base.macs),
            "weight_bytes": _ratio(m.weight_bytes, base.weight_bytes),
            "file_bytes": _ratio(m.file_bytes, base.file_bytes),
            **{f"latency_batch_{lat.batch}": _ratio(lat.median_ms, base_lat.median_ms)
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
            cells.append(fmt(value) + ("" if m is base or value is None else f" ({_x(value, base[key])})"))
        summary.rows.append(cells)

    row("params", "params", _num)
    row("trainable params", "trainable_params", _num)
    row("MACs per example", "macs", _num)
    row("weight bytes", "weight_bytes", _bytes)
    row("file bytes", "file_bytes", _bytes)
    for j, lat in enumerate(base["latency"]):
        unit, factor = _time_unit([m["latency"][j]["median_ms"] for m in models])
        cells = [f"latency batch {lat['batch']} ({unit})"]
        for m in models:
            ms = m["latency"][j]["median_ms"]
            cells.append(_sig(ms * factor) + ("" if m is base else f" ({_x(ms, lat['median_ms'])})"))
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
                    cells.append(f"{entry['kind']} {_num(entry['params'])}")
                else:
                    cells.append(f"{entry['kind']} r{entry['rank']} {entry['mode']} {_num(entry['params'])}")
            per_layer.rows.append(cells)
        per_layer.lines.append("each cell: layer type, rank and mode for LightLayers, params")
        sections.append(per_layer)
    return sections


# -- compress and sensitivity -----------------------------------------------------------------

def sensitivity_sections(sens: dict) -> list[Section]:
    """The sensitivity table: per layer and rank, loss and accuracy with only that layer changed."""
    table = Section(
        f"sensitivity on {sens['examples']:,} held-out training images "
        f"(base loss {sens['base_loss']:.4f}, accuracy {sens['base_accuracy']:.4f})",
        ["layer", ">rank", "mode", ">params", ">loss change", ">accuracy"],
    )
    for layer in sens["layers"]:
        for o in layer["options"][1:]:
            table.rows.append([layer["name"], o["rank"], o["mode"], _num(o["params"]),
                               f"{o['loss'] - sens['base_loss']:+.4f}", f"{o['accuracy']:.4f}"])
    table.lines.extend(f"not analysed: {name}: {reason}" for name, reason in sens["skipped"].items())
    source = "read from the cache" if sens["from_cache"] else (
        f"{sens['evaluations']} evaluations in {sens['seconds']:.1f} s")
    table.lines.append(f"analysis ({sens.get('method', 'svd')} factors): {source} "
                       f"({sens['cache_file'] or 'not cached'})")
    return [table]


def errors_sections(errors: dict) -> list[Section]:
    """Per layer at the chosen rank: weight-space and output-space errors, plain SVD and data-aware."""
    table = Section(f"errors at the chosen rank ({errors['rank_from']}), outputs on {errors['samples']:,} "
                    f"training images of {errors['dataset']}",
                    ["layer", "mode", ">rank", ">svd weight", ">svd output", ">data-aware weight", ">data-aware output"])
    for r in errors["layers"]:
        table.rows.append([r["name"], r["mode"], r["rank"], f"{r['svd_weight_error']:.3f}",
                           f"{r['svd_output_error']:.3f}", f"{r['data_aware_weight_error']:.3f}",
                           f"{r['data_aware_output_error']:.3f}"])
    table.lines.append(f"relative errors: ||W - W_r|| / ||W|| (weight) and ||X(W - W_r)|| / ||XW|| (output); "
                       f"calibration pass {errors['seconds']:.1f} s")
    return [table]


def compress_dict(result, compare, plan_path, output) -> dict:
    return {
        "schema": SCHEMA_VERSION,
        "report": "compress",
        "output": str(output),
        "plan_file": str(plan_path),
        "goal": {"metric": result.metric, "target": result.target},
        "trials": [asdict(t) for t in result.trials],
        "sensitivity": {k: v for k, v in result.sensitivity.to_dict().items() if k != "layers"},
        "plan": result.plan.to_dict(),
        "method": result.plan.method,
        "calibration": None if result.statistics is None else {
            "samples": result.statistics.samples, "seconds": round(result.statistics.seconds, 3)},
        "finetune": {"epochs_run": result.fit.epochs_run, "best_epoch": result.fit.best_epoch,
                     "epoch_seconds": [round(s, 3) for s in result.fit.epoch_seconds],
                     "device": result.fit.device, "engine": result.fit.engine, "devices": result.fit.devices,
                     "interrupted": result.fit.interrupted,
                     "history": result.fit.history},
        "compare": compare,
        "latency_profile": None if result.profile is None else profile_dict(result.profile),
    }


def profile_dict(profile) -> dict:
    """A latency profile (see ``latency.Profile``) as a JSON-ready dict."""
    return asdict(profile)


def latency_sections(p: dict) -> list[Section]:
    """Per layer: batch-1 time as it is and at each timed (rank, mode), in the profiled runtime."""
    table = Section(f"latency per layer, batch 1, {p['runtime']} ({p['threads']} threads)",
                    ["layer", ">as it is (µs)", "options: rank mode µs (ratio)"])
    for ls in p["layers"]:
        base = ls["options"][0]["ms"]
        opts = ", ".join(f"r{o['rank']} {o['mode']} {_sig(o['ms'] * 1000)} ({o['ms'] / base:.2f}x)"
                         for o in ls["options"][1:])
        table.rows.append([ls["name"], _sig(base * 1000), opts])
    source = "read from the cache" if p["from_cache"] else f"measured in {p['seconds']:.1f} s"
    table.lines.append(f"whole model: {_sig(p['model_ms'] * 1000)} µs; each layer timed alone, net of the "
                       f"runtime's per-call overhead; {source} ({p['cache_file'] or 'not cached'})")
    return [table]


def compress_sections(data: dict) -> list[Section]:
    goal = data["goal"]
    plan = plan_section(f"compress plan ({data['plan']['policy']}, {data['plan'].get('method', 'svd')})",
                        data["plan"]["layers"])
    cal = data.get("calibration")
    if cal:
        plan.lines.append(f"data-aware factors: calibrated on {cal['samples']:,} training images in "
                          f"{cal['seconds']:.1f} s")
    s = data["sensitivity"]
    plan.lines.append(
        f"sensitivity: {'cache' if s['from_cache'] else str(s['evaluations']) + ' evaluations'}, "
        f"{s['seconds']:.1f} s; plan saved to {data['plan_file']} (convert can apply it again)"
    )
    for t in data["trials"]:
        plan.lines.append(f"trial: keep {t['target']:.3f} of params -> {t['params']:,} params, held-out "
                          f"accuracy {t['heldout_accuracy']:.4f} (drop {t['drop_points']:.2f} pts) "
                          f"{'ok' if t['passed'] else 'too much'}")
    f = data["finetune"]
    per_epoch = f"{sum(f['epoch_seconds']) / len(f['epoch_seconds']):.1f} s/epoch" if f["epoch_seconds"] else ""
    plan.lines.append(f"fine-tuned {f['epochs_run']} epoch(s) (best {f['best_epoch']}), {per_epoch} on {f['device']}"
                      f"; goal: {goal['metric']} {goal['target']:g}; saved {data['output']}")
    sections = [plan] + compare_sections(data["compare"])
    if data.get("latency_profile"):
        lp = data["latency_profile"]
        plan.lines.append(f"latency guard: each layer's options timed in {lp['runtime']} ({lp['threads']} threads); "
                          f"none measured slower than the layer it replaces was chosen"
                          if "latency guard" in data["plan"]["policy"] else
                          f"latency measured in {lp['runtime']} ({lp['threads']} threads)")
    if data.get("export"):
        sections += export_sections(data["export"])
    return sections


# -- export -----------------------------------------------------------------------------------

def _pct(v):
    return "-" if v is None else f"{100 * v:.2f}%"


def export_dict(source, result, prepared) -> dict:
    """The ``export`` report as a JSON-ready dict."""
    return {
        "schema": SCHEMA_VERSION,
        "report": "export",
        "source": str(source),
        "dataset": None if prepared is None else prepared.name,
        **result.to_dict(),
    }


def export_sections(data: dict) -> list:
    v = data["verification"]
    lat = v["latency"]
    rows = [
        ("format", data["format"]),
        ("quantize", data["quantize"] + (" (int8 input/output)" if data["int8_io"] else "")),
        ("file", data["path"]),
        ("file bytes", f"{data['file_bytes']:,} ({_bytes(data['file_bytes'])})"),
        ("LightLayers lowered", data["lowered_layers"]),
        ("outputs vs Keras", f"max abs diff {v['max_abs_diff']:.3g}, relative {v['relative_diff']:.3g} "
                             f"on {v['examples']:,} {v['source']}"),
        ("top-1 agreement", _pct(v["agreement"])),
    ]
    if v["accuracy"] is not None:
        rows.append(("accuracy", f"{_pct(v['accuracy'])} (Keras model {_pct(v['reference_accuracy'])})"))
    if data["calibration_examples"]:
        rows.append(("calibration", f"{data['calibration_examples']} training images"))
    rows.append(("latency, batch 1", f"{_duration(lat['median_ms'])} median of {lat['repeats']} ({v['runtime']})"))
    verdict = ("matches the model within float tolerance" if v["within_tolerance"]
               else "quantised: differs from the float model as reported above")
    return [Section(title=f"export {data['source']}", columns=["", "value"], rows=rows, lines=[verdict])]


# -- baseline (tfmot pruning, clustering, QAT) -------------------------------------------------

def baseline_dict(source, output, result, prepared, before, after, sizes=None, qat_compare=None) -> dict:
    """The `baseline` report: budget, twin checks, fine-tuning, per-layer sparsity / unique
    values, accuracy, and (``sizes``: {"original": ..., method: ...}) honest deployed sizes."""
    from ..deploy.sizes import LATENCY_NOTE

    fit = result.fit
    return {
        "schema": SCHEMA_VERSION,
        "report": "baseline",
        "source": str(source),
        "output": str(output),
        "method": result.method,
        "dataset": prepared.name,
        "budget": result.budget.to_dict() if result.budget is not None else None,
        "twin_max_abs_diff": result.twin_max_abs_diff,
        "return_max_abs_diff": result.return_max_abs_diff,
        "worker": result.worker,
        "fit": {k: fit.get(k) for k in ("epochs_run", "best_epoch", "epoch_seconds", "history", "schedule",
                                         "clusters", "steps_per_epoch")},
        "layers": result.layers,
        "params": int(result.model.count_params()),
        "nonzero": result.nonzero,
        "accuracy": before_after(before, after),
        "sizes": sizes,
        "qat": qat_compare,
        "note": LATENCY_NOTE,
    }


def _size_row(name, s):
    f, q = s.get("litert_float") or {}, s.get("litert_int8") or {}
    acc = lambda d: f"{d['accuracy']:.4f}" if d.get("accuracy") is not None else "-"  # noqa: E731
    lat = lambda d: _duration(d.get("latency_ms"))  # noqa: E731
    return (name, _num(s.get("params")), _num(s.get("nonzero")), _num(s.get("gzip_bytes")),
            _num(f.get("file_bytes")), _num(q.get("file_bytes")), _num(q.get("gzip_bytes")), acc(f), acc(q),
            lat(f), lat(q))


SIZE_COLUMNS = ["model", ">params", ">non-zero", ">gzip weights B", ">LiteRT float B", ">LiteRT int8 B",
                ">int8 gzip B", ">acc float", ">acc int8", ">latency float", ">latency int8"]


def baseline_sections(data: dict) -> list:
    b = data["budget"]
    rows = [("method", data["method"]), ("output", data["output"]), ("data set", data["dataset"])]
    if b:
        rows.append(("budget", f"target_params {b['target_params']:g} of {b['total_params']:,} params"))
        if b["sparsity"] is not None:
            rows.append(("pruning", f"{b['sparsity']:.4f} sparsity on {', '.join(b['layers'])} -> "
                                    f"{b['target_nonzero']:,} non-zero params"))
        if b["clusters"] is not None:
            rows.append(("clustering", f"{b['clusters']} clusters ({b['bits_per_weight']} bits/weight) on "
                                       f"{', '.join(b['layers'])}: storage of {b['storage_params']:,.0f} float32 params"))
    rows += [("params / non-zero", f"{data['params']:,} / {data['nonzero']:,}"),
             ("tf_keras twin vs model", f"max abs diff {data['twin_max_abs_diff']:.3g} (checked before tfmot ran)"),
             ("Keras 3 result vs twin", f"max abs diff {data['return_max_abs_diff']:.3g}"),
             ("fine-tuning", f"{data['fit']['epochs_run']} epoch(s), best {data['fit']['best_epoch']}")]
    sections = [Section(title=f"baseline {data['source']}", columns=["", "value"], rows=rows,
                        lines=_before_after_lines(data["accuracy"]))]
    layer_rows = [(r["name"], r["class"], _num(r["kernel_size"]), _num(r["kernel_nonzero"]), _num(r["kernel_unique"]),
                   "yes" if r["compressed"] else "-") for r in data["layers"]]
    sections.append(Section(title="layers", columns=["layer", "type", ">kernel", ">non-zero", ">unique values",
                                                     "compressed"], rows=layer_rows))
    if data.get("sizes"):
        sections.append(Section(title="deployed sizes (LiteRT batch-1 latency, median)", columns=SIZE_COLUMNS,
                                rows=[_size_row(k, v) for k, v in data["sizes"].items()], lines=[data["note"]]))
    if data.get("qat"):
        q = data["qat"]
        qrows = [(k, _num(v["file_bytes"]), f"{v['accuracy']:.4f}" if v.get("accuracy") is not None else "-",
                  _pct(v.get("agreement_with_keras")), _duration(v.get("latency_ms"))) for k, v in q.items()]
        sections.append(Section(title="int8: quantisation-aware training against post-training quantisation",
                                columns=["LiteRT int8", ">file B", ">accuracy", "agreement with float", ">latency"],
                                rows=qrows))
    return sections
