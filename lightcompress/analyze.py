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
