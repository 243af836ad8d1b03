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
    console.print(f"{t['layers_converted']} layers converted, {t['layers_skipped']} kept; saved {data['output']}")


def print_json(data: dict, console: Console | None = None):
    """One JSON document on stdout (no colours, no wrapping)."""
    text = json.dumps(data, indent=2)
    if console is None:
        print(text)
    else:
        console.print_json(text)
