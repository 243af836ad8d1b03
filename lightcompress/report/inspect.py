"""The ``inspect`` report: params, MACs and spectra per layer; sensitivity and data-aware error tables."""

from __future__ import annotations

from dataclasses import asdict

from ..factorization.candidates import not_counted
from .compress import latency_sections
from .render import SCHEMA_VERSION, Section, num, shape_text, times


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
            layer["name"], layer["kind"], shape_text(layer["output_shape"]), num(layer["params"]),
            num(layer["macs"]) if layer["macs"] is not None else "-",
            ranks.get("0.9", ""), ranks.get("0.95", ""), ranks.get("0.99", ""),
            sp["break_even_rank"] if sp else "",
            num(sp["energy_params"]["0.95"]) if sp else "",
        ])
    t = data["totals"]
    table.lines = [
        f"total: {num(t['params'])} params, "
        + (f"{num(t['macs'])} MACs per example" if t["macs"] is not None else
           "MACs unknown: the input size is not fixed (give the model a fixed input shape)")
        + (f" (not counted, as zero: {', '.join(t['not_counted'])})" if t["not_counted"] else ""),
        f"rN: smallest rank keeping N% of the spectral energy ({data['conv_mode']} mode for Conv2D); "
        "break-even: largest rank that still saves parameters; params@r95: the layer's cost at r95.",
    ]
    compressible = [layer for layer in data["layers"] if layer["spectrum"]]
    for layer in compressible:
        sp = layer["spectrum"]
        r95 = sp["energy_ranks"]["0.95"]
        verdict = (f"it is {times(sp['energy_params']['0.95'], layer['params'])} "
                   f"({num(sp['energy_params']['0.95'])} of {num(layer['params'])} params)"
                   if r95 <= sp["break_even_rank"] else "it would not save parameters")
        table.lines.append(f"{layer['name']}: at 95% energy (rank {r95}) {verdict}")
    sections = [table]
    if "errors" in data:
        sections += errors_sections(data["errors"])
    if "sensitivity" in data:
        sections += sensitivity_sections(data["sensitivity"])
    if "latency" in data:
        sections += latency_sections(data["latency"])
    return sections


def sensitivity_sections(sens: dict) -> list[Section]:
    """The sensitivity table: per layer and rank, loss and accuracy with only that layer changed."""
    table = Section(
        f"sensitivity on {sens['examples']:,} held-out training images "
        f"(base loss {sens['base_loss']:.4f}, accuracy {sens['base_accuracy']:.4f})",
        ["layer", ">rank", "mode", ">params", ">loss change", ">accuracy"],
    )
    for layer in sens["layers"]:
        for o in layer["options"][1:]:
            table.rows.append([layer["name"], o["rank"], o["mode"], num(o["params"]),
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
