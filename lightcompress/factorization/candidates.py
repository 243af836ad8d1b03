"""Walk a model and describe its factorisable layers. Reads weights; never changes the model."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import keras
import numpy as np

from .. import linalg
from ..errors import RankError
from ..io import substitutions
from ..layers import registry
from .tracing import call_nodes as traced


def iter_layers(model, prefix=""):
    """Yield ``(path, layer)`` for every leaf layer, descending into nested models.

    A path is the layer name, prefixed by the names of the models it is nested in
    (``"encoder/dense"``). A layer shared between several places is yielded once.
    In a subclassed or keras-hub model the walk also descends into the sublayers composite layers
    hold as attributes, named by attribute (``substitutions.layer_tree``).
    """
    if substitutions.in_place(model):
        yield from substitutions.layer_tree(model, prefix)
        return
    seen = set()

    def walk(container, prefix):
        for layer in container.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            path = f"{prefix}{layer.name}"
            if isinstance(layer, keras.Model):
                yield from walk(layer, f"{path}/")
            else:
                yield path, layer

    yield from walk(model, prefix)


@dataclass
class Candidate:
    """A trained layer of a registered type and the matrices its kernel can be factorised as.

    The kernel is read from the layer when needed, never held (a big model is not copied). Each
    matrix mode is decomposed once (``decomposition``) and that one decomposition answers the
    spectrum, energies, errors and factors that inspect, planning and factorising ask for; a
    non-matrix mode (Tucker-2) likewise has its rank-independent part computed once
    (``prepared``) and every rank read from it. ``modes``: the modes worth trying for this
    kernel's shape (a 1×1 conv: channel only, see ``Conv2DType.modes_for``).
    ``vectors``: decompose with singular vectors from the start (the plan will be applied), so
    factorising needs no second decomposition."""

    name: str
    layer: object = field(repr=False)
    entry: registry.LayerType = field(repr=False)
    kernel_shape: tuple
    bias_params: int
    unsupported: str | None = None
    cov: np.ndarray | None = field(default=None, repr=False)  # the method's modes[0] input second moment
    owner: object = field(default=None, repr=False)  # the composite layer (MultiHeadAttention) holding it
    part: str | None = None  # its name inside the owner ("query")
    constraint: object = field(default=None, repr=False)  # kernel constraint (dropped when factorised)
    vectors: bool = False
    dtype: np.dtype = field(default=np.dtype(np.float32), repr=False)  # the kernel's
    _decompositions: dict = field(default_factory=dict, repr=False)
    _spectra: dict = field(default_factory=dict, repr=False)  # calibrated or non-matrix modes
    _curves: dict = field(default_factory=dict, repr=False)
    _approximations: dict = field(default_factory=dict, repr=False)  # the last non-matrix-mode one
    _prepared: dict = field(default_factory=dict, repr=False)  # {(mode, calibrated): entry.prepare(...)}

    @property
    def kind(self) -> str:
        return self.entry.name

    @property
    def kernel(self) -> np.ndarray:
        """The kernel as the registry entry reads it (a fresh copy from the layer)."""
        return self.entry.kernel(self.layer)

    @property
    def size(self) -> int:
        return int(np.prod(self.kernel_shape))

    @property
    def params(self) -> int:
        return self.size + self.bias_params

    @property
    def modes(self) -> tuple:
        """The modes worth trying for this kernel (``LayerType.modes_for``); modes[0] is the type's
        first mode."""
        return self.entry.modes_for(self.kernel_shape)

    def matrix_shape(self, mode) -> tuple[int, int]:
        return tuple(self.entry.matrix_shape(self.kernel_shape, mode))

    def matrix(self, mode) -> np.ndarray:
        return self.entry.to_matrix(self.kernel, mode)

    def _plain(self, mode, cov="own") -> bool:
        """Whether ``mode`` is answered by the plain decomposition (a matrix mode, no calibration)."""
        return mode in self.entry.matrix_modes and (self.cov is None or cov is None)

    def decomposition(self, mode, rank=None, vectors=False) -> linalg.Decomposition:
        """The decomposition of the kernel's ``mode`` matrix: the whole spectrum (``rank`` None)
        or at least the leading ``rank`` values, with singular vectors if asked. Computed once: a
        held decomposition that answers the request is reused; a new one keeps vectors when the
        candidate was made with ``vectors`` or a rank is asked (factorising follows)."""
        d = self._decompositions.get(mode)
        if d is not None:
            values = d.complete if rank is None else (d.complete or len(d.s) >= rank)
            if values and (not vectors or d.vectors >= (rank or len(d.s))):
                return d
        matrix = self.matrix(mode)
        if self.vectors and rank is not None and linalg.choose_method(matrix.shape, rank) == "gram":
            rank = None  # the whole basis costs the same: planning may raise the rank later (keep_only trims)
        d = linalg.decompose(matrix, rank, vectors=vectors or self.vectors or rank is not None)
        self._decompositions[mode] = d
        for watcher in list(_WATCHERS):
            watcher(self, mode)
        return d

    def prepared(self, mode, cov="own"):
        """The rank-independent part of non-matrix ``mode``'s factorisation (``LayerType.prepare``:
        Tucker-2's bases), computed once per mode for the candidate's own calibration ("own") or
        for plain factors (None); None for a matrix mode or another ``cov``."""
        if cov is not None and not isinstance(cov, str):
            return None
        key = (mode, cov is not None and self.cov is not None)
        if key not in self._prepared:
            self._prepared[key] = self.entry.prepare(self.kernel, mode, self.cov if key[1] else None)
            if self._prepared[key] is not None:
                for watcher in list(_WATCHERS):
                    watcher(self, mode)
        return self._prepared[key]

    def spectrum(self, mode) -> np.ndarray | None:
        """Singular values of the kernel's matrix in ``mode``, largest first (computed once): of
        the layer's outputs on the calibration inputs when calibrated; None for a mode that is not
        a matrix (Tucker-2)."""
        if self._plain(mode):
            return self.decomposition(mode).s
        if mode not in self._spectra:
            self._spectra[mode] = self.entry.spectrum(self.kernel, mode, self.cov)
        return self._spectra[mode]

    def factor_params(self, mode, rank) -> int:
        """Weights of the factors at ``rank`` in ``mode``, bias not included."""
        return self.entry.factor_params(self.kernel_shape, mode, rank)

    def max_rank(self, mode) -> int:
        return self.entry.max_rank(self.kernel_shape, mode)

    def rank_limit(self, mode, min_saving=0.0) -> int:
        """Largest rank saving at least ``min_saving`` of the kernel's weights (0: none does)."""
        return self.entry.rank_limit(self.kernel_shape, mode, min_saving)

    def factors(self, mode, rank) -> tuple:
        """Matrix factors A (n, rank), B (rank, m) of the best rank-``rank`` approximation of the
        ``mode`` matrix (plain SVD), in the kernel's dtype, from the one decomposition; for a
        non-matrix mode, its plain kernels (Tucker-2's three) from the one ``prepared``."""
        if mode not in self.entry.matrix_modes:
            prepared = self.prepared(mode, None)
            if prepared is not None and not np.isclose(linalg.squared_norm(self.matrix(self.modes[0])), prepared.total,
                                                       rtol=1e-7, atol=0.0):  # the kernel changed since
                self.release()
                prepared = self.prepared(mode, None)
            if prepared is None:
                raise RankError(f"{self.kind} mode {mode!r} has no factors of its own; build its twin.")
            return tuple(np.asarray(k, self.dtype) for k in prepared.kernels(rank))
        d = self.decomposition(mode, rank, vectors=True)
        matrix = self.matrix(mode)
        if not np.isclose(linalg.squared_norm(matrix), d.total, rtol=1e-7, atol=0.0):  # the kernel changed since
            self.release()
            d = self.decomposition(mode, rank, vectors=True)
        return d.factors(rank, matrix if d.completes(rank) else None, self.dtype)

    def approximate(self, mode, rank, cov="own") -> np.ndarray:
        """The kernel the twin computes at ``rank`` (data-aware when calibrated, unless ``cov``
        is None)."""
        if self._plain(mode, cov):
            a, b = self.factors(mode, rank)
            return self.entry.from_matrix(a @ b, self.kernel_shape, mode).astype(a.dtype)
        own = isinstance(cov, str)
        key = (mode, rank, own)
        if key not in self._approximations:  # one held: planning asks error and weight error in turn
            self._approximations.clear()
            prepared = self.prepared(mode, cov)
            self._approximations[key] = (prepared.approximate(rank) if prepared is not None else
                                         self.entry.approximate(self.kernel, rank, mode, self.cov if own else cov))
        return self._approximations[key]

    def _weight_error(self, mode, rank) -> float | None:
        """A non-matrix mode's weight error as its ``prepared`` part gives it (Tucker-2 without
        calibration: from eigenvalues, no kernel rebuilt); None where there is none."""
        prepared = self.prepared(mode)
        return None if prepared is None else prepared.weight_error(rank)

    def errors(self, mode) -> np.ndarray:
        """Relative error at every rank 1..max_rank (element r - 1): the output error on the
        calibration inputs when calibrated, else the weight error. Exact from the spectrum for
        the modes[0] matrix (and for every matrix mode without calibration); other modes are
        measured on a ladder of at most 25 ranks and interpolated in squared error."""
        if mode in self._curves:
            return self._curves[mode]
        top = self.max_rank(mode)
        s = self.spectrum(mode)
        if s is not None and (self.cov is None or mode == self.modes[0]):
            power = np.square(np.asarray(s, dtype=np.float64))
            total = power.sum()
            tail = np.concatenate([np.cumsum(power[::-1])[::-1][1:], [0.0]]) if total > 0 else np.zeros(len(power))
            curve = np.sqrt(np.clip(tail / total, 0, None)) if total > 0 else tail
            curve = np.concatenate([curve, np.zeros(max(0, top - len(curve)))])[:top]
        else:
            ranks = sorted({1, top, *np.unique(np.round(np.geomspace(1, top, 24)).astype(int))})
            if self.cov is None and self.prepared(mode) is not None:  # each rank read from the one part
                measured = [self._weight_error(mode, r) ** 2 for r in ranks]
            else:
                base = self.matrix(self.modes[0])
                measured = []
                for r in ranks:
                    approx = self.entry.to_matrix(self.approximate(mode, r), self.modes[0])
                    measured.append(linalg.output_error(base, approx, self.cov) ** 2)
            curve = np.sqrt(np.clip(np.interp(np.arange(1, top + 1), ranks, measured), 0, None))
        self._curves[mode] = curve
        return curve

    def error(self, mode, rank) -> float:
        """The relative error at ``rank`` (see ``errors``); without calibration, from the leading
        ``rank`` singular values and ||W||² alone (no whole spectrum needed)."""
        if mode in self._curves:
            return float(self._curves[mode][rank - 1])
        if self._plain(mode):
            return self.decomposition(mode, rank).error(rank)
        if self.cov is None or mode == self.modes[0]:
            s = self.spectrum(mode)
            if s is not None:
                return float(self.errors(mode)[rank - 1])
        if self.cov is None and self.prepared(mode) is not None:
            return self._weight_error(mode, rank)
        approx = self.entry.to_matrix(self.approximate(mode, rank), self.modes[0])  # one rank, measured
        return linalg.output_error(self.matrix(self.modes[0]), approx, self.cov)

    def weight_error(self, mode, rank) -> float:
        """Relative Frobenius error of the kernel the twin computes (the factors actually used)."""
        if self._plain(mode):
            return self.decomposition(mode, rank).error(rank)  # Eckart–Young: the factors project W
        error = self._weight_error(mode, rank)
        if error is not None:
            return error
        return linalg.output_error(self.kernel.reshape(-1, 1), self.approximate(mode, rank).reshape(-1, 1))

    def output_error(self, mode, rank, cov="own") -> float | None:
        """Relative output error on the calibration inputs of the factors built with ``cov``
        ("own": this candidate's; None: plain SVD); None without calibration."""
        if self.cov is None:
            return None
        approx = self.entry.to_matrix(self.approximate(mode, rank, cov), self.modes[0])
        return linalg.output_error(self.matrix(self.modes[0]), approx, self.cov)

    def keep_only(self, mode, rank):
        """Keep just what factorising at ``rank`` in ``mode`` needs (planning decided it): memory
        stays at the model plus one layer's work."""
        d = self._decompositions.get(mode)
        prepared = {k: v for k, v in self._prepared.items() if k[0] == mode and rank is not None}
        self.release()
        if d is not None and rank is not None:
            self._decompositions[mode] = d.trimmed(min(rank, d.vectors)) if d.vectors else d
        self._prepared.update(prepared)  # Tucker-2 planned: applying reads its kernels, not a new HOSVD

    def release(self):
        """Forget the decompositions (a layer's work) once the layer is done."""
        self._decompositions.clear()
        self._curves.clear()
        self._approximations.clear()
        self._prepared.clear()


