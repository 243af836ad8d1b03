"""lightcompress: low-rank compression of trained Keras models with LightLayers.

The verbs a Python user needs, each a thin door into the library (``flows`` holds the same work
on files, ``cli`` the command line). Every verb takes a model or the path of a model file:

>>> import keras, lightcompress
>>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
...                          keras.layers.Dense(10, activation="softmax")])
>>> plan = lightcompress.plan(model, rank=8)
>>> [(p.name, p.rank) for p in plan.converted]
[('dense', 8), ('dense_1', 7)]

Importing the package is cheap (Keras is imported when a verb or class is first used) and does
one thing: every LightLayer twin is registered with Keras as soon as Keras is loaded, whatever the
order of the imports, so ``import lightcompress`` then ``keras.models.load_model`` loads any
compressed model.
"""

from __future__ import annotations

import importlib
import os

from ._registration import register_when_keras_loads
from ._version import __version__
from .defaults import DEFAULT_ALLOCATION, DEFAULT_CONV_MODE

register_when_keras_loads()

_CLASSES = {
    "LightCompressError": "errors",
    "LayerFilter": "planning", "FixedRank": "planning", "Energy": "planning", "Ratio": "planning",
    "TargetParams": "planning", "TargetMacs": "planning", "TargetLatency": "planning", "Plan": "planning",
    "DataSpec": "data.sets", "FitSettings": "training.finetune", "FitResult": "training.finetune",
    "Evaluation": "training.evaluation", "Conversion": "flows.convert", "CompressResult": "flows.compress",
    "ExportResult": "deploy.export",
}
TWINS = ["LightDense", "LightConv2D", "LightConv1D", "LightConv2DTranspose", "LightSeparableConv2D",
         "LightEinsumDense", "LightEmbedding", "LightReversibleEmbedding", "LightTimeDistributed",
         "LightMultiHeadAttention"]
VERBS = ["load_model", "inspect", "plan", "convert", "finetune", "compress", "evaluate", "export", "compare"]

__all__ = ["__version__", *VERBS, *TWINS, *_CLASSES]


def __getattr__(name):
    if name in TWINS:
        return getattr(importlib.import_module(".layers", __name__), name)
    if name in _CLASSES:
        return getattr(importlib.import_module(f".{_CLASSES[name]}", __name__), name)
    raise AttributeError(f"module 'lightcompress' has no attribute {name!r}")


def _model(model, trust=False):
    """``model`` itself, or the model in the file it names."""
    if isinstance(model, (str, os.PathLike)):
        return load_model(model, trust=trust)
    from .io.models import check_model

    return check_model(model)


def load_model(path, *, trust=False, custom_objects=None):
    """Load a model from ``.keras`` or ``.h5`` (Keras 2 or 3), uncompiled, refusing Lambda layers
    unless ``trust=True``. A subclassed model needs its classes: ``custom_objects`` is the Python
    file or module that defines and registers them, imported first (it runs that code).

    >>> import lightcompress
    >>> lightcompress.load_model("no/such/model.h5")
    Traceback (most recent call last):
    lightcompress.errors.ModelLoadError: no/such/model.h5: no such file; check the path.
    """
    from .io import models

    return models.load_model(path, trust=trust, custom_objects=custom_objects)


def inspect(model, *, conv_mode="channel") -> dict:
    """Params and MACs per layer and the spectrum of every factorisable kernel (the ``inspect``
    report as a dict); Conv2D spectra in ``conv_mode``.

    >>> import keras, lightcompress
    >>> model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(16)])
    >>> report = lightcompress.inspect(model)
    >>> report["totals"]["params"], report["totals"]["macs"]
    (528, 512)
    """
    from .flows.inspect import inspect_model

    net = _model(model)
    return inspect_model(net, str(model) if isinstance(model, (str, os.PathLike)) else net.name, conv_mode)


def _rule_and_filter(rules, include, exclude, min_params, conv_mode, min_saving):
    from .defaults import DEFAULT_MIN_PARAMS, DEFAULT_MIN_SAVING
    from .planning import LayerFilter, rank_rule

    layer_filter = LayerFilter(include, exclude, DEFAULT_MIN_PARAMS if min_params is None else min_params,
                               conv_mode, DEFAULT_MIN_SAVING if min_saving is None else min_saving)
    return rank_rule(**rules), layer_filter


