"""The one module that renders results: plain dicts for JSON, and rich tables for people.

Each report is first built as a JSON-ready dict (stable keys, documented in README.md); the
terminal table is drawn from that same dict, so the two never disagree.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from rich import box
from rich.console import Console
from rich.table import Table

SCHEMA_VERSION = 1


def _ratio(after, before):
    return round(after / before, 4) if before else None


def conversion_dict(conversion, source, output, file_bytes_before, file_bytes_after) -> dict:
    """The `convert` report as a JSON-ready dict."""
    c = conversion
    return {
        "schema": SCHEMA_VERSION,
        "report": "convert",
        "source": str(source),
        "output": str(output),
        "policy": c.plan.policy,
        "layers": [
            {**asdict(p), "kernel_shape": list(p.kernel_shape)} for p in c.plan.layers
        ],
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
    }


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
    if not before or after is None:
        return "-"
    return f"{before / after:.2f}x smaller" if after < before else f"{after / before:.2f}x larger"


def print_conversion(data: dict, console: Console | None = None):
    """Draw a `conversion_dict` as tables."""
    console = console or Console()
    table = Table(title=f"convert ({data['policy']}): {data['source']}", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("layer", overflow="fold", min_width=8)
    table.add_column("type", no_wrap=True)
    table.add_column("kernel", no_wrap=True)
    table.add_column("rank", justify="right")
    table.add_column("mode", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("energy", justify="right", no_wrap=True)
    table.add_column("error", justify="right", no_wrap=True)
    notes = []
    for layer in data["layers"]:
        converted = layer["rank"] is not None
        params = _num(layer["params_before"])
        table.add_row(
            layer["name"],
            layer["kind"],
            "x".join(str(d) for d in layer["kernel_shape"]),
            str(layer["rank"]) if converted else "-",
            layer["mode"] or "kept",
            f"{params} -> {_num(layer['params_after'])}" if converted else params,
            f"{layer['energy']:.3f}" if converted else "",
            f"{layer['error']:.3f}" if converted else "",
        )
        if layer["skipped"]:
            notes.append(f"  kept {layer['name']}: {layer['skipped']}")
        elif layer["note"]:
            notes.append(f"  {layer['name']}: {layer['note']}")
    console.print(table)
    if notes:
        console.print("\n".join(notes), highlight=False)
    console.print("energy: fraction of squared singular values kept; error: relative error of the kernel.",
                  style="dim")

    t = data["totals"]
    totals = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("", "before", "after", "change"):
        totals.add_column(column, justify="right")
    totals.add_row("params", _num(t["params_before"]), _num(t["params_after"]),
                   _times(t["params_after"], t["params_before"]))
    totals.add_row("weight bytes", _bytes(t["weight_bytes_before"]), _bytes(t["weight_bytes_after"]),
                   _times(t["weight_bytes_after"], t["weight_bytes_before"]))
    totals.add_row("file bytes", _bytes(t["file_bytes_before"]), _bytes(t["file_bytes_after"]),
                   _times(t["file_bytes_after"], t["file_bytes_before"]))
    console.print(totals)

    d = data["output_difference"]
    agreement = f", same top-1 class on {d['agreement']:.1%}" if d["agreement"] is not None else ""
    console.print(
        f"outputs vs original on {d['examples']} {d['source']}: relative difference "
        f"{d['relative']:.4f}, max abs {d['max_abs']:.4g}{agreement}"
    )
    if "accuracy" in data:
        _print_before_after(data["accuracy"], console)
    console.print(f"{t['layers_converted']} layers converted, {t['layers_skipped']} kept; saved {data['output']}")


def print_json(data: dict, console: Console | None = None):
    """One JSON document on stdout (no colours, no wrapping)."""
    text = json.dumps(data, indent=2)
    if console is None:
        print(text)
    else:
        console.print_json(text)


def before_after(before, after) -> dict:
    """Two Evaluations side by side, as stored under "accuracy" in convert and finetune reports."""
    return {"before": asdict(before), "after": asdict(after),
            "accuracy_change": round(after.accuracy - before.accuracy, 6)}


def _accuracy_line(name, e):
    top5 = f", top-5 {e['top5_accuracy']:.4f}" if e.get("top5_accuracy") is not None else ""
    return f"{name}: accuracy {e['accuracy']:.4f}{top5}, loss {e['loss']:.4f} on {e['examples']:,} test images"


def _print_before_after(ba, console):
    console.print(_accuracy_line("before", ba["before"]), highlight=False)
    console.print(_accuracy_line("after ", ba["after"]), highlight=False)
    console.print(f"accuracy change: {ba['accuracy_change'] * 100:+.2f} points", highlight=False)


def finetune_dict(source, output, prepared, fit, before, after) -> dict:
    """The `finetune` report (also the history file saved beside the model)."""
    return {
        "schema": SCHEMA_VERSION,
        "report": "finetune",
        "source": str(source),
        "output": str(output),
        "dataset": prepared.name,
        "train_images": int(len(prepared.x_train)),
        "data_changes": prepared.changes,
        "device": fit.device,
        "settings": asdict(fit.settings),
        "epochs_run": fit.epochs_run,
        "best_epoch": fit.best_epoch,
        "interrupted": fit.interrupted,
        "epoch_seconds": [round(s, 3) for s in fit.epoch_seconds],
        "learning_rates": fit.learning_rates,
        "history": fit.history,
        "accuracy": before_after(before, after),
    }


def print_finetune(data: dict, console: Console | None = None):
    console = console or Console()
    if data["interrupted"]:
        console.print("[yellow]interrupted[/yellow]: saved the best weights seen so far")
    seconds = data["epoch_seconds"]
    per_epoch = f"{sum(seconds) / len(seconds):.1f} s per epoch" if seconds else "no full epoch"
    console.print(
        f"fine-tuned {data['source']} on {data['dataset']} ({data['train_images']:,} training images): "
        f"{data['epochs_run']} epoch(s), best {data['best_epoch']}, {per_epoch} on {data['device']}",
        highlight=False,
    )
    if data["data_changes"]:
        console.print("data: " + "; ".join(data["data_changes"]), style="dim", highlight=False)
    _print_before_after(data["accuracy"], console)
    console.print(f"saved {data['output']}", highlight=False)


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


def print_evaluation(data: dict, console: Console | None = None):
    console = console or Console()
    console.print(_accuracy_line(f"{data['source']} on {data['dataset']}", data), highlight=False)
    console.print(f"{data['seconds']:.2f} s on {data['device']}", highlight=False)
