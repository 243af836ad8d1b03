"""The analysis flows behind ``inspect``: params, MACs and spectra per layer, data-aware errors, sensitivity."""


from __future__ import annotations

from pathlib import Path

from .. import linalg
from .. import report
from ..data.open import open_for_model
from ..data.sets import DataSpec, required
from ..defaults import DEFAULT_CALIBRATION_SAMPLES
from ..deploy import latency
from ..errors import OptionError
from ..factorization import candidates
from ..factorization.methods import get_method
from ..factorization.statistics import calibration_images, collect
from ..io import models as model_io
from ..planning import LayerFilter, analyse, read_plan
from ..validation import whole
from .common import no_progress


def inspect_file(path, *, conv_mode="channel", data: DataSpec | None = None, plan_file=None, sensitivity=False,
                 holdout=1000, runtime=None, use_cache=True, trust=False, stage=no_progress) -> dict:
    """The `inspect` report of the model in ``path``: params, MACs and spectra per layer; with
    ``data``, data-aware errors at the plan's ranks (``plan_file``) or at 95% energy; with
    ``sensitivity``, each layer's loss per rank on ``holdout`` training images; with ``runtime``
    (a ``Runtime``), each layer timed alone there, as it is and per rank. Changes nothing."""
    whole("holdout", holdout, 1)
    if conv_mode == "auto":
        raise OptionError("conv_mode='auto' picks per rank and is not for inspect; use conv_mode='channel' or conv_mode='spatial'.")
    if sensitivity:
        required(data)
    if plan_file is not None and data is None:
        raise OptionError("plan=... shows errors on calibration images; give data=NAME (a data set) too.")
    with stage(f"loading {path}"):
        net = model_io.load_model(path, trust=trust)
    with stage("spectra"):
        out = inspect_model(net, Path(path), conv_mode, on_step=getattr(stage, "step", None))
    if data is not None:
        with stage("calibrating: weight and output errors"):
            chosen = read_plan(net, plan_file) if plan_file is not None else None
            out["errors"] = layer_errors(net, open_for_model(net, data), conv_mode, chosen)
    if sensitivity:
        with stage("sensitivity analysis"):
            out["sensitivity"] = sensitivity_of(net, data, holdout, conv_mode, use_cache=use_cache)
    if runtime is not None:
        with stage("timing layers"):
            profile = latency.profile(net, LayerFilter(conv_mode="auto"), runtime, use_cache=use_cache)
        out["latency"] = report.profile_dict(profile)
    return out


def inspect_model(net, path, conv_mode="channel", on_step=None) -> dict:
    """The `inspect` report of a loaded model: params and MACs per layer, spectra of the
    factorisable ones (Conv2D matrices in ``conv_mode``). ``on_step(done, total, text)`` follows
    the spectra (kernel weights done of all)."""
    stats = candidates.layer_stats(net)
    spectra = {}
    found = [c for c in candidates.candidates(net) if c.unsupported is None]
    total, done = sum(c.size for c in found) or 1, 0
    for c in found:
        if on_step:
            on_step(done, total, f"spectrum of {c.name}")
        mode = conv_mode if conv_mode in c.modes else c.modes[0]
        spectra[c.name] = candidates.spectrum_summary(c, mode)
        c.release()
        done += c.size
    if on_step:
        on_step(total, total, "spectra done")
    return report.inspect_dict(path, stats, spectra, conv_mode)


def layer_errors(net, prepared, conv_mode="channel", plan=None, calibration_samples=None, seed=0) -> dict:
    """Per factorisable layer, at the chosen rank (the ``plan``'s, else the rank keeping 95% of
    the kernel's energy in ``conv_mode``): the weight-space and output-space relative errors of
    plain SVD and of data-aware factors, on ``calibration_samples`` training images of ``prepared``."""
    aware = get_method("data-aware")
    count = DEFAULT_CALIBRATION_SAMPLES if calibration_samples is None else calibration_samples
    x = calibration_images(prepared, count, seed)
    cal = collect(net, x, needs=aware.needs)
    planned = {p.name: p for p in plan.converted} if plan is not None else None
    rows = []
    for c in candidates.candidates(net, cal, method=aware):
        if c.unsupported is not None or c.cov is None:
            continue
        if planned is not None:
            if c.name not in planned:
                continue
            mode, rank = planned[c.name].mode, planned[c.name].rank
        else:
            mode = conv_mode if conv_mode in c.entry.matrix_modes else c.modes[0]
            rank = linalg.rank_for_energy(linalg.singular_values(c.matrix(mode)), 0.95)
        plain = c.approximate(mode, rank, cov=None)
        rows.append({"name": c.name, "mode": mode, "rank": rank,
                     "svd_weight_error": linalg.output_error(c.kernel.reshape(-1, 1), plain.reshape(-1, 1)),
                     "svd_output_error": c.output_error(mode, rank, cov=None),
                     "data_aware_weight_error": c.weight_error(mode, rank),
                     "data_aware_output_error": c.output_error(mode, rank)})
    return {"samples": cal.samples, "seconds": round(cal.seconds, 3), "dataset": prepared.name,
            "rank_from": "the plan" if plan is not None else "95% of the kernel's energy", "layers": rows}


def sensitivity_of(net, data: DataSpec, holdout=1000, conv_mode="channel", use_cache=True) -> dict:
    """The sensitivity table of ``net`` on ``holdout`` training images of ``data``, as a dict."""
    judge, _ = open_for_model(net, data).holdout(holdout, data.seed)
    return analyse(net, judge, LayerFilter(conv_mode=conv_mode), use_cache=use_cache).to_dict()


def chosen_spectra(nets, layer_rows) -> dict:
    """{layer: singular values of the first model's kernel, in the mode the others chose}."""
    spectra = {}
    for c in candidates.candidates(nets[0]):
        if c.unsupported is None:
            row = next(r for r in layer_rows if r["name"] == c.name)
            modes = [e["mode"] for e in row["models"][1:] if e and e["mode"]]
            spectra[c.name] = c.spectrum(modes[0] if modes else c.modes[0])
    return spectra

