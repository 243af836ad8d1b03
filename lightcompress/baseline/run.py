"""Drive the tf_keras worker from Keras 3: budgets, data, the subprocess, and the way back.

``baseline(model, prepared, "prune" | "cluster", target_params=F)`` returns a new Keras 3 model
(same architecture as ``model``, pruned or clustered weights) that keeps about F of the model's
parameters, fine-tuned like ``compress`` fine-tunes a low-rank model (same held-out slice left
out, same validation split, Adam with cosine decay, early stopping, epochs, distillation from the
original by default). ``qat(model, prepared)`` fine-tunes a model quantisation-aware and returns
its int8 LiteRT file beside the float model holding the QAT-trained weights.

Budgets, at F of the model's P parameters:

- prune: the selected kernels are pruned to one sparsity so that the whole model has round(F·P)
  non-zero parameters (biases and layers left alone count in full);
- cluster: each selected kernel is clustered into k centroids, k the largest power of two whose
  storage (log2(k) bits per weight plus k float32 centroids per layer, everything else float32)
  fits in F·P·32 bits: the same bytes as F·P float32 parameters.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.sets import Prepared
from ..data.synthetic import model_inputs_like
from ..defaults import DEFAULT_ALPHA, DEFAULT_HOLDOUT, DEFAULT_MIN_PARAMS, DEFAULT_TEMPERATURE
from ..deploy.lower import lower_model
from ..errors import LightCompressError, OptionError, UnsupportedModelError
from ..training import distill as kd
from ..training import finetune as ft
from ..training.evaluation import output_kind
from . import spec as spec_io

METHODS = ("prune", "cluster")
KERNEL_LAYERS = ("Dense", "Conv2D", "Conv1D", "DepthwiseConv2D")
MAX_CLUSTERS = 256
PROBE_EXAMPLES = 256
# The Keras 3 model given the worker's weights must compute what the tf_keras twin computed.
RETURN_ATOL = 1e-4
RETURN_RTOL = 1e-3


@dataclass
class Budget:
    method: str
    target_params: float
    total_params: int
    layers: list  # names of the layers whose kernels are pruned / clustered
    kernel_params: int  # parameters in those kernels
    sparsity: float | None = None  # prune
    target_nonzero: int | None = None  # prune
    clusters: int | None = None  # cluster
    bits_per_weight: int | None = None  # cluster
    storage_params: float | None = None  # cluster: storage in float32-parameter equivalents

    def to_dict(self):
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class BaselineResult:
    model: object
    method: str
    budget: Budget | None
    fit: dict
    layers: list
    twin_max_abs_diff: float
    return_max_abs_diff: float
    worker: dict = field(default_factory=dict)
    tflite: bytes | None = None  # QAT only
    probe: tuple | None = None  # (inputs, the final tf_keras twin's outputs on them)

    @property
    def nonzero(self) -> int:
        return int(sum(np.count_nonzero(np.asarray(w)) for w in self.model.get_weights()))


def _kernel_layers(model, ordered, min_params, layer_filter):
    chosen = []
    for layer in ordered:
        if type(layer).__name__ not in KERNEL_LAYERS or not layer.get_weights():
            continue
        kernel = np.asarray(layer.get_weights()[0])
        if kernel.size < min_params:
            continue
        if layer_filter is not None and layer_filter.reason_for_name(layer.name) is not None:
            continue
        chosen.append((layer.name, int(kernel.size)))
    return chosen


def plan_budget(model, method, target_params, *, min_params=DEFAULT_MIN_PARAMS, layer_filter=None) -> Budget:
    """The pruning sparsity or number of clusters that keeps about ``target_params`` of the model."""
    if method not in METHODS:
        raise OptionError("is unknown", option="method", value=method, allowed="prune or cluster")
    if isinstance(target_params, bool) or not isinstance(target_params, (int, float)) or not 0 < target_params < 1:
        raise OptionError("is not a fraction", option="target_params", value=target_params,
                          allowed="a number in (0, 1), e.g. 0.2")
    _, ordered = spec_io.model_spec(model)
    chosen = _kernel_layers(model, ordered, min_params, layer_filter)
    if not chosen:
        raise LightCompressError(
            f"no Dense/Conv kernel of at least {min_params} weights to {method}; lower min_params.")
    total = int(model.count_params())
    kernels = sum(n for _, n in chosen)
    rest = total - kernels
    names = [n for n, _ in chosen]
    if method == "prune":
        target = int(round(target_params * total))
        keep = target - rest
        if keep <= 0:
            raise LightCompressError(
                f"target_params={target_params:g} ({target:,} params) is below the {rest:,} params of the layers "
                f"and biases left unpruned; aim higher or lower min_params.")
        return Budget(method, target_params, total, names, kernels, sparsity=1 - keep / kernels,
                      target_nonzero=target)
    allowed_bits = target_params * total * 32
    best = None
    for bits in range(1, int(math.log2(MAX_CLUSTERS)) + 1):
        k = 2 ** bits
        used = rest * 32 + kernels * bits + len(chosen) * k * 32
        if used <= allowed_bits:
            best = (k, bits, used / 32)
    if best is None:
        raise LightCompressError(
            f"target_params={target_params:g} is too small for clustering: even 2 clusters per kernel need more "
            f"storage than {target_params:g} of the model's float32 params; aim higher or lower min_params.")
    k, bits, storage = best
    return Budget(method, target_params, total, names, kernels, clusters=k, bits_per_weight=bits,
                  storage_params=storage)


# -- the worker -------------------------------------------------------------------------------

def _worker_env():
    env = dict(os.environ)
    env["TF_USE_LEGACY_KERAS"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


WORKER = Path(__file__).with_name("worker.py")  # imports nothing from lightcompress


def run_worker(folder, on_event=None) -> dict:
    """Run ``python .../baseline/worker.py folder``; its result.json as a dict. The worker runs by
    its file path, not as ``-m lightcompress.baseline.worker``: that would import the package,
    and so Keras 3, in the tf_keras process."""
    folder = Path(folder)
    proc = subprocess.Popen([sys.executable, str(WORKER), str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_worker_env())
    try:
        for line in proc.stdout:
            line = line.strip()
            if line.startswith("{") and on_event is not None:
                try:
                    on_event(json.loads(line))
                except json.JSONDecodeError:
                    pass
        stderr = proc.stderr.read()
        code = proc.wait()
    except KeyboardInterrupt:
        proc.kill()
        proc.wait()
        raise
    result_path = folder / "result.json"
    if code != 0 or not result_path.exists():
        missing = "tensorflow_model_optimization" in stderr or "tf_keras" in stderr
        if missing and "ModuleNotFoundError" in stderr:
            raise LightCompressError(
                "the baselines need tensorflow-model-optimization and tf-keras; install them with: "
                'pip install "lightcompress[baseline]"')
        last = [s for s in stderr.strip().splitlines() if s.strip()][-1:] or [f"exit code {code}"]
        raise LightCompressError(f"the tf_keras worker failed: {last[0]}")
    result = json.loads(result_path.read_text())
    if "error" in result:
        raise UnsupportedModelError(result["error"])
    return result


def _settings_dict(settings):
    return {k: getattr(settings, k) for k in ("epochs", "batch_size", "learning_rate", "validation_split",
                                              "patience", "seed")}


def _training_arrays(model, prepared, settings, distill, alpha, temperature, holdout_size):
    """Fine-tuning arrays exactly as ``compress`` would fine-tune: the held-out slice removed,
    the same validation split, and the teacher's softened outputs packed with the labels."""
    _, train = prepared.holdout(holdout_size, settings.seed)
    kind = output_kind(model, train.head("train", 64)[0])
    (x, y), (x_val, y_val) = ft._split(train, settings.validation_split, settings.seed)
    if distill:
        if kind == "binary":
            raise LightCompressError("distillation needs a multi-class output; this model has one unit: pass distill=False.")
        y = kd.pack(y, kd.soft_targets(model, x, temperature, kind))
        if len(x_val):
            y_val = kd.pack(y_val, kd.soft_targets(model, x_val, temperature, kind))
    return kind, {"x_fit": x, "y_fit": y, "x_val": x_val, "y_val": y_val}


