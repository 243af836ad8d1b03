"""Factorisation methods as strategies: one module per method, a base, and a registry.

A method says which statistics of the layers' inputs it needs (the shared collector in
``factorization.statistics`` gathers them, once) and computes a layer's factors and truncated
weights from them. Nothing outside this package branches on a method's name: the rest of
lightcompress resolves a name once (``resolve_method``) and calls the object it gets.

>>> from lightcompress.factorization.methods import get_method
>>> get_method("svd").needs, get_method("data-aware+bias").needs
((), ('input_covariance', 'input_mean'))
"""

from .base import Method, get_method, known_methods, register_method, resolve_method, unregister_method
from . import svd as _svd, data_aware as _data_aware  # noqa: F401  (the built-in methods register)

__all__ = ["Method", "get_method", "known_methods", "register_method", "resolve_method", "unregister_method"]