_WATCHERS: list = []  # callables (candidate, mode) told of each new decomposition (progress bars)


@contextlib.contextmanager
def watching(callback):
    """Within the block, ``callback(candidate, mode)`` runs after every new decomposition."""
    _WATCHERS.append(callback)
    try:
        yield
    finally:
        _WATCHERS.remove(callback)


def candidates(model, statistics=None, vectors=False, method=None) -> list[Candidate]:
    """Every layer of a registered type in ``model`` (exact types), in model order; with
    ``statistics`` (``statistics.Statistics``) and the ``method`` (``methods.Method``) they were
    collected for, the ones it covers carry the second moment the method fits their factors to
    (``Method.covariance``), so their errors are output errors on it. ``vectors``: see
    ``Candidate`` (set it when the plan will be applied)."""
    found = []
    for name, layer in iter_layers(model):
        composite = registry.composite_for(layer)
        if composite is not None and layer.built:
            for part, sub in composite.parts(layer):
                c = _candidate(f"{name}/{part}", sub, vectors)
                if c is not None:
                    c.owner, c.part = layer, part
                    found.append(_with_moments(c, statistics, method))
            continue
        c = _candidate(name, layer, vectors)
        if c is not None:
            found.append(_with_moments(c, statistics, method))
    return found


def _with_moments(c, statistics, method):
    moments = None if statistics is None or c.unsupported is not None else statistics.layers.get(c.name)
    if moments is not None:
        c.cov = method.covariance(moments)
    return c