def _probe(model, prepared):
    x = prepared.head("test", PROBE_EXAMPLES)[0]
    return x, np.asarray(model.predict(x, batch_size=256, verbose=0), np.float32)


def _check_return(model, x, expected):
    got = np.asarray(model.predict(x, batch_size=256, verbose=0), np.float32)
    diff = float(np.max(np.abs(got - expected)))
    if not np.allclose(got, expected, atol=RETURN_ATOL, rtol=RETURN_RTOL):
        raise LightCompressError(
            f"the Keras 3 model holding the tf_keras weights differs from the twin (max abs diff {diff:.3g}); "
            f"nothing was kept: report this as a bug.")
    return diff


def check_twin(model, x=None, workdir=None) -> float:
    """Build the tf_keras twin of ``model`` in the worker and check its outputs on ``x`` (random
    inputs when None); the largest absolute difference. Refuses unsupported layers first."""
    x = model_inputs_like(model, batch=32) if x is None else x
    with tempfile.TemporaryDirectory(prefix="lightcompress-baseline-", dir=workdir) as folder:
        spec_io.write_model(model, folder)
        y = np.asarray(model.predict(x, verbose=0), np.float32)
        np.savez(Path(folder) / "data.npz", x_probe=np.asarray(x, np.float32), y_probe=y)
        (Path(folder) / "job.json").write_text(json.dumps({"method": "check"}))
        return run_worker(folder)["twin_max_abs_diff"]


