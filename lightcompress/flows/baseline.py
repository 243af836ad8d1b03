"""The ``baseline`` flow: tfmot pruning, clustering and QAT on a model file (run in a worker process)."""


from __future__ import annotations

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


def baseline_file(source, output=None, *, method, target_params=None, data: DataSpec | None = None,
                  settings=None, distill=True, alpha=None, temperature=None, min_params=None, layer_filter=None,
                  holdout_size=None, sizes=True, threads=2, force=False, trust=False, on_event=None,
                  stage=no_progress) -> dict:
    """The tfmot baselines on a model file: ``method`` "prune" or "cluster" at ``target_params``
    (saved as ``<stem>.pruned.keras`` / ``<stem>.clustered.keras``, a normal Keras 3 model), or
    "qat": quantisation-aware int8 (saved as ``<stem>.qat.int8.tflite``, reported against
    post-training int8). ``sizes``: also export LiteRT float and int8 files and time them."""
    source = Path(source)
    data = required(data)  # none given: said before any other check
    settings = settings or ft.FitSettings()
    alpha = d.DEFAULT_ALPHA if alpha is None else alpha
    temperature = d.DEFAULT_TEMPERATURE if temperature is None else temperature
    ft.Distillation(alpha, temperature)
    holdout_size = whole("holdout_size", d.DEFAULT_HOLDOUT if holdout_size is None else holdout_size, 1)
    min_params = d.DEFAULT_MIN_PARAMS if min_params is None else min_params
    if method == "qat":
        if target_params is not None:
            raise OptionError("target_params does not apply to method=qat (it keeps every weight, in int8); leave it out.")
        target = ex.check_output(output or source.with_name(f"{stem(source)}.qat.int8.tflite"), "litert",
                                 force=force, inputs=[source])
    elif method in run.METHODS:
        if target_params is None:
            raise OptionError(f"method={method} needs a budget; give target_params=F (0.2 = 5x fewer params).")
        suffix = {"prune": "pruned", "cluster": "clustered"}[method]
        target = model_io.check_output(output or source.with_name(f"{stem(source)}.{suffix}.keras"),
                                       force=force, inputs=[source])
    else:
        raise OptionError("is unknown", option="method", value=method, allowed="prune, cluster or qat")
    with stage(f"loading {source}"):
        original = model_io.load_model(source, trust=trust)
    if method != "qat":  # budget and layer whitelist refused before the data is read

        model_spec(original)
        run.plan_budget(original, method, target_params, min_params=min_params, layer_filter=layer_filter)
    with stage(f"loading data set {data.name}"):
        prepared = open_for_model(original, data, in_memory=True)
    common = dict(settings=settings, distill=distill, alpha=alpha, temperature=temperature,
                  holdout_size=holdout_size, on_event=on_event)
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
    if sizes:
        with stage("exporting LiteRT float and int8 files and timing them"):
            measured = {"original": sz.deployment_sizes(original, prepared, threads=threads),
                        result.method: sz.deployment_sizes(result.model, prepared, threads=threads)}
    return report.baseline_dict(source, target, result, prepared, before, after, measured)

