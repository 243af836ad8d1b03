"""The ``compare`` flow: several models or exported artefacts side by side, timed in turns."""


from __future__ import annotations

import numpy as np

from ..factorization import candidates as analyze
from ..deploy import measure
from ..deploy.timing import Runtime
from .. import report
from ..data.sets import DataSpec
from ..training.devices import device_name
from ..training.evaluation import agreement, evaluate
from ..validation import whole
from .common import load_any, load_data_for, no_progress


def compare_models(nets, paths, prepared=None, batches=(1, 32), repeats=30, warmup=5,
                   runtime: Runtime | None = None) -> dict:
    """Several models side by side: measured size, cost and latency, all timed in turns at each
    batch size (``measure.measure_all``: Keras models in ``runtime``, None: ``Runtime()``;
    exported artefacts in their own, loaded with their thread count); with data, accuracy and
    agreement with the first. ``nets`` holds Keras models or loaded artefacts
    (``runtimes.load_artifact``). Returns the `compare` report dict."""
    from ..deploy.runtimes import Artifact

    check_batches(batches, nets)
    measures = measure.measure_all(nets, paths, batches, repeats, warmup, runtime)
    evaluations = agreements = None
    if prepared is not None:
        evaluations = [evaluate(net, prepared) for net in nets]
        agreements = [agreement(nets[0], net, prepared) for net in nets]
    keras_nets = [n for n in nets if not isinstance(n, Artifact)]
    layers = analyze.matching_layers(keras_nets) if len(keras_nets) == len(nets) else []
    return report.compare_dict(measures, device_name(), evaluations, agreements, layers,
                               prepared.name if prepared else None)


def check_batches(batches, nets=()):
    """Each timed batch size a whole number >= 1 and, once the models are known, one whose random
    inputs fit in the memory this process has (a batch the machine cannot hold is refused before
    any timing, not met by a MemoryError)."""
    from ..deploy.runtimes import Artifact
    from ..errors import OptionError
    from ..io.models import available_memory

    for batch in batches:
        whole("batch", batch, 1)
    free = available_memory()
    if free is None or not nets:
        return
    for net in nets:
        shapes = net._input_shapes() if isinstance(net, Artifact) else [tuple(t.shape)[1:] for t in net.inputs]
        example = sum(int(np.prod([d or 1 for d in shape], dtype=np.float64)) for shape in shapes) * 4
        for batch in batches:
            if batch * example > free:
                raise OptionError(f"needs {batch * example / 2**30:.3g} GiB for one batch of inputs, more than the "
                                  f"{free / 2**30:.3g} GiB of memory free", option="batch", value=batch,
                                  allowed=f"a batch of at most {max(1, free // max(example, 1)):,}")


def compare_files(paths, *, data: DataSpec | None = None, batches=(1, 32), repeats=30, warmup=5,
                  trust=False, runtime: Runtime | str | None = None, threads=None, stage=no_progress):
    """``compare_models`` on files (Keras models and exported artefacts): (report dict, loaded).
    ``runtime``: a ``Runtime``, or a runtime name with ``threads`` (see ``Runtime.parse``); its
    thread count is also the artefacts'."""
    from ..errors import OptionError

    if len(paths) < 2:
        raise OptionError("compare needs at least two models: the reference first, then the others.")
    runtime = Runtime.parse(runtime, threads)
    whole("repeats", repeats, 1)  # checked here, before models are loaded, not when timing starts
    whole("warmup", warmup, 0)
    check_batches(batches)
    with stage("loading models"):
        nets = [load_any(path, trust, runtime.threads) for path in paths]
    prepared = None
    if data is not None:
        with stage(f"loading data set {data.name}"):
            prepared = load_data_for(nets[0], data, stream=True)
    with stage("timing and evaluating"):
        out = compare_models(nets, paths, prepared, batches, repeats, warmup, runtime=runtime)
    return out, nets

