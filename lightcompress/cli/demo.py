"""`lightcompress demo`: the whole job on a shipped sample model and embedded data, offline."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from .._deferred import deferred
from ..errors import OptionError
from ..validation import whole as check_whole
from . import options as o
from .library import RichProgress

TargetParams = deferred("lightcompress.planning", "TargetParams")
demo = deferred("lightcompress.flows.demo")

NAME = "demo"


def command(
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder for the demo's files. Default: a new temporary folder.")] = None,
    target_params: Annotated[float, typer.Option(help="Keep about this fraction of the sample model's params (0.2 = 5x smaller).")] = 0.2,
    epochs: Annotated[int, typer.Option(help="Most fine-tuning epochs.")] = 10,
    runtime: o.RuntimeOpt = None,
    force: o.Force = False,
    json_out: o.JsonOut = False,
    markdown_out: o.MarkdownOut = False,
    debug: o.Debug = False,
):
    """Compress a trained sample model 5x, export it as a verified int8 .tflite, and compare: offline.

    Runs compress on the shipped digits CNN (84k params, mostly Dense) and the embedded digits
    data set (scikit-learn's 1,797 real 8x8 handwritten digits): sensitivity analysis, rank
    allocation with the latency guard, distilled fine-tuning, then the verified int8 LiteRT file,
    and says plainly whether the result is faster where it was timed.
    """
    o.check_form(json_out, markdown_out)
    TargetParams(target_params)  # checked before the folder is made
    check_whole("epochs", epochs, 1)
    if out_dir is not None and not out_dir.is_dir():
        raise OptionError(f"--out {out_dir} is not a folder; create it first.")
    folder = out_dir or Path(tempfile.mkdtemp(prefix="lightcompress-demo-"))
    demo.check_outputs(folder, force)
    err = o.stderr()
    err.print(f"demo: compress the shipped digits CNN to {target_params:g} of its params (sensitivity, "
              f"rank plan, fine-tuning up to {epochs} epochs with distillation), export it as int8 LiteRT "
              f"and compare it with the original; files in {folder}", highlight=False, markup=False)
    progress = RichProgress(err)
    try:
        out = demo.run(folder, target_params, epochs, force, log=lambda m: err.print(m, highlight=False),
                       callbacks=[progress], stage=o.spinner(err), runtime=runtime)
    finally:
        progress.stop()
    o.emit(out, demo.sections, json_out, markdown_out)
