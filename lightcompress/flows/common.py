"""What the command flows share: loading a model and its data set, progress over decompositions, output names."""


from __future__ import annotations

import contextlib
from pathlib import Path

import keras
import numpy as np

from ..data.open import open_for_model
from ..data.sets import DataSpec
from ..deploy import runtimes
from ..deploy.runtimes import Artifact
from ..factorization import candidates
from ..io import models as model_io
from ..planning import LayerFilter
from ..training import finetune as ft
from ..training.evaluation import evaluate


def no_progress(text):
    return contextlib.nullcontext()


def data_inputs(data) -> list:
    """The data set's own file or folder, protected like every input from being an output."""
    return [Path(data.source)] if data is not None and data.source and Path(data.source).exists() else []


def load_inputs(source, data, trust, stage, stream=False):
    """(the model in ``source``, ``data`` prepared for it or None); ``stream``: folders, TFRecord
    files and module:function sources are read in batches (``streams.Streamed``), not whole;
    else every data set is in memory (``memory.Prepared``)."""
    with stage(f"loading {source}"):
        net = model_io.load_model(source, trust=trust)
    if data is None:
        return net, None
    with stage(f"loading data set {data.name}"):
        return net, open_for_model(net, data, in_memory=not stream)


def factorisable(net, layer_filter=None) -> list:
    """The candidates (``factorization.candidates``) of the layers ``layer_filter`` would consider
    factorising; no kernel is decomposed."""
    return (layer_filter or LayerFilter()).chosen([c for c in candidates.candidates(net) if c.unsupported is None])[0]


def macs_per_example(net, unknown=0.0) -> float:
    """Multiply-accumulates of one forward pass of ``net``; layers whose MACs are not counted add
    nothing, and ``unknown`` stands for the whole when a layer's size is not fixed (``math.inf``
    where an unknown cost must not pass for a small one)."""
    stats = candidates.layer_stats(net)
    if any(s.size_unknown for s in stats):
        return unknown
    return float(sum(s.macs or 0 for s in stats))


def decomposition_progress(net, on_step, layer_filter=None):
    """A context in which every kernel decomposition of ``net`` advances ``on_step(done, total,
    text)``, counted in kernel weights (a decomposition costs about its kernel's size, so a big
    model's largest kernels dominate the bar as they dominate the time). Nothing when ``on_step``
    is None."""
    if on_step is None:
        return contextlib.nullcontext()

    layer_filter = layer_filter or LayerFilter()
    total = sum(c.size * len(layer_filter.modes(c)) for c in factorisable(net, layer_filter)) or 1
    done = [0]

    def advance(c, mode):
        done[0] = min(total, done[0] + c.size)
        on_step(done[0], total, f"decomposed {c.name} ({mode})")

    on_step(0, total, "decomposing kernels")
    return candidates.watching(advance)


def stem(path) -> str:
    """``dir/model.light.keras`` -> ``model``."""
    return Path(path).name.split(".")[0]


CHECK_SAMPLES = 2000  # test images of a stream the conversion's output check runs on


def test_images(prepared):
    """The test images of in-memory data; of a stream, a bounded sample of them."""
    return prepared.arrays("test", CHECK_SAMPLES)[0]


def tune(net, prepared, settings, teacher=None, callbacks=()):
    """Evaluate, fine-tune in place, evaluate: (FitResult, before, after)."""
    before = evaluate(net, prepared)
    fit = ft.finetune(net, prepared, settings, callbacks=callbacks, teacher=teacher)
    return fit, before, evaluate(net, prepared)


def load_any(path, trust=False, threads=2):
    """A Keras model file, or an exported artefact (.tflite, .onnx, SavedModel folder) loaded in
    its runtime. ``trust``: allow Lambda layers and SavedModel folders (see ``load_artifact``)."""
    if runtimes.is_artifact_path(path):
        return runtimes.load_artifact(path, threads=threads, trust=trust)
    return model_io.load_model(path, trust=trust)


def load_data_for(net, data: DataSpec, stream=False):
    """``data`` shaped for a Keras model or an artefact (through a stand-in Keras model with the
    artefact's input shape and output size); ``stream``: see ``load_inputs``."""
    if not isinstance(net, Artifact):
        return open_for_model(net, data, in_memory=not stream)
    shape = net._input_shapes()[0]
    units = np.asarray(net.predict(np.zeros((1, *shape), np.float32))).shape[-1]
    stand_in = keras.Sequential([keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(units)])
    return open_for_model(stand_in, data, in_memory=not stream)