def plan(model, *, rank=None, energy=None, ratio=None, target_params=None, target_macs=None, target_latency=None,
         runtime=None, include=(), exclude=(), min_params=None, min_saving=None, conv_mode=DEFAULT_CONV_MODE):
    """Decide a rank and mode (or a reason to keep it) for every factorisable layer: a ``Plan``.

    Exactly one rule: ``rank=``, ``energy=``, ``ratio=``, ``target_params=``, ``target_macs=``
    or ``target_latency=`` (a fraction of the batch-1 latency in ``runtime``, "litert" or
    "keras": each layer is timed per rank first); layers chosen by
    ``include=``, ``exclude=`` (globs), ``min_params=``, ``min_saving=`` (fraction of a layer a
    rank must save) and ``conv_mode=`` ("channel", "spatial", "tucker" or "auto", the default
    ``defaults.DEFAULT_CONV_MODE``: per Conv2D the mode with the lowest error). ``rank=n`` gives rank n in every converted layer, in any mode,
    unless clipped to the largest rank that saves parameters (the plan's notes say where).
    A budget's plan says what it keeps in ``plan.budget``.

    >>> import keras, lightcompress
    >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256), keras.layers.Dense(3)])
    >>> p = lightcompress.plan(model, target_params=0.5)
    >>> p.policy, [layer.skipped for layer in p.layers]
    ('target params 0.5', [None, '771 params, below min_params=1000'])
    """
    from .flows.convert import timed
    from .planning import make_plan

    rules = {"rank": rank, "energy": energy, "ratio": ratio, "target_params": target_params,
             "target_macs": target_macs, "target_latency": target_latency}
    rule, layer_filter = _rule_and_filter(rules, include, exclude, min_params, conv_mode, min_saving)
    net = _model(model)
    return make_plan(net, timed(rule, net, layer_filter, runtime), layer_filter)


def convert(model, *, plan=None, rank=None, energy=None, ratio=None, target_params=None, target_macs=None,
            target_latency=None, runtime=None, include=(), exclude=(), min_params=None, min_saving=None,
            conv_mode=DEFAULT_CONV_MODE, x=None, calibration_x=None, method=None, input_shape=None):
    """A new model with LightLayers in place of the planned layers (the input is not changed),
    with its sizes and output difference: a ``Conversion``. Give a ``plan`` or the keywords of
    ``lightcompress.plan``; ``x`` are inputs to compare outputs on (random inputs otherwise, sized
    where the model leaves a size open by what it declares, else by ``input_shape``, one example's
    size such as ``(128,)``; ``result.input_sizes`` says which).
    ``calibration_x`` (training inputs) makes the factors data-aware, fitted layer by layer
    where that is affordable (``defaults.convert_method``; ``method="svd"`` forces plain SVD),
    and budgets buy ranks by output error (the convert command, given a data set, also measures
    each layer's sensitivity on held-out images and keeps the plan closer to the original).
    With ``target_latency=`` the converted model is timed whole in ``runtime`` and
    planned again while it misses (``result.plan.budget`` has the planned and measured fraction).

    >>> import keras, numpy as np, lightcompress
    >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256), keras.layers.Dense(10)])
    >>> result = lightcompress.convert(model, rank=16)
    >>> result.params_before, result.params_after  # the 256x10 head: rank 7 keeps <= 80% (min_saving)
    (19210, 7248)
    >>> type(result.model.layers[0]).__name__
    'LightDense'
    """
    from .flows.convert import convert as run

    net = _model(model)
    if plan is not None:
        return run(net, plan=plan, x=x, calibration_x=calibration_x, method=method, input_shape=input_shape)
    rules = {"rank": rank, "energy": energy, "ratio": ratio, "target_params": target_params,
             "target_macs": target_macs, "target_latency": target_latency}
    rule, layer_filter = _rule_and_filter(rules, include, exclude, min_params, conv_mode, min_saving)
    return run(net, rule, layer_filter, x=x, calibration_x=calibration_x, method=method, runtime=runtime,
               input_shape=input_shape)


def _data_for(net, data):
    """``data`` (a name, a path, a ``DataSpec`` or a ``Dataset`` already opened) shaped for ``net``;
    None is one line asking for it (no verb has a default data set)."""
    from .data.open import open_for_model
    from .data.sets import required

    return open_for_model(net, required(data))


def finetune(model, data=None, *, teacher=None, epochs=None, batch_size=None, learning_rate=None,
             validation_split=None, patience=None, seed=0, devices="all"):
    """Fine-tune ``model`` in place on ``data`` (a data set name or path, a ``DataSpec`` or data
    already opened), keeping the best epoch; distilled from ``teacher`` (a model) if given. Unset
    settings take ``FitSettings``' defaults. Returns a ``FitResult``.

    >>> import keras, lightcompress
    >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
    ...                          keras.layers.Dense(10, activation="softmax")])
    >>> fit = lightcompress.finetune(model, "digits", epochs=2)
    >>> fit.epochs_run
    2
    """
    from .training import finetune as training

    given = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
             "validation_split": validation_split, "patience": patience}
    settings = training.FitSettings(**{k: v for k, v in given.items() if v is not None}, seed=seed,
                                    devices=devices)
    net = _model(model)
    tutor = training.Teacher(_model(teacher)) if teacher is not None else None
    return training.finetune(net, _data_for(net, data), settings, teacher=tutor)