def _run(model, prepared, method, job, settings, distill, alpha, temperature, holdout_size, on_event, workdir):
    spec_io.model_spec(model)  # refuses unsupported layers before any work
    kind, arrays = _training_arrays(model, prepared, settings, distill, alpha, temperature, holdout_size)
    x_probe, y_probe = _probe(model, prepared)
    job.update(method=method, kind=kind, settings=_settings_dict(settings),
               distill={"alpha": alpha, "temperature": temperature} if distill else None)
    with tempfile.TemporaryDirectory(prefix="lightcompress-baseline-", dir=workdir) as folder:
        folder = Path(folder)
        spec_io.write_model(model, folder)
        np.savez(folder / "data.npz", x_probe=x_probe, y_probe=y_probe, **arrays)
        (folder / "job.json").write_text(json.dumps(job))
        result = run_worker(folder, on_event)
        new_model = spec_io.put_weights(model, folder / "weights_out.npz")
        twin_out = np.load(folder / "probe_out.npy")
        tflite = (folder / "qat.tflite").read_bytes() if (folder / "qat.tflite").exists() else None
    bad = next((w.name for w in new_model.weights if not np.all(np.isfinite(np.asarray(w)))), None)
    if bad is not None:
        raise LightCompressError(f"training made weight '{bad}' non-finite (NaN or inf), so nothing is kept; "
                                 f"lower the learning rate.")
    back = _check_return(new_model, x_probe, twin_out)
    return new_model, result, back, tflite, (x_probe, twin_out)


def baseline(model, prepared: Prepared, method, target_params, *, settings: ft.FitSettings | None = None,
             distill=True, alpha=DEFAULT_ALPHA, temperature=DEFAULT_TEMPERATURE, min_params=DEFAULT_MIN_PARAMS,
             layer_filter=None, holdout_size=DEFAULT_HOLDOUT, on_event=None, workdir=None) -> BaselineResult:
    """Prune or cluster ``model`` with tfmot to the budget low-rank meets at ``target_params``,
    fine-tuned like ``compress``; ``model`` is not changed."""
    settings = settings or ft.FitSettings()
    ft.Distillation(alpha, temperature)
    budget = plan_budget(model, method, target_params, min_params=min_params, layer_filter=layer_filter)
    job = {"layers": budget.layers, "sparsity": budget.sparsity, "clusters": budget.clusters}
    new_model, result, back, _, probe = _run(model, prepared, method, job, settings, distill, alpha, temperature,
                                      holdout_size, on_event, workdir)
    return BaselineResult(new_model, method, budget, result["fit"], result["layers"], result["twin_max_abs_diff"],
                          back, {k: result.get(k) for k in ("tf_keras", "tfmot", "tf_keras_is_legacy")}, probe=probe)


def qat(model, prepared: Prepared, *, settings: ft.FitSettings | None = None, distill=True, alpha=DEFAULT_ALPHA,
        temperature=DEFAULT_TEMPERATURE, holdout_size=DEFAULT_HOLDOUT, on_event=None, workdir=None) -> BaselineResult:
    """Quantisation-aware fine-tuning (tfmot ``quantize_model``) of ``model`` lowered to standard
    layers, distilled from ``model`` itself by default. ``result.tflite``: the int8 LiteRT file;
    ``result.model``: the lowered float model holding the QAT-trained weights."""
    settings = settings or ft.FitSettings()
    ft.Distillation(alpha, temperature)
    lowered = lower_model(model)
    new_model, result, back, tflite, probe = _run(lowered, prepared, "qat", {}, settings, distill, alpha, temperature,
                                           holdout_size, on_event, workdir)
    return BaselineResult(new_model, "qat", None, result["fit"], result["layers"], result["twin_max_abs_diff"],
                          back, {k: result.get(k) for k in ("tf_keras", "tfmot", "tf_keras_is_legacy")}, tflite, probe)
