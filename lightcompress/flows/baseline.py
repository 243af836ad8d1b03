"""The ``baseline`` flow: tfmot pruning, clustering and QAT on a model file (run in a worker process)."""


from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import defaults as d
from .. import report
from ..baseline import run
from ..baseline.spec import model_spec
from ..data.open import open_for_model
from ..data.sets import DataSpec, required
from ..deploy import export as ex
from ..deploy import sizes as sz
from ..errors import OptionError
from ..io import models as model_io
from ..training import finetune as ft
from ..training.evaluation import evaluate
from ..validation import whole
from .common import no_progress, stem


@dataclass(frozen=True)
class BaselineSettings:
    """baseline's choices, checked once (``make``): the tfmot ``method`` ("prune", "cluster" or
    "qat") and its budget, the fine-tuning, the distillation mix (``distill``: whether to), the
    layers it may touch, the held-out slice, and whether and with how many threads to time LiteRT
    files of the result (``sizes``, ``threads``)."""

    method: str
    target_params: float | None
    fit: ft.FitSettings
    distill: bool
    distillation: ft.Distillation
    min_params: int
    layer_filter: object
    holdout_size: int
    sizes: bool
    threads: int

    @classmethod
    def make(cls, method, *, target_params=None, settings: ft.FitSettings | None = None, distill=True, alpha=None,
             temperature=None, min_params=None, layer_filter=None, holdout_size=None, sizes=True,
             threads=2) -> BaselineSettings:
        """The settings of a baseline run, refused before any work."""
        mix = ft.Distillation(d.DEFAULT_ALPHA if alpha is None else alpha,
                              d.DEFAULT_TEMPERATURE if temperature is None else temperature)
        holdout_size = whole("holdout_size", d.DEFAULT_HOLDOUT if holdout_size is None else holdout_size, 1)
        if method == "qat":
            if target_params is not None:
                raise OptionError("target_params does not apply to method=qat (it keeps every weight, in int8); "
                                  "leave it out.")
        elif method in run.METHODS:
            if target_params is None:
                raise OptionError(f"method={method} needs a budget; give target_params=F (0.2 = 5x fewer params).")
        else:
            raise OptionError("is unknown", option="method", value=method, allowed="prune, cluster or qat")
        return cls(method=method, target_params=target_params, fit=settings or ft.FitSettings(), distill=bool(distill),
                   distillation=mix, min_params=d.DEFAULT_MIN_PARAMS if min_params is None else min_params,
                   layer_filter=layer_filter, holdout_size=holdout_size, sizes=bool(sizes), threads=threads)


def baseline_file(source, settings: BaselineSettings, output=None, *, data: DataSpec | None = None, force=False,
                  trust=False, on_event=None, stage=no_progress) -> dict:
    """The tfmot baselines on a model file as ``settings`` say (``BaselineSettings.make``):
    "prune" or "cluster" at ``target_params`` (saved as ``<stem>.pruned.keras`` /
    ``<stem>.clustered.keras``, a normal Keras 3 model), or "qat": quantisation-aware int8 (saved
    as ``<stem>.qat.int8.tflite``, reported against post-training int8). ``settings.sizes``: also
    export LiteRT float and int8 files and time them."""
    source = Path(source)
    data = required(data)  # none given: said before any other check
    method, target_params, threads = settings.method, settings.target_params, settings.threads
    min_params, layer_filter = settings.min_params, settings.layer_filter
    if method == "qat":
        target = ex.check_output(output or source.with_name(f"{stem(source)}.qat.int8.tflite"), "litert",
                                 force=force, inputs=[source])
    else:
        suffix = {"prune": "pruned", "cluster": "clustered"}[method]
        target = model_io.check_output(output or source.with_name(f"{stem(source)}.{suffix}.keras"),
                                       force=force, inputs=[source])
    with stage(f"loading {source}"):
        original = model_io.load_model(source, trust=trust)
    if method != "qat":  # budget and layer whitelist refused before the data is read

        model_spec(original)
        run.plan_budget(original, method, target_params, min_params=min_params, layer_filter=layer_filter)
    with stage(f"loading data set {data.name}"):
        prepared = open_for_model(original, data, in_memory=True)
    mix = settings.distillation
    common = dict(settings=settings.fit, distill=settings.distill, alpha=mix.alpha, temperature=mix.temperature,
                  holdout_size=settings.holdout_size, on_event=on_event)
    if method == "qat":
        result = run.qat(original, prepared, **common)
        model_io.atomic_write(target, lambda tmp: tmp.write_bytes(result.tflite), [source])
        with stage("post-training int8 against QAT int8"):
            qat_compare = {"post-training int8 (input model)": sz.deployment_sizes(original, prepared, threads=threads)["litert_int8"],
                           "QAT int8": sz.tflite_sizes(target, result.model, prepared, threads=threads)}
        before, after = evaluate(original, prepared), evaluate(result.model, prepared)
        return report.baseline_dict(source, target, result, prepared, before, after, None, qat_compare)
    result = run.baseline(original, prepared, method, target_params, min_params=min_params,
                          layer_filter=layer_filter, **common)
    model_io.save_model(result.model, target, force=force, inputs=[source])
    with stage("evaluating"):
        before, after = evaluate(original, prepared), evaluate(model_io.load_model(target), prepared)
    measured = None
    if settings.sizes:
        with stage("exporting LiteRT float and int8 files and timing them"):
            measured = {"original": sz.deployment_sizes(original, prepared, threads=threads),
                        result.method: sz.deployment_sizes(result.model, prepared, threads=threads)}
    return report.baseline_dict(source, target, result, prepared, before, after, measured)