def compress(model, data=None, *, target_params=None, target_macs=None, target_latency=None,
             max_drop=None, include=(), exclude=(), min_params=None, conv_mode=DEFAULT_CONV_MODE, settings=None,
             distill=True, method=None, runtime=None, threads=2, allow_slower=False, use_cache=True,
             cache_dir=None, allocation=DEFAULT_ALLOCATION):
    """Meet one goal with the least accuracy lost: ``target_params=`` or ``target_macs=`` (a
    fraction of the model's), ``target_latency=`` (a fraction of its measured latency in
    ``runtime``) or ``max_drop=`` (accuracy points). Measures each layer's sensitivity on held-out
    training images (``allocation="error"``: takes each layer's truncation error instead, no model
    evaluated), allocates ranks, converts and fine-tunes (``settings``, a ``FitSettings``)
    with distillation from ``model`` (which is not changed). Returns a ``CompressResult``.

    >>> import keras, lightcompress
    >>> keras.utils.set_random_seed(0)
    >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(128, activation="relu"),
    ...                          keras.layers.Dense(10, activation="softmax")])
    >>> fit = lightcompress.finetune(model, "digits", epochs=3)
    >>> result = lightcompress.compress(model, "digits", target_params=0.5, use_cache=False, runtime="keras",
    ...                                 settings=lightcompress.FitSettings(epochs=1))
    >>> result.model.count_params() <= 0.5 * model.count_params()
    True
    """
    from .defaults import DEFAULT_MIN_PARAMS
    from .flows.compress import compress as run
    from .planning import LayerFilter

    net = _model(model)
    layer_filter = LayerFilter(include, exclude, DEFAULT_MIN_PARAMS if min_params is None else min_params, conv_mode)
    return run(net, _data_for(net, data), target_params=target_params, target_macs=target_macs,
               target_latency=target_latency, max_drop=max_drop, layer_filter=layer_filter, settings=settings,
               distill=distill, method=method, runtime=runtime, threads=threads, allow_slower=allow_slower,
               use_cache=use_cache, cache_dir=cache_dir, allocation=allocation)


def evaluate(model, data=None, *, trust=False):
    """Accuracy and loss of ``model`` (a model, a model file, or an exported ``.tflite``/``.onnx``/
    SavedModel artefact, run in its own runtime) on the test split of ``data``: an ``Evaluation``.
    ``trust=True`` allows what runs code when loaded: Lambda layers, SavedModel folders.

    >>> import keras, lightcompress
    >>> model = keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten(),
    ...                          keras.layers.Dense(10, activation="softmax")])
    >>> 0.0 <= lightcompress.evaluate(model, "digits").accuracy <= 0.5  # untrained: near chance
    True
    """
    from .data.sets import required
    from .flows.common import load_any, load_data_for
    from .training.evaluation import evaluate as run

    data = required(data)  # before the model is loaded
    net = load_any(model, trust=trust) if isinstance(model, (str, os.PathLike)) else model
    opened = load_data_for(net, str(data) if isinstance(data, os.PathLike) else data, stream=True)
    return run(net, opened)


def export(model, path, *, format="litert", quantize="none", data=None, int8_io=False, force=False):
    """Write ``model`` (a model or a model file) as ``format`` (a registered export target:
    ``lightcompress.deploy.targets.choices()``) to ``path`` with its LightLayers lowered to standard
    layers, and verify the artefact in its own runtime (on the test images of ``data`` when given,
    else on random inputs). ``quantize``: "none" or one of the target's ``quantizations`` (int8
    calibrates on training images of ``data``). Returns an ``ExportResult``.
    """
    from .deploy import export as ex
    from .errors import OptionError

    fmt = ex.check_settings(format, quantize, int8_io)
    if quantize == "int8" and data is None:
        raise OptionError("quantize='int8' calibrates on training images; give data=NAME (a data set).")
    net = _model(model)
    opened = None if data is None else _data_for(net, data)
    x = y = source = None
    if opened is not None:
        from .flows.common import test_images

        x, source = test_images(opened), f"test images of {opened.name}"
    inputs = [model] if isinstance(model, (str, os.PathLike)) else []
    target = ex.check_output(path, fmt, force=force, inputs=inputs)
    return ex.export_model(net, target, fmt, quantize, calibration=opened if quantize == "int8" else None,
                           int8_io=int8_io, x=x, y=y, source=source, force=force, inputs=inputs)


def compare(models, *, data=None, batches=(1, 32), repeats=30, runtime=None, threads=2, trust=False) -> dict:
    """Several models side by side, the first as the reference: parameters, MACs, bytes, measured
    latency at each batch size (Keras models in ``runtime``, exported artefacts in their own), and
    with ``data`` accuracy and agreement with the first. ``models``: models, model files or
    artefact paths; ``trust=True`` allows what runs code when loaded (Lambda layers, SavedModel
    folders). Returns the ``compare`` report as a dict."""
    from .errors import OptionError
    from .flows.common import load_any, load_data_for
    from .flows.compare import compare_models

    models = list(models)
    if len(models) < 2:
        raise OptionError("compare needs at least two models: the reference first, then the others.")
    from .validation import whole

    whole("repeats", repeats, 1)  # before any model is loaded or timed
    nets = [load_any(m, trust, threads) if isinstance(m, (str, os.PathLike)) else m for m in models]
    names = [str(m) if isinstance(m, (str, os.PathLike)) else m.name for m in models]
    opened = None
    if data is not None:
        opened = load_data_for(nets[0], str(data) if isinstance(data, os.PathLike) else data, stream=True)
    from .deploy.timing import Runtime

    return compare_models(nets, names, opened, batches, repeats, runtime=Runtime.parse(runtime, threads))
