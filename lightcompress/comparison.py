"""Several models side by side: measured size, cost and latency, and with data accuracy and
agreement with the first. Returns the `compare` report dict (see report.compare_dict)."""

from __future__ import annotations

from . import analyze, measure, report
from . import finetune as ft


def compare_models(nets, paths, prepared=None, batches=(1, 32), repeats=30, warmup=5, on_model=None):
    measures = []
    for net, path in zip(nets, paths):
        if on_model:
            on_model(path)
        measures.append(measure.measure(net, path, batches=batches, repeats=repeats, warmup=warmup))
    evaluations = agreements = None
    if prepared is not None:
        evaluations = [ft.evaluate(net, prepared) for net in nets]
        agreements = [ft.agreement(nets[0], net, prepared.x_test) for net in nets]
    return report.compare_dict(measures, ft.device_name(), evaluations, agreements,
                               analyze.matching_layers(nets), prepared.name if prepared else None)
