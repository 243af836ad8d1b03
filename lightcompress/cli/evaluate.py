"""`lightcompress evaluate`: accuracy, loss and time on a data set's test images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options as o
from .library import flows, report

NAME = "evaluate"


def command(
    model: Annotated[Path, typer.Argument(help="A Keras model (.keras, .h5) or an exported artefact (.tflite, .onnx, SavedModel folder).")],
    data: o.Data = o.Data(),
    common: o.Common = o.Common(),
):
    """Accuracy (top-1; top-5 above 10 classes), loss and time on a data set's test images.

    Example: lightcompress evaluate model.keras --dataset fashion_mnist
    """
    o.check_form(common.json_out, common.markdown_out)
    spec = data.spec(train_limit=1)  # the test images only
    out = flows.evaluate_file(model, spec, trust=common.trust_model, stage=o.spinner(o.stderr()))
    o.emit(out, report.evaluation_sections, common.json_out, common.markdown_out)
