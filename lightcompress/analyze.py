"""Walk a model and describe its factorisable layers. Reads weights; never changes the model."""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

from . import svd


def iter_layers(model, prefix=""):
    """Yield ``(path, layer)`` for every leaf layer, descending into nested models.

    A path is the layer name, prefixed by the names of the models it is nested in
    (``"encoder/dense"``). A layer shared between several places is yielded once.
    """
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


FACTORIZABLE = {keras.layers.Dense: "Dense", keras.layers.Conv2D: "Conv2D"}


@dataclass
class Candidate:
    """A trained Dense or Conv2D layer and the matrices its kernel can be factorised as."""

    name: str
    layer: object = field(repr=False)
    kind: str
    kernel: np.ndarray = field(repr=False)
    bias_params: int
    unsupported: str | None = None
    _spectra: dict = field(default_factory=dict, repr=False)

    @property
    def kernel_shape(self) -> tuple:
        return tuple(self.kernel.shape)

    @property
    def params(self) -> int:
        return int(self.kernel.size) + self.bias_params

    @property
    def modes(self) -> tuple:
        return ("dense",) if self.kind == "Dense" else svd.CONV_MODES

    def matrix_shape(self, mode) -> tuple[int, int]:
        if mode == "dense":
            return self.kernel_shape
        return svd.conv_matrix_shape(self.kernel_shape, mode)

    def spectrum(self, mode) -> np.ndarray:
        """Singular values of the kernel's matrix in ``mode``, largest first (computed once)."""
        if mode not in self._spectra:
            matrix = self.kernel if mode == "dense" else svd.conv_kernel_to_matrix(self.kernel, mode)
            self._spectra[mode] = svd.singular_values(matrix)
        return self._spectra[mode]


def _unsupported_reason(layer, kind):
    config = layer.get_config()
    if kind == "Conv2D" and config.get("groups", 1) != 1:
        return f"grouped convolution (groups={config['groups']})"
    if getattr(layer, "quantization_mode", None):
        return f"quantized layer ({layer.quantization_mode})"
    if getattr(layer, "lora_enabled", False):
        return "LoRA is enabled on this layer"
    if not layer.built:
        return "layer is not built"
    return None


def candidates(model) -> list[Candidate]:
    """Every Dense and Conv2D layer of ``model`` (exact types), in model order."""
    found = []
    for name, layer in iter_layers(model):
        kind = FACTORIZABLE.get(type(layer))
        if kind is None:
            continue
        reason = _unsupported_reason(layer, kind)
        kernel = keras.ops.convert_to_numpy(layer.kernel) if reason is None else np.zeros((0, 0))
        bias = int(np.prod(layer.bias.shape)) if getattr(layer, "bias", None) is not None else 0
        found.append(Candidate(name, layer, kind, kernel, bias, reason))
    return found


def weight_bytes(model) -> int:
    """Bytes held by the model's weights in memory (what a weights file stores, less headers)."""
    return int(sum(np.prod(w.shape) * np.dtype(w.dtype).itemsize for w in model.weights))


# -- parameters and multiply-accumulates per layer --------------------------------------------

def graph_nodes(model) -> dict:
    """{id(layer): [node, ...]}: every call of every layer inside ``model``'s graph, nested
    models included. Keras also records calls made while building or loading a layer; reading the
    model's own graph counts only the real ones (a shared layer has several)."""
    found = {}

    def walk(m):
        graph = getattr(m, "_functional", None) or m  # a Sequential keeps its graph aside
        for nodes in getattr(graph, "_nodes_by_depth", {}).values():
            for node in nodes:
                op = node.operation
                found.setdefault(id(op), []).append(node)
                if isinstance(op, keras.Model):
                    walk(op)

    walk(model)
    return found


def _shapes(nodes, attr):
    """Shapes of the first input or output tensor at each call."""
    return [tuple((n.input_tensors if attr == "input" else n.output_tensors)[0].shape)
            for n in nodes if (n.input_tensors if attr == "input" else n.output_tensors)]


def _spatial(shape, data_format):
    """(height, width, channels) of an image tensor shape with batch."""
    if data_format == "channels_first":
        return shape[2], shape[3], shape[1]
    return shape[1], shape[2], shape[3]


def factorized_conv_macs(mode, rank, kernel_size, channels, filters, out_hw, in_width):
    """MACs per example of a k×k conv c→f at ``rank`` in ``mode`` (None: the full conv)."""
    (kh, kw), (out_h, out_w), c, f, r = kernel_size, out_hw, channels, filters, rank
    if r is None:
        return out_h * out_w * kh * kw * c * f
    if mode == "channel":
        return out_h * out_w * (kh * kw * c * r + r * f)
    if mode == "spatial":
        # kh×1 conv keeps the input width (stride 1 across), then 1×kw conv to the output
        return out_h * in_width * kh * c * r + out_h * out_w * kw * r * f
    return out_h * out_w * (kh * kw * c * r + kh * kw * r * f)  # paper: k×k then k×k ("same")


