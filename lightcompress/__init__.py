"""lightcompress: low-rank compression of trained Keras models with LightLayers.

The verbs a Python user needs, each a thin door into the library (``pipeline`` holds the same
flows on files, ``cli`` the command line):

>>> import keras, lightcompress
>>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
...                          keras.layers.Dense(10, activation="softmax")])
>>> plan = lightcompress.plan(model, rank=8)
>>> [(p.name, p.rank) for p in plan.converted]
[('dense', 8), ('dense_1', 7)]

Importing the package is cheap and has no side effects: Keras is imported when a verb or class
is first used (``import lightcompress.layers.core`` registers LightDense and LightConv2D with Keras,
so a ``.keras`` file holding them loads with ``keras.saving.load_model``; when Keras is already
imported, ``import lightcompress`` does it at once).
"""

from __future__ import annotations

import importlib
import sys

from ._version import __version__

_CLASSES = {
    "LightDense": "layers.core", "LightConv2D": "layers.core", "LightCompressError": "errors",
    "LayerFilter": "planning", "FixedRank": "planning", "Energy": "planning", "Ratio": "planning",
    "TargetParams": "planning", "Plan": "planning", "DataSpec": "data.sets", "FitSettings": "training.finetune",
}

__all__ = ["__version__", "load_model", "inspect", "plan", "convert", "finetune", "compress", *_CLASSES]


def __getattr__(name):
    if name in _CLASSES:
        return getattr(importlib.import_module(f".{_CLASSES[name]}", __name__), name)
    raise AttributeError(f"module 'lightcompress' has no attribute {name!r}")


def load_model(path, trust=False):
    """Load a Sequential or Functional model from ``.keras`` or ``.h5`` (Keras 2 or 3), uncompiled,
    refusing Lambda layers unless ``trust=True``.

    >>> import lightcompress
    >>> lightcompress.load_model("no/such/model.h5")
    Traceback (most recent call last):
    lightcompress.errors.ModelLoadError: no/such/model.h5: no such file; check the path.
    """
    from .io import models as model_io

    return model_io.load_model(path, trust=trust)


def inspect(model) -> dict:
    """Params and MACs per layer and the spectrum of every factorisable kernel (the ``inspect``
    report as a dict).

    >>> import keras, lightcompress
    >>> model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(16)])
    >>> report = lightcompress.inspect(model)
    >>> report["totals"]["params"], report["totals"]["macs"]
    (528, 512)
    """
    from .flows.inspect import inspect_model

    return inspect_model(model, model.name)


def _rule_and_filter(rank=None, energy=None, ratio=None, target_params=None, include=(), exclude=(),
                     min_params=None, conv_mode="channel", min_saving=None):
    from .defaults import DEFAULT_MIN_PARAMS, DEFAULT_MIN_SAVING
    from .planning import LayerFilter, rank_rule

    layer_filter = LayerFilter(include, exclude, DEFAULT_MIN_PARAMS if min_params is None else min_params,
                               conv_mode, DEFAULT_MIN_SAVING if min_saving is None else min_saving)
    return rank_rule(rank=rank, energy=energy, ratio=ratio, target_params=target_params), layer_filter


def plan(model, **rule_and_filter):
    """Decide a rank and mode (or a reason to keep it) for every factorisable layer.

    Exactly one rule: ``rank=``, ``energy=``, ``ratio=`` or ``target_params=``; layers chosen by
    ``include=``, ``exclude=`` (globs), ``min_params=``, ``min_saving=`` (fraction of a layer a
    rank must save) and ``conv_mode=`` ("channel", "spatial", "tucker", "auto").

    >>> import keras, lightcompress
    >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256), keras.layers.Dense(3)])
    >>> p = lightcompress.plan(model, target_params=0.5)
    >>> p.policy, [layer.skipped for layer in p.layers]
    ('target params 0.5', [None, '771 params, below min_params=1000'])
    """
    from .planning import make_plan

    rule, layer_filter = _rule_and_filter(**rule_and_filter)
    return make_plan(model, rule, layer_filter)


def convert(model, plan=None, x=None, calibration_x=None, method=None, **rule_and_filter):
    """A new model with LightLayers in place of the planned layers (the input is not changed),
    with its sizes and output difference: a ``Conversion``. Give a ``plan`` or the keywords of
    ``lightcompress.plan``; ``x`` are inputs to compare outputs on (random inputs otherwise).
    ``calibration_x`` (training inputs) makes the factors data-aware (``method="svd"`` forces
    plain SVD).

    >>> import keras, numpy as np, lightcompress
    >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256), keras.layers.Dense(10)])
    >>> result = lightcompress.convert(model, rank=16)
    >>> result.params_before, result.params_after  # the 256x10 head: rank 7 keeps <= 80% (min_saving)
    (19210, 7248)
    >>> type(result.model.layers[0]).__name__
    'LightDense'
    """
    from .flows.convert import convert as run

    if plan is not None:
        return run(model, plan=plan, x=x, calibration_x=calibration_x, method=method)
    rule, layer_filter = _rule_and_filter(**rule_and_filter)
    return run(model, rule, layer_filter, x=x, calibration_x=calibration_x, method=method)


def _prepared(model, data):
    """In-memory sets as arrays; folders, TFRecord files and module:function as streams."""
    from .data.open import open_for_model

    return open_for_model(model, data)


def finetune(model, data="digits", teacher=None, **settings):
    """Fine-tune ``model`` in place on ``data`` (a data set name or path, a ``DataSpec`` or
    prepared arrays), keeping the best epoch; distilled from ``teacher`` (a model) if given.
    ``settings``: the fields of ``FitSettings`` (epochs, batch_size, learning_rate, ...).
    Returns a ``FitResult``.

    >>> import keras, lightcompress
    >>> model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
    ...                          keras.layers.Dense(10, activation="softmax")])
    >>> fit = lightcompress.finetune(model, "digits", epochs=2)
    >>> fit.epochs_run
    2
    """
    from .training import finetune as training

    tutor = training.Teacher(teacher) if teacher is not None else None
    return training.finetune(model, _prepared(model, data), training.FitSettings(**settings), teacher=tutor)


def compress(model, data="digits", **goal_and_options):
    """Meet one goal with the least accuracy lost: ``target_params=`` or ``target_macs=`` (a
    fraction of the model's) or ``max_drop=`` (accuracy points). Measures each layer's
    sensitivity on held-out training images, allocates ranks, converts and fine-tunes with
    distillation from ``model`` (which is not changed). Returns a ``CompressResult``.

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
    from .flows.compress import compress as run

    return run(model, _prepared(model, data), **goal_and_options)


if "keras" in sys.modules:  # registering the LightLayers costs nothing once Keras is loaded
    from .layers import core as layers  # noqa: E402,F401
