"""The ``export`` report: the artefact and its verification."""

from __future__ import annotations





from .render import SCHEMA_VERSION, Section, duration, percent, size


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
        ("file bytes", f"{data['file_bytes']:,} ({size(data['file_bytes'])})"),
        ("LightLayers lowered", data["lowered_layers"]),
        ("outputs vs Keras", f"max abs diff {v['max_abs_diff']:.3g}, relative {v['relative_diff']:.3g} "
                             f"on {v['examples']:,} {v['source']}"),
        ("top-1 agreement", percent(v["agreement"])),
    ]
    if v["accuracy"] is not None:
        rows.append(("accuracy", f"{percent(v['accuracy'])} (Keras model {percent(v['reference_accuracy'])})"))
    if data["calibration_examples"]:
        rows.append(("calibration", f"{data['calibration_examples']} training images"))
    rows.append(("latency, batch 1", f"{duration(lat['median_ms'])} median of {lat['repeats']} ({v['runtime']})"))
    verdict = ("matches the model within float tolerance" if v["within_tolerance"]
               else "quantised: differs from the float model as reported above")
    return [Section(title=f"export {data['source']}", columns=["", "value"], rows=rows, lines=[verdict])]
