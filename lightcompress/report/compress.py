"""The ``compress`` report: the goal, the plan, the latency profile, the comparison."""

from __future__ import annotations



from dataclasses import asdict


from .compare import compare_sections
from .convert import budget_line, plan_section
from .export import export_sections
from .render import SCHEMA_VERSION, Section, significant


def compress_dict(result, compare, plan_path, output) -> dict:
    return {
        "schema": SCHEMA_VERSION,
        "report": "compress",
        "output": str(output),
        "plan_file": str(plan_path),
        "goal": {"metric": result.metric, "target": result.target, "met": result.met},
        "trials": [asdict(t) for t in result.trials],
        "allocation": result.allocation,
        "sensitivity": None if result.sensitivity is None else {
            k: v for k, v in result.sensitivity.to_dict().items() if k != "layers"},
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
        opts = ", ".join(f"r{o['rank']} {o['mode']} {_timed(o)} ({o['ms'] / base:.2f}x)" for o in ls["options"][1:])
        table.rows.append([ls["name"], _timed(ls["options"][0]), opts])
    source = "read from the cache" if p["from_cache"] else f"measured in {p['seconds']:.1f} s"
    table.lines.append(f"whole model: {significant(p['model_ms'] * 1000)} µs; each layer timed alone, its variants "
                       f"in turns, net of the runtime's per-call overhead; ±: the noise of each median (notch "
                       f"of its IQR); {source} ({p['cache_file'] or 'not cached'})")
    return [table]


def _timed(option) -> str:
    noise = option.get("noise_ms") or 0.0
    return significant(option["ms"] * 1000) + (f"±{significant(noise * 1000)}" if noise else "")


def compress_sections(data: dict) -> list[Section]:
    goal = data["goal"]
    plan = plan_section(f"compress plan ({data['plan']['policy']}, {data['plan'].get('method', 'svd')})",
                        data["plan"]["layers"])
    cal = data.get("calibration")
    if cal:
        plan.lines.append(f"data-aware factors: calibrated on {cal['samples']:,} training images in "
                          f"{cal['seconds']:.1f} s")
    plan.lines.extend(data["plan"].get("notes", []))
    s = data["sensitivity"]
    if s is None:
        plan.lines.append("error allocation: ranks bought by each layer's truncation error"
                          f"{' on the calibration images' if cal else ''}, no model evaluated")
    else:
        plan.lines.append(f"sensitivity: {'cache' if s['from_cache'] else str(s['evaluations']) + ' evaluations'}, "
                          f"{s['seconds']:.1f} s")
    if data["plan"].get("budget"):
        plan.lines.append(budget_line(data["plan"]["budget"]))
    plan.lines.append(f"plan saved to {data['plan_file']} (convert can apply it again)")
    for t in data["trials"]:
        same = f", the plan of {t['same_as']:.3f} again" if t.get("same_as") is not None else ""
        plan.lines.append(f"trial: keep {t['target']:.3f} of params -> {t['params']:,} params{same}, held-out "
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
                          f"none measured slower than the layer it replaces, beyond the noise of both timings, "
                          f"was chosen"
                          if "latency guard" in data["plan"]["policy"] else
                          f"latency measured in {lp['runtime']} ({lp['threads']} threads)")
    if data.get("export"):
        sections += export_sections(data["export"])
    return sections
