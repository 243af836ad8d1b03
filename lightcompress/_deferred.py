"""The one place lightcompress defers an import.

Every other import in the package is at the top of its module. What is deferred, and why:

- Packages that are optional or belong to one Keras backend: TensorFlow (absent on a JAX or
  PyTorch machine), JAX, PyTorch, ONNX Runtime, LiteRT, scikit-learn's data sets, SciPy, matplotlib.
  A module names them at its top, ``tf = deferred("tensorflow")``; the package is imported on
  the first attribute read (``tf.data``), so a module that can use TensorFlow imports, and runs
  its other paths, where TensorFlow is missing.
- The library itself, for the command line and ``lightcompress/__init__.py``: ``--help``,
  ``--version`` and usage errors answer without importing Keras (``tests/cli/test_instant_answers.py``),
  and ``import lightcompress`` costs only Keras until a verb runs.

``importlib.import_module`` is the only import mechanism here; ``tests/test_import_contract.py``
counts the import statements inside functions everywhere else.
"""

from __future__ import annotations

import importlib
import importlib.util


class Deferred:
    """A module imported on its first attribute read (then held); setting an attribute sets it on
    the module (as a patch of the module itself would)."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_module", None)

    def _load(self):
        module = object.__getattribute__(self, "_module")
        if module is None:
            module = importlib.import_module(object.__getattribute__(self, "_name"))
            object.__setattr__(self, "_module", module)
        return module

    def __getattr__(self, attribute):
        return getattr(self._load(), attribute)

    def __setattr__(self, attribute, value):
        setattr(self._load(), attribute, value)

    def __delattr__(self, attribute):
        delattr(self._load(), attribute)

    def __repr__(self):
        return f"<deferred module {object.__getattribute__(self, '_name')!r}>"


class DeferredName:
    """A function or class of a module imported on its first use: called, or an attribute read."""

    __slots__ = ("_module", "_name")

    def __init__(self, module: Deferred, name: str):
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_name", name)

    def _target(self):
        return getattr(object.__getattribute__(self, "_module"), object.__getattribute__(self, "_name"))

    def __call__(self, *args, **kwargs):
        return self._target()(*args, **kwargs)

    def __getattr__(self, attribute):
        return getattr(self._target(), attribute)

    def __repr__(self):
        return f"<deferred {object.__getattribute__(self, '_name')!r} of {object.__getattribute__(self, '_module')!r}>"


def deferred(module: str, name: str | None = None) -> Deferred | DeferredName:
    """The module ``module`` (a dotted name), or its ``name``, imported when first used."""
    return Deferred(module) if name is None else DeferredName(Deferred(module), name)


def available(name: str) -> bool:
    """Whether the module ``name`` could be imported here, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
