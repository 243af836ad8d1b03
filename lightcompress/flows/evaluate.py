"""The ``evaluate`` flow: a model file or an exported artefact, on a data set's test images."""

from __future__ import annotations

from .. import report
from ..data.sets import DataSpec, required
from ..training.devices import device_name
from ..training.evaluation import evaluate
from .common import load_any, load_data_for, no_progress


def evaluate_file(path, data: DataSpec | None, *, trust=False, stage=no_progress) -> dict:
    """The `evaluate` report of ``path`` (a Keras model, or a ``.tflite``/``.onnx``/SavedModel
    artefact run in its own runtime) on the test images of ``data``, read batch by batch."""
    spec = required(data)  # before the model is loaded
    with stage(f"loading {path}"):
        net = load_any(path, trust=trust)
    with stage(f"loading data set {spec.name}"):
        prepared = load_data_for(net, spec, stream=True)
    with stage("evaluating"):
        result = evaluate(net, prepared)
    return report.evaluation_dict(path, prepared, result, getattr(net, "runtime", None) or device_name())
