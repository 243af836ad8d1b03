"""Write docs/RESULTS_TABLES.md and docs/results.png from benchmarks/results.json.

Called by `python benchmarks/paper_table.py report`; the commentary lives in docs/RESULTS.md.
"""

from __future__ import annotations

from pathlib import Path


def _rows(results, group):
    return [r for r in results if r["group"] == group]


def _pts(a, b):
    return f"{(a - b) * 100:+.2f}"


def _tables(results, paper) -> str:
    out = []
    scratch = {r["name"]: r for r in _rows(results, "paper")}
    out.append("## The paper's rows, trained from scratch here (10 epochs, batch 64, Adam 1e-3)\n")
    out.append("| row | paper params | paper accuracy | our params | our accuracy | our loss | train time (s) |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for name, (p_params, p_acc) in paper.items():
        r = scratch.get(name)
        ours = (f"{r['params']:,} | {r['accuracy']:.4f} | {r['loss']:.4f} | {r['seconds']:.0f}"
                if r else "not run | | |")
        out.append(f"| {name} | {p_params:,} | {p_acc:.4f} | {ours} |")
    base = scratch.get("Conv2D")
    for r in _rows(results, "control"):
        out.append(f"| control: {r['name']} (no conversion) | | | {r['params']:,} | {r['accuracy']:.4f} | "
                   f"{r['loss']:.4f} | {r['seconds']:.0f} |")
    out.append("")
    ours = sorted(_rows(results, "ours"), key=lambda r: r["params"])
    if ours and base:
        out.append("## lightcompress: the trained Conv2D model converted at the same budgets, fine-tuned ≤ 3 epochs\n")
        out.append("| budget | params | accuracy before fine-tune | accuracy | loss | vs our Conv2D (pts) "
                   "| paper row at this budget | our from-scratch row | time (s) |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in ours:
            key = r["name"].replace("at ", "").replace(" budget", "")
            paper_row = paper.get(f"LightLayers {key}")
            mine = scratch.get(f"LightLayers {key}")
            paper_cell = f"{paper_row[1]:.4f} ({paper_row[0]:,})" if paper_row else "-"
            mine_cell = f"{mine['accuracy']:.4f}" if mine else "-"
            out.append(
                f"| {r['name']} | {r['params']:,} | {r['accuracy_before_finetune']:.4f} | {r['accuracy']:.4f} | "
                f"{r['loss']:.4f} | {_pts(r['accuracy'], base['accuracy'])} | "
                f"{paper_cell} | {mine_cell} | "
                f"{r['seconds']:.0f} |"
            )
        out.append("")
    real = _rows(results, "real")
    comp = {r["name"]: r for r in _rows(results, "compress")}
    plain = {r["name"]: r for r in _rows(results, "compress_nodistill")}
    if real:
        out.append("## The two real models: `convert --target-params` against `compress` (≤ 3 epochs each)\n")
        out.append("| model, budget | original | convert + finetune | compress, no distillation "
                   "| compress (distilled, the default) | sensitivity analysis |")
        out.append("|---|---:|---:|---:|---:|---:|")

        def cell(r):
            return f"{r['params']:,} params: {r['accuracy']:.4f} ({_pts(r['accuracy'], r['original_accuracy'])})" if r else "-"

        for r in real:
            c = comp.get(r["name"])
            analysis = (f"{c['analysis_seconds']:.0f} s for {c['analysis_evaluations']} evaluations"
                        + (" (reused from the cache by this row)" if c.get("analysis_from_cache") else "")) if c else "-"
            out.append(f"| {r['name']} | {r['original_accuracy']:.4f} | {cell(r)} | {cell(plain.get(r['name']))} | "
                       f"{cell(c)} | {analysis} |")
        out.append("")
    machines = sorted({r["machine"] for r in results})
    out.append("Machine: " + "; ".join(machines))
    out.append(f"Total wall time of the rows: {sum(r['seconds'] for r in results) / 60:.0f} min.")
    return "\n".join(out) + "\n"


def _plot(results, paper, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    pp = sorted(v for k, v in paper.items() if k != "SeparableConv2D")
    ax.plot([p for p, _ in pp], [a for _, a in pp], "s--", color="gray", label="paper, published (LightLayers K=1..6, Conv2D)")
    ax.plot(*paper["SeparableConv2D"], "x", color="gray", markersize=9, label="paper, SeparableConv2D")
    scratch = sorted((r["params"], r["accuracy"]) for r in _rows(results, "paper") if r["name"] != "SeparableConv2D")
    if scratch:
        ax.plot(*zip(*scratch), "o:", color="tab:blue", label="the same rows, from scratch here")
    for r in _rows(results, "paper"):
        if r["name"] == "SeparableConv2D":
            ax.plot(r["params"], r["accuracy"], "x", color="tab:blue", markersize=9, label="SeparableConv2D, here")
    for r in _rows(results, "control"):
        ax.plot(r["params"], r["accuracy"], "*", color="tab:green", markersize=11,
                label="our Conv2D + 3 more epochs (control)")
    ours = sorted((r["params"], r["accuracy"]) for r in _rows(results, "ours"))
    if ours:
        ax.plot(*zip(*ours), "o-", color="tab:red", label="lightcompress: converted + fine-tuned ≤ 3 epochs")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("Fashion-MNIST test accuracy")
    ax.set_title("Accuracy against size: the LightLayers paper's table and lightcompress")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def write_report(results, paper, docs: Path):
    docs.mkdir(exist_ok=True)
    (docs / "RESULTS_TABLES.md").write_text("# Benchmark tables (generated)\n\n" + _tables(results, paper))
    _plot(results, paper, docs / "results.png")
    print(f"wrote {docs / 'RESULTS_TABLES.md'} and {docs / 'results.png'}")