def _candidate(name, layer, vectors=False):
    entry = registry.entry_for(layer)
    if entry is None:
        return None
    reason = entry.unsupported(layer)
    shape, dtype = entry.kernel_info(layer) if reason is None else ((0,) * entry.kernel_rank, np.float32)
    if reason is None and len(shape) != entry.kernel_rank:
        reason = f"kernel of shape {shape} is not a {entry.name} kernel"
        shape = (0,) * entry.kernel_rank
    bias_var = entry.bias(layer) if layer.built else None
    bias = int(np.prod(bias_var.shape)) if bias_var is not None else 0
    return Candidate(name, layer, entry, shape, bias, reason, constraint=registry.kernel_constraint(layer),
                     vectors=vectors, dtype=dtype)


def not_considered(model) -> list[dict]:
    """Every leaf layer holding weights that is no factorisation candidate, with the reason
    (``{"name", "kind", "params", "reason"}``)."""
    rows = []
    for name, layer in iter_layers(model):
        if registry.entry_for(layer) is not None or registry.composite_for(layer) is not None:
            continue
        if not layer.weights:
            continue
        rows.append({"name": name, "kind": type(layer).__name__, "params": int(layer.count_params()),
                     "reason": registry.not_factorised_reason(layer)})
    return rows


def weight_bytes(model) -> int:
    """Bytes held by the model's weights in memory (what a weights file stores, less headers)."""
    return int(sum(np.prod(w.shape) * np.dtype(w.dtype).itemsize for w in model.weights))


