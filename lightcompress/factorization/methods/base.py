"""The ``Method`` base class (what a factorisation method declares and computes) and the registry
of methods by name (``register_method``, ``get_method``, ``resolve_method``).

A method is registered under its ``name``; the name is what plans, reports and ``--method``
say. The default (``resolve_method(None, ...)``) is ``DEFAULT_WITH_DATA`` when calibration
inputs are given and ``DEFAULT`` otherwise.
"""

from __future__ import annotations

from ...errors import OptionError

DEFAULT = "svd"
DEFAULT_WITH_DATA = "data-aware"


class Method:
    """A way to make a layer's low-rank factors. Subclass it, set ``name``, ``summary`` and
    ``needs``, override what differs, and ``register_method`` an instance.

    - ``needs``: the statistics of each layer's inputs it reads (names the collector knows, see
      ``statistics.STATISTICS``); () reads none and needs no calibration inputs.
    - ``sequential``: collect each layer's statistics on the inputs the already-factorised layers
      before it produce (one pass per layer, with cross moments against the original's inputs).
    - ``covariance(moments)``: the second moment a layer's factors are fitted to; planning then
      measures its errors as output errors on it. None: plain weight space.
    - ``weights(...)``: the twin's weights for a layer with statistics; None lets the twin
      initialise itself by plain SVD (from the plan's decomposition).
    - ``truncated(...)``: the (kernel, bias) the twin computes, from the *original* layer (what
      sensitivity swaps into the model).

    The base computes plain truncated SVD: the factors of the candidate's own decomposition.
    """

    name: str = ""
    summary: str = ""  # one line for --help
    needs: tuple = ()
    sequential: bool = False

    @property
    def needs_data(self) -> bool:
        return bool(self.needs)

    def covariance(self, moments):
        return None

    def weights(self, entry, layer, rank, mode, moments):
        return None

    def truncated(self, candidate, mode, rank, moments, bias):
        return candidate.approximate(mode, rank), bias

    def __repr__(self):
        return f"<method {self.name}>"


_METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Make ``method`` reachable by its name (``convert(method=...)``, ``--method``); a name is
    registered once (``unregister_method`` frees it)."""
    if not method.name:
        raise OptionError(f"{type(method).__name__} has no name; set its name before registering it.")
    if method.name in _METHODS:
        raise OptionError(f"a method named {method.name!r} is already registered ({_METHODS[method.name]!r}); "
                          f"give yours another name, or unregister_method({method.name!r}) first.")
    _METHODS[method.name] = method
    return method


def unregister_method(name: str) -> Method:
    """Remove the method registered as ``name`` and return it (a test's toy method cleans up so)."""
    if name not in _METHODS:
        raise OptionError("is not registered", option="method", value=name, allowed=f"one of {', '.join(_METHODS)}")
    return _METHODS.pop(name)


def known_methods() -> tuple:
    """The registered names, in registration order."""
    return tuple(_METHODS)


def get_method(method) -> Method:
    """The registered method called ``method`` (a ``Method`` is returned as it is).

    >>> get_method("fisher")
    Traceback (most recent call last):
    ...
    lightcompress.errors.OptionError: method='fisher' is unknown; use one of svd, data-aware, data-aware+bias, data-aware+sequential, data-aware+sequential+bias.
    """
    if isinstance(method, Method):
        return method
    found = _METHODS.get(method)
    if found is None:
        raise OptionError("is unknown", option="method", value=method, allowed=f"one of {', '.join(_METHODS)}")
    return found


def resolve_method(method, has_data: bool) -> Method:
    """The method to use: ``method`` (a name or a ``Method``) checked against the data at hand,
    or the default (``DEFAULT_WITH_DATA`` with calibration inputs, ``DEFAULT`` without).

    >>> resolve_method(None, False).name, resolve_method(None, True).name
    ('svd', 'data-aware')
    >>> resolve_method("data-aware", False)
    Traceback (most recent call last):
    ...
    lightcompress.errors.OptionError: method='data-aware' needs calibration inputs; give a data set (data=NAME), or use method='svd'.
    """
    chosen = get_method(method if method is not None else DEFAULT_WITH_DATA if has_data else DEFAULT)
    if chosen.needs_data and not has_data:
        raise OptionError(f"method={chosen.name!r} needs calibration inputs; give a data set (data=NAME), "
                          f"or use method={DEFAULT!r}.")
    return chosen
