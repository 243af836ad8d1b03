"""`lightcompress evaluate`: accuracy, loss and time on a data set's test images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options as o

NAME = "evaluate"


def command(
    model: Annotated[Path, typer.Argument(help="A Keras model (.keras, .h5) or an exported artefact (.tflite, .onnx, SavedModel folder).")],
    data: o.Data = o.Data(),
    common: o.Common = o.Common(),
):
    """Accuracy (top-1; top-5 above 10 classes), loss and time on a data set's test images.

    Example: lightcompress evaluate model.keras --dataset fashion_mnist
    """
    from .. import flows
    from .. import report
    from ..data.sets import required
    from ..training.devices import device_name
    from ..training.evaluation import evaluate

    o.check_form(common.json_out, common.markdown_out)
    spec = required(data.spec(train_limit=1))  # checked before any work
    stage = o.spinner(o.stderr())
    with stage(f"loading {model}"):
        net = flows.load_any(model, trust=common.trust_model)
    with stage(f"loading data set {spec.name}"):
        prepared = flows.load_data_for(net, spec, stream=True)
    with stage("evaluating"):
        result = evaluate(net, prepared)  # a stream is read batch by batch
    out = report.evaluation_dict(model, prepared, result, getattr(net, "runtime", None) or device_name())
    o.emit(out, report.evaluation_sections, common.json_out, common.markdown_out)
