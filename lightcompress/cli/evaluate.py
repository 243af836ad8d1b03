"""`lightcompress evaluate`: accuracy, loss and time on a data set's test images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options as o

NAME = "evaluate"


def command(
    model: Annotated[Path, typer.Argument(help="A Keras model (.keras, .h5) or an exported artefact (.tflite, .onnx, SavedModel folder).")],
    dataset: o.DatasetOpt = None,
    npz_keys: o.NpzKeys = None,
    scale: o.Scale = None,
    resize: o.Resize = False,
    test_limit: o.TestLimit = None,
    json_out: o.JsonOut = False,
    markdown_out: o.MarkdownOut = False,
    trust_model: o.TrustModel = False,
    custom_objects: o.CustomObjects = None,
    debug: o.Debug = False,
):
    """Accuracy (top-1; top-5 above 10 classes), loss and time on a data set's test images.

    Example: lightcompress evaluate model.keras --dataset fashion_mnist
    """
    from .. import flows
    from .. import report
    from ..data.sets import required
    from ..training.devices import device_name
    from ..training.evaluation import evaluate

    o.check_form(json_out, markdown_out)
    spec = required(o.data_spec(dataset, npz_keys, scale, resize, 1, test_limit))  # checked before any work
    stage = o.spinner(o.stderr())
    with stage(f"loading {model}"):
        net = flows.load_any(model, trust=trust_model)
    with stage(f"loading data set {spec.name}"):
        prepared = flows.load_data_for(net, spec, stream=True)
    with stage("evaluating"):
        result = evaluate(net, prepared)  # a stream is read batch by batch
    out = report.evaluation_dict(model, prepared, result, getattr(net, "runtime", None) or device_name())
    o.emit(out, report.evaluation_sections, json_out, markdown_out)
