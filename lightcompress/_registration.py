"""Every LightLayer twin registered with Keras whenever Keras is loaded, whatever the import order.

``import lightcompress`` calls ``register_when_keras_loads()``: with Keras already imported, the
twins (``lightcompress.layers``) are imported at once; otherwise a one-shot import hook imports
them right after Keras finishes loading. So ``import lightcompress`` stays cheap (no TensorFlow
start-up) and ``import lightcompress; import keras; keras.models.load_model(path)`` loads any
compressed model.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import warnings


def _register():
    try:
        importlib.import_module("lightcompress.layers")
        # the wrapper a converted subclassed or keras-hub model is saved in (its twins and their paths)
        importlib.import_module("lightcompress.io.substitutions")
    except Exception as err:  # noqa: BLE001 - never break the user's `import keras`
        warnings.warn(f"lightcompress could not register its layers with Keras: {err}", RuntimeWarning, stacklevel=2)


class _ThenRegister(importlib.abc.Loader):
    """Keras's own loader, followed by the registration."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        _register()


class _KerasHook(importlib.abc.MetaPathFinder):
    """Finds nothing itself: asks the finders after it for ``keras`` and wraps the loader."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        _uninstall()
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _ThenRegister(spec.loader)
                return spec
        return None


def _uninstall():
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _KerasHook)]


def register_when_keras_loads():
    if "keras" in sys.modules:
        _register()
    elif not any(isinstance(f, _KerasHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _KerasHook())