# -- parameters and multiply-accumulates per layer --------------------------------------------

def _shapes(nodes, attr):
    """Shapes of the first input or output tensor at each call."""
    return [tuple((n.input_tensors if attr == "input" else n.output_tensors)[0].shape)
            for n in nodes if (n.input_tensors if attr == "input" else n.output_tensors)]


def layer_macs(layer, nodes) -> int | None:
    """Multiply-accumulates per example, summed over the layer's calls (``nodes``); None if the
    layer type is not counted or a shape is unknown."""
    if not registry.counted(layer):
        return None
    total = 0
    every = type(layer) in registry.ALL_INPUT_SHAPES
    for node, in_shape, out_shape in zip(nodes, _shapes(nodes, "input"), _shapes(nodes, "output")):
        shapes = [tuple(t.shape) for t in node.input_tensors] if every else [in_shape]
        if any(None in s[1:] for s in shapes) or None in out_shape[1:]:
            return None
        total += registry.macs(layer, shapes if every else in_shape, out_shape)
    return int(total)


def named_layers(model):
    """``iter_layers`` and, after each composite layer (a MultiHeadAttention), its factorisable
    parts, named as candidates name them (``block/mha/query``)."""
    for name, layer in iter_layers(model):
        yield name, layer
        composite = registry.composite_for(layer)
        if composite is not None and layer.built:
            for part, sub in composite.parts(layer):
                yield f"{name}/{part}", sub


