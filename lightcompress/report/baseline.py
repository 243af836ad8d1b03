"""The ``baseline`` report: tfmot pruning, clustering and QAT against the original."""

from __future__ import annotations

from ..deploy.sizes import LATENCY_NOTE
from .convert import before_after, before_after_lines
from .render import SCHEMA_VERSION, Section, duration, num, percent


def baseline_dict(source, output, result, prepared, before, after, sizes=None, qat_compare=None) -> dict:
    """The `baseline` report: budget, twin checks, fine-tuning, per-layer sparsity / unique
    values, accuracy, and (``sizes``: {"original": ..., method: ...}) honest deployed sizes."""
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
    lat = lambda d: duration(d.get("latency_ms"))  # noqa: E731
    return (name, num(s.get("params")), num(s.get("nonzero")), num(s.get("gzip_bytes")),
            num(f.get("file_bytes")), num(q.get("file_bytes")), num(q.get("gzip_bytes")), acc(f), acc(q),
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
                        lines=before_after_lines(data["accuracy"]))]
    layer_rows = [(r["name"], r["class"], num(r["kernel_size"]), num(r["kernel_nonzero"]), num(r["kernel_unique"]),
                   "yes" if r["compressed"] else "-") for r in data["layers"]]
    sections.append(Section(title="layers", columns=["layer", "type", ">kernel", ">non-zero", ">unique values",
                                                     "compressed"], rows=layer_rows))
    if data.get("sizes"):
        sections.append(Section(title="deployed sizes (LiteRT batch-1 latency, median)", columns=SIZE_COLUMNS,
                                rows=[_size_row(k, v) for k, v in data["sizes"].items()], lines=[data["note"]]))
    if data.get("qat"):
        q = data["qat"]
        qrows = [(k, num(v["file_bytes"]), f"{v['accuracy']:.4f}" if v.get("accuracy") is not None else "-",
                  percent(v.get("agreement_with_keras")), duration(v.get("latency_ms"))) for k, v in q.items()]
        sections.append(Section(title="int8: quantisation-aware training against post-training quantisation",
                                columns=["LiteRT int8", ">file B", ">accuracy", "agreement with float", ">latency"],
                                rows=qrows))
    return sections
