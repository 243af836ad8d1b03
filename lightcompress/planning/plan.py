"""A plan: what happens to each factorisable layer (a rank and mode, or a reason to keep it).
Plans are decided (rules, allocation), saved as JSON, read back and applied; the reading and
the writing live here, side by side."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import LightCompressError, OptionError, RankError
from ..factorization.candidates import candidates
from ..factorization.methods import known_methods
from ..io.files import read_file_bounded
from ..io.models import write_json


@dataclass
class LayerPlan:
    """What happens to one layer. ``rank`` is None when the layer is kept (see ``skipped``)."""

    name: str
    kind: str
    kernel_shape: tuple
    params_before: int
    params_after: int
    rank: int | None = None
    mode: str | None = None
    energy: float | None = None
    error: float | None = None
    skipped: str | None = None
    note: str | None = None
    output_error: float | None = None  # relative output error on the calibration inputs

    @property
    def converted(self) -> bool:
        return self.rank is not None


@dataclass
class Plan:
    policy: str
    layers: list[LayerPlan] = field(default_factory=list)
    method: str = "svd"  # how the factors are made: a registered name (factorization.methods)
    # weighted layers that are no candidates: {"name", "kind", "params", "reason"}
    not_considered: list = field(default_factory=list)
    # what the report says about how the plan was decided (the budget used, what a guard removed)
    notes: list = field(default_factory=list)
    # a plan sized for a whole-model budget: {"metric", "target", "planned"} (fractions of the
    # original's cost), with "runtime" and, once the converted model is timed, "measured" for a
    # latency budget; None for the other rules
    budget: dict | None = None

    @property
    def converted(self) -> list[LayerPlan]:
        return [p for p in self.layers if p.converted]

    def params_saved(self) -> int:
        return sum(p.params_before - p.params_after for p in self.layers)

    def to_dict(self) -> dict:
        return {"policy": self.policy, "method": self.method,
                "layers": [{**asdict(p), "kernel_shape": list(p.kernel_shape)} for p in self.layers],
                "not_considered": list(self.not_considered), "notes": list(self.notes), "budget": self.budget}


def keep(c, reason: str) -> LayerPlan:
    """The plan for candidate ``c`` left as it is."""
    return LayerPlan(c.name, c.kind, c.kernel_shape, c.params, c.params, skipped=reason)


def factorise(c, mode: str, rank: int, note=None, measured=None) -> LayerPlan:
    """The plan for candidate ``c`` factorised at ``rank`` in ``mode``, with its cost and errors:
    ``error`` in weight space (of the factors that will be used), ``output_error`` on the
    calibration inputs when ``c`` is calibrated; ``energy`` = 1 − error². ``measured``: those of
    them already known (a saved plan's), taken as they are, so the kernel is not decomposed for
    them. A kernel constraint is dropped (the note says so): applied to each factor it would
    change their product."""
    measured = measured or {}
    error = measured["error"] if "error" in measured else c.weight_error(mode, rank)
    constraint = getattr(c, "constraint", None)
    if constraint is not None:
        dropped = (f"kernel constraint {type(constraint).__name__} dropped: applied to each factor it "
                   f"would change their product")
        note = f"{note}; {dropped}" if note else dropped
    return LayerPlan(
        name=c.name,
        kind=c.kind,
        kernel_shape=c.kernel_shape,
        params_before=c.params,
        params_after=c.factor_params(mode, rank) + c.bias_params,
        rank=rank,
        mode=mode,
        energy=measured.get("energy", float(1.0 - error**2)),
        error=error,
        note=note,
        output_error=measured.get("output_error", None if c.cov is None else c.error(mode, rank)),
    )


def plan_from_dict(model, data, source="the plan") -> Plan:
    """Rebuild a saved plan (``Plan.to_dict``) for ``model``: the same record (``to_dict`` of the
    result equals the data), after checking the whole of it against the model: each entry names a factorisable layer of the model once, with
    its kernel shape, a known mode and a rank in range; the method is a registered one. Messages
    speak of the plan's own fields (``"rank": 0``), not of any option."""
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list):
        raise LightCompressError(f"{source} is not a plan (no 'layers' list); use a plan.json written by compress.")
    method = data.get("method", "svd")
    if method not in known_methods():
        raise LightCompressError(f"{source} has \"method\": {json.dumps(method)}, which is not a known method; use "
                                 f"one of {', '.join(known_methods())}, or a plan written by compress.")
    by_name = {c.name: c for c in candidates(model)}
    plan = Plan(policy=str(data.get("policy", "saved plan")), method=method)
    seen = {}
    for i, entry in enumerate(data["layers"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise LightCompressError(f"{source}: entry {i} of 'layers' has no layer 'name'; use a plan written by compress.")
        name = entry["name"]
        if name in seen:
            raise LightCompressError(f"{source} names layer '{name}' twice (entries {seen[name]} and {i} of 'layers'); "
                                     f"keep one entry per layer.")
        seen[name] = i
        c = by_name.get(name)
        if c is None:
            raise RankError(f"{source} names layer '{name}', which this model has no factorisable "
                            f"layer of; use the plan with the model it was made for.")
        if list(c.kernel_shape) != list(entry.get("kernel_shape") or []):
            raise RankError(f"layer '{c.name}' has a kernel of shape {c.kernel_shape}, {source} says "
                            f"{entry.get('kernel_shape')}; use the plan with the model it was made for.")
        rank, mode = entry.get("rank"), entry.get("mode")
        if rank is None:
            kept = keep(c, str(entry.get("skipped") or "kept by the plan"))
            kept.note = entry.get("note") if isinstance(entry.get("note"), str) else None
            plan.layers.append(kept)
            continue
        where = f"{source}: layer '{c.name}' has"
        if mode not in c.entry.modes:  # every mode the twin has (a plan may name one planning skips)
            raise OptionError(f"{where} \"mode\": {json.dumps(mode)}, which is unknown; use one of "
                              f"{', '.join(c.entry.modes)}.")
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise OptionError(f"{where} \"rank\": {json.dumps(rank)}, which is not a whole number; use a rank "
                              f"from 1 to {c.max_rank(mode)}, or null to keep the layer.")
        limit = c.max_rank(mode)
        if not 1 <= rank <= limit:
            raise RankError(f"{where} \"rank\": {rank}, out of range for its {mode} factorisation of a "
                            f"{c.kernel_shape} kernel; use a rank from 1 to {limit}, or null to keep the layer.")
        measured = {k: float(v) for k in ("energy", "error", "output_error")  # as measured when it was decided
                    if isinstance(v := entry.get(k), (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        layer = factorise(c, mode, rank, measured=measured)
        layer.note = entry.get("note") if isinstance(entry.get("note"), str) else layer.note
        plan.layers.append(layer)
    plan.notes = [note for note in data.get("notes") or [] if isinstance(note, str)]
    plan.not_considered = [item for item in data.get("not_considered") or [] if isinstance(item, dict)]
    budget = data.get("budget")
    plan.budget = budget if isinstance(budget, dict) else None
    return plan


# A plan holds one entry of about 200 bytes per factorisable layer: 16 MB is room for some 80,000
# layers; a larger file is not a plan, and is refused without being read whole.
MAX_PLAN_BYTES = 16 * 2 ** 20


def read_plan(model, path) -> Plan:
    """Read a plan file written by ``write_plan`` and check it against ``model``."""
    path = Path(path)
    try:
        data = json.loads(read_file_bounded(path, MAX_PLAN_BYTES, "a plan JSON file"))
    except FileNotFoundError:
        raise LightCompressError(f"{path}: no such plan file; check the path.") from None
    except RecursionError:
        raise LightCompressError(f"{path} holds JSON nested too deeply to be a plan; use a plan written by "
                                 f"compress.") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise LightCompressError(f"{path} is not a plan JSON file ({err}).") from None
    return plan_from_dict(model, data, source=str(path))


def write_plan(plan: Plan, path, *, force=False, inputs=()):
    """Save ``plan`` as JSON (atomically; never over an input or an existing file unless forced)."""
    return write_json(plan.to_dict(), path, force=force, inputs=inputs)
