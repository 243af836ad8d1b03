"""The ``tradeoffs`` flow: the candidates a user would weigh on one model, each made, measured and
kept in a work folder as it completes, then one report.

Candidates, in the order they are made (``candidates``):

- ``original``: the model as it is (measured only);
- ``int8``: the original as a full-int8 LiteRT file calibrated on training images (``export_file``);
- ``low-rank F`` for each budget F: ``compress`` at ``target_params=F``; and ``low-rank F + int8``:
  that model exported like ``int8``;
- ``prune F`` and ``cluster F``, when the ``baseline`` extra (tfmot) is installed: the ``baseline``
  flow at the same budgets, in its worker process.

Every fine-tuned candidate gets the same ``FitSettings`` (epochs, held-out slice, distillation).
Each is measured by ``compare_models`` beside the original as soon as it exists: accuracy on the
test images, params, file bytes, latency at batch 1 and 32 (Keras models in ``runtime``, LiteRT
files in the interpreter, both with ``runtime.threads``), and the original's latency timed beside
it, which the report's latency ratios, fronts and recommendation divide by.

The work folder holds per candidate its model file and a result JSON, both named
``<slug>-<key>``: the key hashes the input model's bytes with every setting that makes the
candidate, so a run started again with the same settings reuses what is there and a changed
setting makes a new key. The result also records how it was measured: a model made earlier but
measured otherwise (other ``threads``, ``repeats``) is measured again, not made again. The
sensitivity and latency caches of ``compress`` are kept in ``<work>/cache``. Every file is written
atomically, so a killed run leaves whole files or none.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import _interrupts, report
from ..baseline.spec import model_spec
from ..data.sets import DataSpec, required
from ..defaults import DEFAULT_HOLDOUT, DEFAULT_TRADEOFF_BUDGETS, DEFAULT_TRADEOFF_MAX_DROP
from ..deploy.timing import Runtime
from ..errors import LightCompressError, OptionError, OutputPathError, UnsupportedModelError
from ..io import cache
from ..io import models as model_io
from ..planning import write_plan
from ..report.plots import tradeoffs_plot
from ..training import finetune as ft
from ..validation import number, whole
from .baseline import BaselineSettings, baseline_file
from .common import data_inputs, load_any, load_inputs, no_progress, stem
from .compare import compare_models
from .compress import CompressGoal, CompressSettings, compress
from .estimate import tradeoffs_estimate
from .export import ExportSettings, export_file

KEY_VERSION = 1  # part of every key: a change to what a candidate is makes new keys
BATCHES = (1, 32)
BASELINE_MODULES = ("tensorflow_model_optimization", "tf_keras")


@dataclass(frozen=True)
class Candidate:
    """One row: ``method`` "original", "lowrank", "prune" or "cluster" at ``budget`` (a fraction
    of the params; None for the original), exported as full-int8 LiteRT when ``int8``."""

    method: str
    budget: float | None = None
    int8: bool = False

    @property
    def name(self) -> str:
        if self.method == "original":
            return "int8" if self.int8 else "original"
        label = {"lowrank": "low-rank"}.get(self.method, self.method) + f" {self.budget:g}"
        return label + (" + int8" if self.int8 else "")

    @property
    def slug(self) -> str:
        return self.name.replace(" + ", "-").replace(" ", "-")

    @property
    def source(self) -> Candidate:
        """What an int8 candidate is exported from."""
        return dataclasses.replace(self, int8=False)


ORIGINAL = Candidate("original")


def candidates(budgets, baselines=()) -> list:
    """The rows in the order they are made: an int8 row after the row it is exported from."""
    rows = [ORIGINAL, Candidate("original", int8=True)]
    for budget in budgets:
        rows += [Candidate("lowrank", budget), Candidate("lowrank", budget, int8=True)]
    for method in baselines:
        rows += [Candidate(method, budget) for budget in budgets]
    return rows


# -- settings, checked before any work -------------------------------------------------------------

def parse_budgets(budgets) -> tuple:
    """``budgets`` ("0.5,0.2,0.1" or a sequence of numbers) as distinct fractions in (0, 1)."""
    shown = budgets if isinstance(budgets, str) else ",".join(map(str, budgets))
    allowed = "fractions of the params in (0, 1) separated by commas, e.g. 0.5,0.2,0.1"
    try:
        values = [float(v) for v in budgets.split(",")] if isinstance(budgets, str) else [
            v if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan") for v in budgets]
    except ValueError:
        raise OptionError("is not a list of budgets", option="budgets", value=shown, allowed=allowed) from None
    if not values:
        raise OptionError("is empty", option="budgets", value=shown, allowed=allowed)
    for value in values:
        if not 0 < value < 1:  # NaN too
            raise OptionError(f"holds {value:g}, which is not a fraction of the params kept", option="budgets",
                              value=shown, allowed=allowed)
    if len(set(values)) != len(values):
        raise OptionError("names a budget twice", option="budgets", value=shown, allowed="each budget once")
    return tuple(values)


def default_plot(source) -> Path:
    """``dir/model.h5`` -> ``dir/model.tradeoffs.png``."""
    return Path(source).with_name(f"{stem(source)}.tradeoffs.png")


def default_work_dir(source, plot=None) -> Path:
    """``<stem>.tradeoffs/`` beside the plot (beside the model when there is none)."""
    beside = Path(plot) if plot is not None else Path(source)
    return beside.with_name(f"{stem(source)}.tradeoffs")


def check_work_dir(folder, inputs) -> Path:
    """The work folder, refused before any work when it is an input, lies inside an input folder
    (a data set's), or holds an input (it is this command's to fill, and to delete)."""
    folder = Path(folder)
    here = folder.resolve()
    for source in map(Path, inputs):
        if not source.exists():
            continue
        there = source.resolve()
        if here == there:
            raise OutputPathError(f"work folder {folder} is the input {source}; lightcompress never writes over an "
                                  f"input: choose another work_dir.")
        if there.is_dir() and there in here.parents:
            raise OutputPathError(f"work folder {folder} is inside the input folder {source}: choose a work_dir "
                                  f"outside it.")
        if here in there.parents:
            raise OutputPathError(f"work folder {folder} holds the input {source}; the work folder is for this "
                                  f"command's own files (delete it to start over): choose another work_dir.")
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"work folder {folder} is a file; give a folder for work_dir.")
    if not folder.parent.is_dir():
        raise OutputPathError(f"the folder {folder.parent} of work folder {folder} does not exist; create it first.")
    if not os.access(folder if folder.exists() else folder.parent, os.W_OK):
        raise OutputPathError(f"work folder {folder} is not writable; choose another work_dir.")
    return folder


def baselines_installed() -> bool:
    """Whether the ``baseline`` extra is there, looked up without importing it (tfmot would switch
    this process's tf.keras to Keras 2)."""
    return all(importlib.util.find_spec(m) is not None for m in BASELINE_MODULES)


def check_baselines(wanted):
    """Refuse ``baselines=True`` without the ``baseline`` extra, before any work."""
    if wanted and not baselines_installed():
        raise OptionError('baselines=True needs tensorflow-model-optimization and tf-keras; install them with: '
                          'pip install "lightcompress[baseline]", or leave baselines out.')


def baseline_methods(model, wanted) -> tuple:
    """(methods, note): prune and cluster when ``wanted`` (None: when the extra is installed and
    the model's layers are ones the tf_keras twin rebuilds), with a note saying why not."""
    if wanted is False:
        return (), "not asked for"
    if not baselines_installed():
        check_baselines(wanted)
        return (), 'not run: tensorflow-model-optimization is not installed (pip install "lightcompress[baseline]")'

    try:
        model_spec(model)
    except UnsupportedModelError as err:
        if wanted:
            raise
        return (), f"not run: {err}"
    return ("prune", "cluster"), None


# -- one run ---------------------------------------------------------------------------------------

def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _data_key(data: DataSpec) -> dict:
    """The data set as a key: the spec, and the size and time of a file or folder it names."""
    key = dataclasses.asdict(data)
    source = Path(data.source) if data.source else None
    if source is not None and source.exists():
        stat = source.stat()
        key["stat"] = [stat.st_size, stat.st_mtime_ns]
    return key


def _stop_if_interrupted(fit_interrupted=False):
    """A fine-tune stopped by a signal keeps its best epoch and returns: never keep that as a
    finished candidate."""
    if fit_interrupted or _interrupts.pending():
        raise KeyboardInterrupt


@dataclass
class _Run:
    source: Path
    data: DataSpec
    original: object
    prepared: object
    work: Path
    settings: ft.FitSettings
    runtime: Runtime
    repeats: int
    trust: bool
    options: dict  # distill, holdout_size, method, allow_slower
    stage: object
    callbacks: tuple
    on_step: object
    on_event: object
    warn: object
    model_sha: str = ""
    data_key: dict = field(default_factory=dict)
    lowrank: object = None  # the CompressSettings every low-rank candidate shares, but for its budget
    paths: dict = field(default_factory=dict)  # Candidate -> its model file
    entries: dict = field(default_factory=dict)  # Candidate -> its report entry

    def key(self, cand: Candidate) -> str:
        made = {"v": KEY_VERSION, "model": self.model_sha, "candidate": [cand.method, cand.budget, cand.int8]}
        if cand.int8:
            made.update(source=self.key(cand.source), data=self.data_key)
        elif cand.method != "original":
            made.update(data=self.data_key, fit={k: v for k, v in dataclasses.asdict(self.settings).items()
                                                 if k != "devices"},
                        distill=self.options["distill"], holdout=self.options["holdout_size"])
            if cand.method == "lowrank":  # the latency guard times layers in the runtime
                made.update(method=self.options["method"], allow_slower=self.options["allow_slower"],
                            runtime=None if self.options["allow_slower"] else [self.runtime.name, self.runtime.threads])
        return hashlib.sha256(json.dumps(made, sort_keys=True).encode()).hexdigest()[:16]

    def measured_with(self) -> dict:
        """How entries are measured, as it reads back from JSON (tuples as lists)."""
        return json.loads(json.dumps({"runtime": self.runtime.name, "threads": self.runtime.threads,
                                      "repeats": self.repeats, "batches": BATCHES, "data": self.data_key}))


def _make_lowrank(run: _Run, cand, path) -> dict:
    chosen = dataclasses.replace(run.lowrank, goal=CompressGoal(target_params=cand.budget))
    result = compress(run.original, run.prepared, chosen, callbacks=run.callbacks, on_step=run.on_step,
                      warn=run.warn)
    _stop_if_interrupted(result.fit.interrupted)
    plan_path = write_plan(result.plan, path.with_name(f"{path.stem}.plan.json"), force=True, inputs=[run.source])
    model_io.save_model(result.model, path, inputs=[run.source])
    return {"plan_file": str(plan_path), "policy": result.plan.policy, "epochs_run": result.fit.epochs_run}


def _make_int8(run: _Run, cand, path) -> dict:
    source = run.paths[cand.source]
    settings = ExportSettings.make("litert", quantize="int8", threads=run.runtime.threads, data=run.data)
    out = export_file(source, settings, path, data=run.data, trust=run.trust, stage=run.stage)
    return {"exported_from": str(source), "calibration_examples": out["calibration_examples"],
            "agreement_with_float": out["verification"]["agreement"]}


def _make_baseline(run: _Run, cand, path) -> dict:
    settings = BaselineSettings.make(cand.method, target_params=cand.budget, settings=run.settings,
                                     distill=run.options["distill"], holdout_size=run.options["holdout_size"],
                                     sizes=False, threads=run.runtime.threads)
    out = baseline_file(run.source, settings, path, data=run.data, trust=run.trust, on_event=run.on_event,
                        stage=run.stage)
    return {"nonzero": out["nonzero"], "budget": out["budget"], "epochs_run": out["fit"]["epochs_run"]}


def _make(run: _Run, cand, path) -> dict:
    if cand.int8:
        return _make_int8(run, cand, path)
    return _make_lowrank(run, cand, path) if cand.method == "lowrank" else _make_baseline(run, cand, path)


def _measure(run: _Run, path) -> dict:
    """``compare_models`` of the original and the file at ``path`` (the original alone for itself):
    the file's measures, and the original's latency timed beside it (drift of the machine between
    candidates made minutes apart then falls on both alike)."""
    nets = [run.original] if path == run.source else [run.original, load_any(path, run.trust, run.runtime.threads)]
    compared = compare_models(nets, [run.source, path][:len(nets)], run.prepared, BATCHES, run.repeats,
                              runtime=run.runtime)
    m = compared["models"][-1]
    return {"accuracy": m["evaluation"]["accuracy"], "loss": m["evaluation"]["loss"], "agreement": m["agreement"],
            "params": m["params"], "file_bytes": m["file_bytes"], "latency": m["latency"], "runtime": m["runtime"],
            "original_latency": compared["models"][0]["latency"], "device": compared["device"]}


def _parse_result(data) -> dict:
    return {"measured_with": data["measured_with"], "entry": dict(data["entry"])}


def _settle(run: _Run, cand: Candidate, log) -> dict:
    """The candidate's report entry: read from the work folder when made and measured with these
    settings; else made (unless its model file is there) and measured, then kept."""
    key = run.key(cand)
    suffix = ".tflite" if cand.int8 else ".keras"
    path = run.source if cand == ORIGINAL else run.work / f"{cand.slug}-{key}{suffix}"
    run.paths[cand] = path
    entry = {"name": cand.name, "method": cand.method, "budget": cand.budget, "int8": cand.int8, "key": key,
             "file": str(path)}
    if cand.int8 and run.entries[cand.source].get("error"):
        return {**entry, "status": "skipped", "error": f"{cand.source.name} was not made"}
    result_path = run.work / f"{cand.slug}-{key}.json"
    saved = cache.read(result_path, _parse_result, what="tradeoffs result", warn=run.warn)
    have_file = path.exists()
    if saved and have_file and saved.get("measured_with") == run.measured_with():
        log(f"{cand.name}: reused from {result_path.name}")
        return {**saved["entry"], "file": str(path), "status": "reused"}
    earlier = saved["entry"] if saved else {}  # what the making said, when only the measuring is redone
    seconds, details, status = earlier.get("seconds"), earlier.get("details", {}), "measured"
    if not have_file:
        log(f"{cand.name}: making it")
        start = time.perf_counter()
        try:
            details = _make(run, cand, path)
        except LightCompressError as err:  # a budget this model cannot meet: a row, not the end of the run
            log(f"{cand.name}: not made: {err}")
            return {**entry, "status": "failed", "error": str(err)}
        seconds, status = round(time.perf_counter() - start, 1), "made"
    _stop_if_interrupted()
    log(f"{cand.name}: measuring")
    entry.update(seconds=seconds, details=details, **_measure(run, path))
    if entry["params"] is None and cand.int8:  # a LiteRT file holds the params of what it was exported from
        entry["params"] = run.entries[cand.source]["params"]
    entry["nonzero"] = details.get("nonzero")
    model_io.write_json({"measured_with": run.measured_with(), "entry": entry}, result_path, force=True,
                        inputs=[run.source])
    return {**entry, "status": status}


@dataclass(frozen=True)
class TradeoffsSettings:
    """tradeoffs' choices, checked once (``make``): the budgets, the one fine-tuning budget of every
    candidate, the baselines (None: when installed), the recommendation's tolerance, how candidates
    are measured (``runtime``, ``repeats``), and ``compress``'s options for the low-rank ones
    (``lowrank``: its settings at the first budget, which each candidate replaces)."""

    budgets: tuple
    fit: ft.FitSettings
    baselines: bool | None
    max_drop: float
    runtime: Runtime
    repeats: int
    distill: bool
    holdout_size: int
    method: object  # as given (a name or None): part of each candidate's key
    allow_slower: bool
    lowrank: CompressSettings

    @classmethod
    def make(cls, *, budgets=DEFAULT_TRADEOFF_BUDGETS, settings: ft.FitSettings | None = None, baselines=None,
             max_drop=DEFAULT_TRADEOFF_MAX_DROP, runtime: Runtime | str | None = None, repeats=30, distill=True,
             holdout_size=DEFAULT_HOLDOUT, method=None, allow_slower=False) -> TradeoffsSettings:
        """The settings of a tradeoffs run, each refused before any work (see ``tradeoffs_file``)."""
        budgets = parse_budgets(budgets)
        fit = settings or ft.FitSettings()
        runtime = Runtime.parse(runtime)
        whole("repeats", repeats, 1)
        whole("holdout_size", holdout_size, 1)
        number("max_drop", max_drop, 0, 100, example="1")
        check_baselines(baselines)
        lowrank = CompressSettings.make(target_params=budgets[0], settings=fit, runtime=runtime, distill=distill,
                                        holdout_size=holdout_size, method=method, allow_slower=allow_slower)
        return cls(budgets=budgets, fit=fit, baselines=baselines, max_drop=max_drop, runtime=runtime, repeats=repeats,
                   distill=bool(distill), holdout_size=holdout_size, method=method, allow_slower=bool(allow_slower),
                   lowrank=lowrank)


def tradeoffs_file(source, settings: TradeoffsSettings | None = None, *, data: DataSpec | None = None,
                   work_dir=None, plot=None, trust=False, force=False, stage=no_progress, callbacks=(), on_step=None,
                   on_event=None, log=None, warn=None) -> dict:
    """Make and measure every candidate on the model in ``source`` as ``settings`` say
    (``TradeoffsSettings.make``; default: its defaults; see the module's note) and return the
    `tradeoffs` report dict; ``plot``: also draw it into this PNG.

    ``settings.budgets``: fractions of the params kept; ``settings.fit``: the one fine-tuning budget
    of every candidate; ``settings.baselines``: prune and cluster too (None: when the ``baseline``
    extra is installed); ``settings.max_drop``: the recommendation's accuracy tolerance, in points;
    ``work_dir`` (default ``<stem>.tradeoffs/`` beside the plot, else the model): where finished
    candidates are kept and found again. ``log(text)``: one line per step of a candidate."""
    source = Path(source)
    data = required(data)  # none given: said before any other check
    settings = settings or TradeoffsSettings.make()
    log = log or (lambda text: None)
    budgets, runtime = settings.budgets, settings.runtime
    inputs = [source, *data_inputs(data)]
    if plot is not None:
        model_io.check_output(plot, force=force, inputs=inputs, suffixes=(".png",))
    work = check_work_dir(work_dir or default_work_dir(source, plot), inputs)
    lowrank = dataclasses.replace(settings.lowrank, cache_dir=work / "cache")  # each candidate its own budget
    original, prepared = load_inputs(source, data, trust, stage, stream=True)
    methods, baselines_note = baseline_methods(original, settings.baselines)
    run = _Run(source, data, original, prepared, work, settings.fit, runtime, settings.repeats, trust,
               {"distill": settings.distill, "holdout_size": settings.holdout_size, "method": settings.method,
                "allow_slower": settings.allow_slower},
               stage, tuple(callbacks), on_step, on_event, warn, model_sha=_sha256(source), data_key=_data_key(data),
               lowrank=lowrank)
    work.mkdir(exist_ok=True)
    rows = candidates(budgets, methods)
    log(f"tradeoffs {source}: {len(rows)} candidates ({', '.join(c.name for c in rows)}), fine-tuned up to "
        f"{settings.fit.epochs} epoch(s) each; each kept in {work} as it completes")
    with stage("estimating the run's time"):
        expected = tradeoffs_estimate(original, prepared, lowrank, len(budgets), len(budgets) * len(methods))
    log(expected.line())
    for i, cand in enumerate(rows, 1):
        run.entries[cand] = _settle(run, cand, lambda text: log(f"[{i}/{len(rows)}] {text}"))
    out = report.tradeoffs_dict(source, run.model_sha, prepared.name, list(run.entries.values()), budgets=budgets,
                                epochs=settings.fit.epochs, work_dir=work, baselines=baselines_note,
                                max_drop=settings.max_drop,
                                optimizer_bytes=model_io.optimizer_bytes(source), plot=plot)
    out["estimate"] = expected.to_dict()
    if plot is not None:
        tradeoffs_plot(out, plot, force=force)
    return out
