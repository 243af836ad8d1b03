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
import sys

from ._deferred import deferred
from ._quiet import import_keras_quietly
from ._registration import register_when_keras_loads
from ._version import __version__ as __version__  # re-exported (``__all__`` is lazy)

register_when_keras_loads()

_API = deferred("lightcompress.api")  # the verbs, read through ``__getattr__``

_CLASSES = {
    "LightCompressError": "errors",
    "LayerFilter": "planning", "FixedRank": "planning", "Energy": "planning", "Ratio": "planning",
    "TargetParams": "planning", "TargetMacs": "planning", "TargetLatency": "planning", "Plan": "planning",
    "DataSpec": "data.sets", "FitSettings": "training.finetune", "FitResult": "training.finetune",
    "Evaluation": "training.evaluation", "Conversion": "flows.convert", "CompressResult": "flows.compress",
    "ExportResult": "deploy.export",
}
VERBS = ["load_model", "inspect", "plan", "convert", "finetune", "compress", "evaluate", "export", "compare"]

# ``__all__`` and ``TWINS`` (every registered twin's class name, from ``layers.registry``) are read
# lazily through ``__getattr__``: the registry imports Keras, ``import lightcompress`` does not.


def _twins() -> list[str]:
    """The class names of the twins in the registry (entries' and composites'); imports Keras."""
    _keras()
    return importlib.import_module(".layers", __name__).registry.twin_names()


def _keras():
    """Import Keras quietly when lightcompress is the first to (TensorFlow's C++ start-up lines held
    back, as on the command line: ``_quiet``); a user who imported Keras or TensorFlow first keeps
    what they chose."""
    if "keras" not in sys.modules and "tensorflow" not in sys.modules:
        import_keras_quietly()


def __getattr__(name):
    if name in VERBS:
        _keras()  # quietly, before the verbs' modules import Keras
        return getattr(_API, name)
    if name in _CLASSES:
        if _CLASSES[name] != "errors":  # the errors need no Keras
            _keras()
        return getattr(importlib.import_module(f".{_CLASSES[name]}", __name__), name)
    if name not in ("TWINS", "__all__") and not name.startswith("Light"):
        # probes (__wrapped__, __path__...) and submodules not imported yet (``from lightcompress
        # import linalg`` asks here first) import nothing: every twin's name starts with "Light"
        raise AttributeError(f"module 'lightcompress' has no attribute {name!r}")
    twins = _twins()
    if name == "TWINS":
        return twins
    if name == "__all__":
        return ["__version__", *VERBS, *twins, *_CLASSES]
    if name in twins:
        return getattr(importlib.import_module(".layers", __name__), name)
    raise AttributeError(f"module 'lightcompress' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__getattr__("__all__"), "TWINS"})
