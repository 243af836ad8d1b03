"""Pictures of the inspect and compare reports (PNG, drawn with matplotlib from the report dicts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._deferred import deferred
from ..errors import OutputPathError
from ..io.models import atomic_write, check_owned
from .tradeoffs import cost, measured

matplotlib = deferred("matplotlib")
plt = deferred("matplotlib.pyplot")


def _pyplot():
    matplotlib.use("Agg")  # files, never a window: before pyplot is imported
    return plt


def _save(fig, path, force):
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise OutputPathError(f"plot {path} must end in .png.")
    check_owned(path)  # what force may replace: an earlier picture file only
    if path.exists() and not force:
        raise OutputPathError(f"{path} exists; pass force=True to overwrite it, or choose another picture path.")
    if not path.parent.is_dir():
        raise OutputPathError(f"plot folder {path.parent} does not exist; create it first.")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    _pyplot().close(fig)
    return path


def _spectrum_axes(ax, spectra, marks):
    """``spectra``: {name: singular values}; ``marks``: {name: [(rank, label), ...]}."""
    for i, (name, s) in enumerate(spectra.items()):
        s = np.asarray(s, dtype=float)
        s = s / s[0] if len(s) and s[0] > 0 else s
        line, = ax.plot(np.arange(1, len(s) + 1), s, label=name)
        by_rank = {}
        for rank, label in marks.get(name, []):
            by_rank.setdefault(rank, []).append(label)
        for rank, labels in by_rank.items():
            label = ", ".join(labels)
            if 1 <= rank <= len(s):
                ax.plot(rank, s[rank - 1], "o", color=line.get_color(), markersize=6)
                ax.annotate(label, (rank, s[rank - 1]), textcoords="offset points", xytext=(4, 4 + 6 * (i % 3)),
                            fontsize=7, color=line.get_color())
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_xlabel("rank")
    ax.set_ylabel("singular value / largest")
    ax.set_title("singular-value spectra")
    ax.legend(fontsize=7)


def inspect_plot(data: dict, path, force=False) -> Path:
    """Two panels: parameters per layer, and spectra with the 90/95/99% energy ranks marked."""
    plt = _pyplot()
    layers = [layer for layer in data["layers"] if layer["params"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    left.barh([layer["name"] for layer in layers], [layer["params"] for layer in layers], color="tab:blue")
    left.invert_yaxis()
    left.set_xlabel("parameters")
    left.set_title(f"parameters per layer ({data['totals']['params']:,} in all)")
    spectra = {layer["name"]: layer["spectrum"]["singular_values"] for layer in data["layers"] if layer["spectrum"]}
    marks = {
        layer["name"]: [(r, f"{float(k):.0%}") for k, r in layer["spectrum"]["energy_ranks"].items()]
        + [(layer["spectrum"]["break_even_rank"], "break-even")]
        for layer in data["layers"] if layer["spectrum"]
    }
    _spectrum_axes(right, spectra, marks)
    fig.suptitle(f"lightcompress inspect: {Path(data['source']).name}")
    return _save(fig, path, force)


def compare_plot(data: dict, path, spectra=None, force=False) -> Path:
    """Per-layer params of every model; base spectra with each model's ranks; accuracy (or latency)
    against size."""
    plt = _pyplot()
    names = [Path(m["path"]).name for m in data["models"]]
    panels = 3 if spectra else 2
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.8))
    ax = axes[0]
    rows = data["layers"]
    width = 0.8 / len(names)
    positions = np.arange(len(rows))
    for j, name in enumerate(names):
        values = [(row["models"][j] or {}).get("params", 0) for row in rows]
        ax.bar(positions + j * width, values, width, label=name)
    ax.set_xticks(positions + 0.4 - width / 2, [row["name"] for row in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("parameters")
    ax.set_title("parameters per layer")
    ax.legend(fontsize=7)
    if spectra:
        marks = {}
        for row in rows:
            for j, entry in enumerate(row["models"]):
                if entry and entry["rank"]:
                    marks.setdefault(row["name"], []).append((entry["rank"], names[j]))
        _spectrum_axes(axes[1], spectra, marks)
    ax = axes[-1]
    sizes = [m["params"] for m in data["models"]]
    if all("evaluation" in m for m in data["models"]):
        values = [m["evaluation"]["accuracy"] for m in data["models"]]
        ax.set_ylabel(f"test accuracy ({data.get('dataset')})")
        ax.set_title("accuracy against size")
    else:
        values = [m["latency"][0]["median_ms"] for m in data["models"]]
        ax.set_ylabel(f"latency, batch {data['models'][0]['latency'][0]['batch']} (ms)")
        ax.set_title("latency against size")
    order = np.argsort(sizes)
    ax.plot(np.array(sizes)[order], np.array(values)[order], "o-")
    for size, value, name in zip(sizes, values, names):
        ax.annotate(name, (size, value), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    fig.suptitle("lightcompress compare")
    return _save(fig, path, force)


def tradeoffs_plot(data: dict, path, force=False) -> Path:
    """Accuracy against file size and against batch-1 latency, one point per candidate, the Pareto
    front of each panel joined and ringed."""
    plt = _pyplot()
    entries = [e for e in data["candidates"] if measured(e)]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    colours = {"original": "black", "lowrank": "tab:blue", "prune": "tab:orange", "cluster": "tab:green"}
    panels = (("size", "file size (bytes, log scale)", "accuracy against file size"),
              ("latency", "batch-1 latency, x the original's timed beside it (log scale)", "accuracy against latency"))
    for ax, (front, xlabel, title) in zip(axes, panels):
        names = {}  # candidates at one point (a pruned model is the original's size) share one label
        for e in entries:
            x, y = cost(e, front), e["accuracy"]
            ax.plot(x, y, "s" if e["int8"] else "o", color=colours.get(e["method"], "tab:gray"), markersize=6)
            names.setdefault((x, y), []).append(e["name"])
        for (x, y), shared in names.items():
            ax.annotate(", ".join(shared), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
        on = sorted((cost(e, front), e["accuracy"]) for e in entries if e["pareto"][front])
        if on:
            xs, ys = zip(*on)
            ax.step(xs, ys, where="post", color="tab:red", linewidth=1, label="Pareto front")
            ax.plot(xs, ys, "o", markersize=12, markerfacecolor="none", markeredgecolor="tab:red")
            ax.legend(fontsize=7, loc="best")
        ax.set_xscale("log")
        ax.margins(x=0.15)  # room for the labels of the rightmost points
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"test accuracy ({data['dataset']})")
        ax.set_title(title)
    fig.suptitle(f"lightcompress tradeoffs: {Path(data['source']).name} (squares: int8 LiteRT)")
    return _save(fig, path, force)