def conv_geometry(layer, in_shape, out_shape):
    """(channels in, filters out, (out_h, out_w), input width) of a conv call."""
    fmt = getattr(layer, "data_format", "channels_last")
    _, in_w, c = _spatial(in_shape, fmt)
    out_h, out_w, f = _spatial(out_shape, fmt)
    return c, f, (out_h, out_w), in_w


def _conv_macs(layer, in_shape, out_shape):
    kind = type(layer).__name__
    c, f, out_hw, in_w = conv_geometry(layer, in_shape, out_shape)
    positions = out_hw[0] * out_hw[1]
    kh, kw = layer.kernel_size
    if kind == "Conv2D":
        return factorized_conv_macs(None, None, layer.kernel_size, c // layer.groups, f, out_hw, in_w)
    if kind == "DepthwiseConv2D":
        return positions * kh * kw * c * layer.depth_multiplier
    if kind == "SeparableConv2D":
        mid = c * layer.depth_multiplier
        return positions * (kh * kw * mid + mid * f)
    return factorized_conv_macs(layer.factorization, layer.rank, layer.kernel_size, c, f, out_hw, in_w)


def dense_positions(out_shape):
    """How many times a Dense applies its kernel per example (1 for 2-D inputs)."""
    return int(np.prod([d for d in out_shape[1:-1]])) if len(out_shape) > 2 else 1


def _dense_macs(layer, out_shape, kernel_in):
    if type(layer).__name__ == "LightDense":
        return dense_positions(out_shape) * layer.rank * (kernel_in + layer.units)
    return dense_positions(out_shape) * kernel_in * layer.units


MAC_COUNTED = ("Dense", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "LightDense", "LightConv2D")


def layer_macs(layer, nodes) -> int | None:
    """Multiply-accumulates per example, summed over the layer's calls (``nodes``); None if the
    layer type is not counted."""
    kind = type(layer).__name__
    if kind not in MAC_COUNTED:
        return None
    total = 0
    for in_shape, out_shape in zip(_shapes(nodes, "input"), _shapes(nodes, "output")):
        if None in in_shape[1:] or None in out_shape[1:]:
            return None
        if kind in ("Dense", "LightDense"):
            total += _dense_macs(layer, out_shape, in_shape[-1])
        else:
            total += _conv_macs(layer, in_shape, out_shape)
    return int(total)


@dataclass
class LayerStats:
    name: str
    kind: str
    output_shape: list
    params: int
    macs: int | None  # None: this layer type is not counted


def layer_stats(model) -> list[LayerStats]:
    """Params and MACs per example for every leaf layer, nested models included."""
    rows = []
    calls = graph_nodes(model)
    for name, layer in iter_layers(model):
        nodes = calls.get(id(layer), [])
        shapes = _shapes(nodes, "output")
        rows.append(LayerStats(
            name=name,
            kind=type(layer).__name__,
            output_shape=list(shapes[0][1:]) if shapes else [],
            params=int(layer.count_params()) if layer.built else 0,
            macs=layer_macs(layer, nodes),
        ))
    return rows


def not_counted(stats) -> list[str]:
    """Layer types in ``stats`` whose MACs count as zero (input layers aside)."""
    return sorted({s.kind for s in stats if s.macs is None and s.kind != "InputLayer"})


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
    ranks = {f"{e:g}": svd.rank_for_energy(s, e) for e in ENERGY_LEVELS}
    return SpectrumSummary(
        mode=mode,
        matrix_shape=(n, m),
        break_even_rank=svd.break_even_rank(n, m),
        energy_ranks=ranks,
        energy_params={k: svd.factorized_params(n, m, r) + c.bias_params for k, r in ranks.items()},
        singular_values=[float(v) for v in s],
    )


def _light_info(layer):
    kind = type(layer).__name__
    if kind == "LightDense":
        return layer.rank, "dense"
    if kind == "LightConv2D":
        return layer.rank, layer.factorization
    return None, None


def matching_layers(models) -> list[dict]:
    """For each Dense/Conv2D of the first model, its counterpart in every model (by name, or name +
    "_light"): kind, params, and rank and mode when it is a LightLayer; None where there is none."""
    tables = [dict(iter_layers(m)) for m in models]
    rows = []
    for name, layer in iter_layers(models[0]):
        if type(layer) not in FACTORIZABLE:
            continue
        entries = []
        for table in tables:
            twin = table.get(name) or table.get(f"{name}_light")
            if twin is None:
                entries.append(None)
                continue
            rank, mode = _light_info(twin)
            entries.append({"kind": type(twin).__name__, "params": int(twin.count_params()),
                            "rank": rank, "mode": mode})
        rows.append({"name": name, "models": entries})
    return rows