def call_nodes(model) -> dict:
    """Every call of every leaf layer and composite part (``tracing.call_nodes``): graph nodes, and
    for the layers no graph holds (a subclassed or keras-hub model's attribute layers, the
    projections inside an attention layer), calls recorded on one random example."""
    return traced(model, [layer for _, layer in named_layers(model)])


def macs_per_rank(model) -> dict:
    """{layer name: function(mode, rank) -> MACs per example} for the factorisable leaf layers whose
    input and output sizes are fixed, summed over the layer's calls like ``layer_macs`` (rank
    None: the layer as it is), so a budget in MACs and the whole model's count agree."""
    calls = call_nodes(model)
    out = {}
    for name, layer in iter_layers(model):
        nodes, entry = calls.get(id(layer), []), registry.entry_for(layer)
        shapes = list(zip(_shapes(nodes, "input"), _shapes(nodes, "output")))
        if entry is None or not shapes or any(None in i[1:] or None in o[1:] for i, o in shapes):
            continue
        out[name] = lambda mode, r, e=entry, l=layer, s=shapes: int(sum(e.macs(l, i, o, mode, r) for i, o in s))
    return out


@dataclass
class LayerStats:
    name: str
    kind: str
    output_shape: list
    params: int
    macs: int | None  # None: this layer type is not counted, or a size is unknown
    size_unknown: bool = False  # counted type, but an input or output size is not fixed


def layer_stats(model) -> list[LayerStats]:
    """Params and MACs per example for every leaf layer, nested models included."""
    rows = []
    calls = call_nodes(model)
    for name, layer in iter_layers(model):
        nodes = calls.get(id(layer), [])
        shapes = _shapes(nodes, "output")
        rows.append(LayerStats(
            name=name,
            kind=type(layer).__name__,
            output_shape=list(shapes[0][1:]) if shapes else [],
            params=int(layer.count_params()) if layer.built else 0,
            macs=(macs := layer_macs(layer, nodes)),
            size_unknown=macs is None and registry.counted(layer) and bool(nodes),
        ))
    return rows


def not_counted(stats) -> list[str]:
    """Layer types in ``stats`` whose MACs count as zero (input layers aside)."""
    return sorted({s.kind for s in stats if s.macs is None and not s.size_unknown and s.kind != "InputLayer"})


@dataclass
class SpectrumSummary:
    """How compressible one kernel is: ranks for energy levels and what they would cost."""

    mode: str
    matrix_shape: tuple
    break_even_rank: int
    energy_ranks: dict  # {"0.9": rank, ...}
    energy_params: dict  # {"0.9": params of the factors at that rank, bias included}
    singular_values: list = field(repr=False, default_factory=list)


ENERGY_LEVELS = (0.9, 0.95, 0.99)


def spectrum_summary(c: Candidate, mode: str) -> SpectrumSummary:
    n, m = c.matrix_shape(mode)
    s = c.spectrum(mode)
    ranks = {f"{e:g}": linalg.rank_for_energy(s, e) for e in ENERGY_LEVELS}
    return SpectrumSummary(
        mode=mode,
        matrix_shape=(n, m),
        break_even_rank=linalg.break_even_rank(n, m),
        energy_ranks=ranks,
        energy_params={k: linalg.factorized_params(n, m, r) + c.bias_params for k, r in ranks.items()},
        singular_values=[float(v) for v in s],
    )


def matching_layers(models) -> list[dict]:
    """For each factorisable layer of the first model, its counterpart in every model (by name, or name +
    "_light"): kind, params, and rank and mode when it is a LightLayer; None where there is none."""
    tables = [dict(iter_layers(m)) for m in models]
    rows = []
    for name, layer in iter_layers(models[0]):
        if registry.entry_for(layer) is None:
            continue
        entries = []
        for table in tables:
            twin = table.get(name) or table.get(f"{name}_light")
            if twin is None:
                entries.append(None)
                continue
            rank, mode = registry.light_info(twin)
            entries.append({"kind": type(twin).__name__, "params": int(twin.count_params()),
                            "rank": rank, "mode": mode})
        rows.append({"name": name, "models": entries})
    return rows
