"""The one table of layer types lightcompress knows, keyed by class, and what reads it.

A factorisable type (``LayerType``) says, for each of its factorisation modes, how to read the
layer's kernel as a matrix and back, how to build its SVD-initialised LightLayer twin, how many
multiply-accumulates the original and each factorisation cost, why a given layer of the type
cannot be factorised, and how its twin lowers to standard Keras layers. Each type registers its
entry from its own module (``dense.py``, ``conv2d.py``, ...; importing ``lightcompress.layers``
imports them all); every other module (candidates, planning, factorising, sensitivity, export,
reports) reads this table, and nothing dispatches on class names. ``MAC_COUNTERS`` counts MACs
for every class that costs any: each registered type and its twin, composites, and the layers
counted but not factorised (below). A class is counted by exactly one formula: registering a
class that already has one is an error, so no registration order can silently replace it.
A subclass known to compute what its entry's class does is added with ``register_subclass``; a
class from an optional package (keras-hub) is added by ``when_imported`` once that package has been
imported by the user or a model file, never by lightcompress itself.

>>> import keras, lightcompress.layers
>>> entry_for(keras.layers.Dense(4)).modes
('dense',)
>>> entry_for(keras.layers.Conv2D(4, 3)).modes
('channel', 'spatial', 'tucker')
>>> entry_for(keras.layers.Flatten()) is None
True
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from .. import linalg
from ..errors import LightCompressError
from .base import common_unsupported, conv_geometry


def _as_matrix(kernel, mode):
    return np.asarray(kernel)


def _reshaped(matrix, shape, mode):
    return np.asarray(matrix).reshape(shape)


def _matrix_shape(shape, mode):
    return int(shape[0]), int(shape[1])


@dataclass(frozen=True)
class LayerType:
    """How lightcompress handles one Keras layer class.

    The defaults fit a type whose kernel (as ``kernel_of`` reads it) is the matrix factorised in
    every mode. A type with a mode that is not one matrix (Conv2D's Tucker-2) subclasses this and
    overrides ``matrix_modes``, ``factors``, ``approximate``, ``factor_params``, ``max_rank`` and
    ``mode_cov`` (see ``conv2d.Conv2DType``).
    """

    cls: type  # the Keras class, matched exactly
    twin: type  # the LightLayer class that replaces it
    modes: tuple  # factorisation modes, the first is the default
    build_twin: Callable  # (layer, rank, mode, factors=None) -> built twin, SVD-initialised or from
    #                       matrix factors (A, B) of the mode's matrix decomposed elsewhere
    macs: Callable  # (layer, in_shape, out_shape, mode | None, rank | None) -> MACs per example of
    #                 the original (rank None) or of a twin (the twin's own layer is passed)
    lower: Callable  # (twin, base=name) -> built standard Keras layers computing the same
    kernel_rank: int = 2  # ndim of the kernel as read, checked before anything reads it
    to_matrix: Callable = _as_matrix  # (kernel, mode) -> 2-D matrix
    from_matrix: Callable = _reshaped  # (matrix, kernel_shape, mode) -> kernel
    matrix_shape: Callable = _matrix_shape  # (kernel_shape, mode) -> (n, m)
    twin_mode: Callable | None = None  # (twin) -> its mode; None: the type has one mode
    unsupported: Callable = common_unsupported  # (layer) -> why it cannot be factorised, or None
    input_matrix: Callable | None = None  # (layer, inputs tensor) -> 2-D (rows, n): what multiplies
    #                  the rows of the modes[0] matrix, one row per application (data-aware factors)
    kernel_of: Callable | None = None  # (layer) -> the kernel as this entry reads it (default layer.kernel)
    set_kernel: Callable | None = None  # (layer, kernel as read) -> writes it back (default kernel.assign)
    bias_of: Callable | None = None  # (layer) -> the bias variable or None (default layer.bias)
    kernel_constraint_attr: str = "kernel_constraint"  # the layer's attribute holding its kernel's constraint
    example: Callable | None = None  # () -> (tiny model holding one layer of the type named "target",
    #                                   its input shape): what the parameterised tests build

    @property
    def name(self) -> str:
        return self.cls.__name__

    def mode_of(self, twin) -> str:
        """The mode ``twin`` (a LightLayer of this type) factorises in."""
        return self.modes[0] if self.twin_mode is None else self.twin_mode(twin)

    def kernel(self, layer) -> np.ndarray:
        if self.kernel_of is not None:
            return np.asarray(self.kernel_of(layer))
        return keras.ops.convert_to_numpy(layer.kernel)

    def kernel_info(self, layer) -> tuple[tuple, np.dtype]:
        """(shape, dtype) of the kernel as ``kernel`` reads it, without copying a plain kernel."""
        if self.kernel_of is not None:
            kernel = self.kernel(layer)
            return tuple(int(d) for d in kernel.shape), kernel.dtype
        return (tuple(int(d) for d in layer.kernel.shape),
                np.dtype(keras.backend.standardize_dtype(layer.kernel.dtype)))

    def assign_kernel(self, layer, kernel):
        """Write ``kernel`` (in the shape ``kernel`` reads) into ``layer``."""
        if self.set_kernel is not None:
            return self.set_kernel(layer, kernel)
        return layer.kernel.assign(kernel)

    def bias(self, layer):
        return self.bias_of(layer) if self.bias_of is not None else getattr(layer, "bias", None)

    def make_twin(self, layer, rank, mode, factors=None):
        """The built twin at ``rank`` in ``mode``, from ``factors`` decomposed elsewhere when given
        (matrix factors (A, B) of a matrix mode; a non-matrix mode's own kernels, see
        ``prepare``), else SVD-initialised by itself."""
        if factors is not None:
            return self.build_twin(layer, rank, mode, factors=factors)
        return self.build_twin(layer, rank, mode)

    def truncated_kernel(self, kernel, rank, mode) -> np.ndarray:
        """The rank-``rank`` approximation of ``kernel`` in ``mode``: what the twin computes."""
        return self.approximate(kernel, rank, mode)

    def modes_for(self, kernel_shape) -> tuple:
        """The modes worth trying for a kernel of ``kernel_shape``: those that can beat every
        earlier one (a type whose modes coincide on some shapes, Conv2D's on 1×1 kernels, says so
        here). A plan may still name any of ``modes``."""
        return tuple(self.modes)

    # -- generic over modes; a type with a non-matrix mode overrides these --

    def prepare(self, kernel, mode, cov=None):
        """The rank-independent part of a non-matrix mode's factorisation of ``kernel`` (Conv2D's
        Tucker-2: ``linalg.Tucker2``), computed once and read at every rank: an object with
        ``kernels(rank)`` (the twin's kernels), ``approximate(rank)`` and ``weight_error(rank)``.
        None for a matrix mode (its one ``linalg.Decomposition`` serves)."""
        return None

    @property
    def matrix_modes(self) -> tuple:
        """The modes that are a reshape of the kernel into one matrix."""
        return tuple(self.modes)

    def factor_params(self, kernel_shape, mode, rank) -> int:
        """Weights of the twin's factors at ``rank`` in ``mode``, bias not included."""
        n, m = self.matrix_shape(kernel_shape, mode)
        return linalg.factorized_params(n, m, rank)

    def max_rank(self, kernel_shape, mode) -> int:
        return int(min(self.matrix_shape(kernel_shape, mode)))

    def rank_limit(self, kernel_shape, mode, min_saving: float = 0.0) -> int:
        """Largest rank whose factors hold fewer weights than the kernel and at most
        ``1 - min_saving`` of them; 0 when none does (factor weights grow with the rank)."""
        size = int(np.prod(kernel_shape))
        allowed = min(size - 1, int(np.floor((1.0 - min_saving) * size + 1e-9)))
        lo, hi = 0, self.max_rank(kernel_shape, mode)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.factor_params(kernel_shape, mode, mid) <= allowed:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def mode_cov(self, cov, kernel_shape, mode):
        """The second moment of the ``mode`` matrix's input rows, from that of the modes[0] one."""
        return cov

    def factors(self, kernel, rank, mode, cov=None) -> list:
        """The twin's kernels at ``rank`` in ``mode``: plain SVD, or data-aware given ``cov`` (the
        second moment of the modes[0] matrix's input rows, see ``input_matrix``)."""
        return list(self._matrix_factors(kernel, rank, mode, cov))

    def _matrix_factors(self, kernel, rank, mode, cov):
        kernel = np.asarray(kernel)
        matrix = self.to_matrix(kernel, mode)
        mcov = None if cov is None else self.mode_cov(cov, kernel.shape, mode)
        return linalg.truncated_svd(matrix, rank) if mcov is None else linalg.data_aware_svd(matrix, mcov, rank)

    def approximate(self, kernel, rank, mode, cov=None) -> np.ndarray:
        """The kernel (same shape and dtype) that the twin computes at ``rank`` in ``mode``."""
        kernel = np.asarray(kernel)
        a, b = self._matrix_factors(kernel, rank, mode, cov)
        return self.from_matrix(a @ b, kernel.shape, mode).astype(kernel.dtype)

    def spectrum(self, kernel, mode, cov=None):
        """Singular values of the ``mode`` matrix (output-space ones given ``cov``), or None for a
        mode that is not a matrix reshape."""
        if mode not in self.matrix_modes:
            return None
        matrix = self.to_matrix(np.asarray(kernel), mode)
        mcov = None if cov is None else self.mode_cov(cov, np.shape(kernel), mode)
        return linalg.singular_values(matrix) if mcov is None else linalg.output_spectrum(matrix, mcov)


@dataclass(frozen=True)
class Composite:
    """A layer whose sublayers are factorised (each through its own entry), not the layer itself."""

    cls: type
    twin: type
    parts: Callable  # (layer) -> [(part name, sublayer)]
    build_twin: Callable  # (layer, {part: (rank, mode)}) -> built twin
    macs: Callable  # (layer or twin, [input shapes], out_shape) -> MACs per example
    lower: Callable  # (twin, lower_part) -> (a built layer of ``cls`` built like the twin, {id(its
    #                  part): replacement}): lower_part(twin's part, name) is the standard layer that
    #                  part lowers to, or None (no twin: its weights are copied); the caller swaps them in
    example: Callable | None = None  # () -> (tiny model holding one layer of the type named "target",
    #                                   its input shape)

    @property
    def name(self) -> str:
        return self.cls.__name__


REGISTRY: dict[type, LayerType] = {}
SUBCLASSES: dict[type, LayerType] = {}  # further classes an entry handles (register_subclass)
COMPOSITES: dict[type, Composite] = {}
COMPOSITE_TWINS: dict[type, Composite] = {}
MAC_COUNTERS: dict[type, Callable] = {}  # (layer, in_shape, out_shape) -> MACs per example
ALL_INPUT_SHAPES: set = set()  # MAC counters given every input's shape (a list), not the first


class RegistryError(LightCompressError):
    """A layer type registered twice."""


def count_macs(cls: type, counter: Callable, all_inputs: bool = False) -> Callable:
    """Count the MACs of ``cls`` with ``counter`` ((layer, in_shape, out_shape) -> MACs per
    example; given every input's shape when ``all_inputs``). One formula per class."""
    if cls in MAC_COUNTERS:
        raise RegistryError(f"{cls.__name__} already has a MAC formula; a class is counted by one formula.")
    MAC_COUNTERS[cls] = counter
    if all_inputs:
        ALL_INPUT_SHAPES.add(cls)
    return counter


def register(entry: LayerType) -> LayerType:
    """Add a factorisable layer type; its twin's MACs are counted through the same entry."""
    for cls in (entry.cls, entry.twin):
        if cls in MAC_COUNTERS or cls in REGISTRY:
            raise RegistryError(f"{cls.__name__} is already registered; a class has one entry.")
    count_macs(entry.cls, lambda layer, i, o: entry.macs(layer, i, o, None, None))
    count_macs(entry.twin, lambda layer, i, o: entry.macs(layer, i, o, entry.mode_of(layer), layer.rank))
    REGISTRY[entry.cls] = entry
    return entry


def register_subclass(cls: type, entry: LayerType) -> LayerType:
    """Handle ``cls``, a subclass of ``entry.cls`` that computes the same (keras-hub's
    ReversibleEmbedding), with ``entry``: its layers are candidates, counted and factorised by it."""
    if cls in MAC_COUNTERS or cls in REGISTRY or cls in SUBCLASSES:
        raise RegistryError(f"{cls.__name__} is already registered; a class has one entry.")
    count_macs(cls, lambda layer, i, o: entry.macs(layer, i, o, None, None))
    SUBCLASSES[cls] = entry
    return entry


# Registrations waiting for an optional package: (module name, settle(module) -> True once done).
_WAITING: list[tuple[str, Callable]] = []


def when_imported(module: str, settle: Callable) -> None:
    """Run ``settle(sys.modules[module])`` once ``module`` has been imported by someone else (it is
    never imported here, so an optional package such as keras-hub stays optional): at once if it
    is, else at the next lookup of the table after it is; again at later lookups while ``settle``
    returns False (the module was still being imported)."""
    _WAITING.append((module, settle))
    _settle()


def _settle() -> None:
    """Run the waiting registrations whose module is imported now."""
    if not _WAITING:
        return
    for item in list(_WAITING):
        module = sys.modules.get(item[0])
        if module is None or item not in _WAITING:
            continue
        _WAITING.remove(item)  # first: a lookup made while it runs does not run it again
        if not item[1](module):
            _WAITING.append(item)


def register_composite(composite: Composite) -> Composite:
    """Add a layer whose parts are factorised; it and its twin are counted by ``composite.macs``."""
    for cls in (composite.cls, composite.twin):
        count_macs(cls, composite.macs, all_inputs=True)
    COMPOSITES[composite.cls] = composite
    COMPOSITE_TWINS[composite.twin] = composite
    return composite


def unregister(entry: LayerType | Composite) -> None:
    """Remove an entry and its MAC formulas (tests that register a toy type clean up with it)."""
    for cls in (entry.cls, entry.twin):
        MAC_COUNTERS.pop(cls, None)
        ALL_INPUT_SHAPES.discard(cls)
    for table in (REGISTRY, COMPOSITES, COMPOSITE_TWINS):
        for cls in (entry.cls, entry.twin):
            if table.get(cls) is entry:
                del table[cls]
    for cls in [cls for cls, held in SUBCLASSES.items() if held is entry]:
        del SUBCLASSES[cls]
        MAC_COUNTERS.pop(cls, None)


def entry_for(layer) -> LayerType | None:
    """The entry for ``layer``'s exact class (subclasses may change what the kernel means), or for
    a subclass registered as computing the same (``register_subclass``)."""
    _settle()
    return REGISTRY.get(type(layer)) or SUBCLASSES.get(type(layer))


def twin_entry(layer) -> LayerType | None:
    """The entry whose twin ``layer`` is (a LightLayer), or None."""
    return next((e for e in REGISTRY.values() if type(layer) is e.twin), None)


def composite_for(layer) -> Composite | None:
    _settle()
    return COMPOSITES.get(type(layer))


def composite_twin_entry(layer) -> Composite | None:
    """The composite whose twin ``layer`` is, or None."""
    return COMPOSITE_TWINS.get(type(layer))


def twin_names() -> list[str]:
    """The class names of every registered twin, entries' then composites' (``lightcompress.TWINS``)."""
    _settle()
    return [entry.twin.__name__ for entry in (*REGISTRY.values(), *COMPOSITES.values())]


def counted(layer) -> bool:
    """Whether ``layer``'s class has a MAC formula."""
    _settle()
    return type(layer) in MAC_COUNTERS


def light_info(layer) -> tuple:
    """(rank, mode) of a LightLayer; (None, None) for any other layer."""
    entry = twin_entry(layer)
    return (layer.rank, entry.mode_of(layer)) if entry else (None, None)


def macs(layer, in_shape, out_shape) -> int | None:
    """MACs per example of one call of ``layer``; None when its type is not counted."""
    _settle()
    counter = MAC_COUNTERS.get(type(layer))
    return None if counter is None else int(counter(layer, in_shape, out_shape))


# -- layers counted but not factorised, and why they are left alone ---------------------------

def _depthwise_macs(layer, in_shape, out_shape):
    c, _, (h, w), _ = conv_geometry(layer, in_shape, out_shape)
    kh, kw = layer.kernel_size
    return h * w * kh * kw * c * layer.depth_multiplier


count_macs(keras.layers.DepthwiseConv2D, _depthwise_macs)

NOT_FACTORISED: dict[type, str] = {
    keras.layers.DepthwiseConv2D: "depthwise conv: one kh×kw filter per channel, no channel-mixing matrix to "
                                  "factorise (its cost is already that of a rank-1 layer per channel)",
    keras.layers.DepthwiseConv1D: "depthwise conv: one filter per channel, no channel-mixing matrix to factorise",
    keras.layers.BatchNormalization: "per-channel scale and shift, not a matrix",
    keras.layers.LayerNormalization: "per-channel scale and shift, not a matrix",
    keras.layers.GroupNormalization: "per-channel scale and shift, not a matrix",
    keras.layers.Normalization: "per-feature mean and variance, not a matrix",
}
ALREADY_LIGHT = "already factorised (a LightLayer)"


def not_factorised_reason(layer) -> str:
    """Why a weighted layer that is no candidate is left alone."""
    if twin_entry(layer) is not None or type(layer) in COMPOSITE_TWINS:
        return ALREADY_LIGHT
    reason = NOT_FACTORISED.get(type(layer))
    if reason:
        return reason
    if entry_for(layer) is not None or type(layer) in COMPOSITES:
        return "not a candidate"
    return f"{type(layer).__name__} is not a layer type lightcompress factorises"


def kernel_constraint(layer):
    """The constraint on ``layer``'s factorised kernel (the attribute its entry names), or None
    (never copied to the factors); a wrapper's (TimeDistributed) is its inner layer's."""
    entry = entry_for(layer)
    constraint = getattr(layer, "kernel_constraint" if entry is None else entry.kernel_constraint_attr, None)
    if constraint is not None:
        return constraint
    inner = getattr(layer, "layer", None)
    return None if inner is None or inner is layer else kernel_constraint(inner)
