"""Data-aware factors (DRONE, SVD-LLM's whitening): each kernel's rank-r approximation with the
least *output* error on the calibration inputs, fitted to their second moment (``linalg.data_aware_svd``).

Its variants are config of the one ``DataAware`` class, each registered under its own name:

- ``bias_correction`` ("+bias"): the bias absorbs the mean output shift E[x]·W − E[x̂]·W_r
  (needs the inputs' mean too);
- ``sequential`` ("+sequential"): each layer is calibrated on the inputs the already-factorised
  layers before it produce, and factorises ``linalg.sequential_target`` (the kernel that best
  maps those inputs to the original's outputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import linalg
from ..._deferred import deferred
from .base import Method, register_method

keras = deferred("keras")  # the command line lists the methods before Keras starts


@dataclass(frozen=True, repr=False)
class DataAware(Method):
    bias_correction: bool = False
    sequential: bool = False

    @property
    def name(self) -> str:
        return "data-aware" + ("+sequential" if self.sequential else "") + ("+bias" if self.bias_correction else "")

    @property
    def summary(self) -> str:
        extra = [text for on, text in ((self.sequential, "calibrated layer by layer on the factorised model"),
                                       (self.bias_correction, "bias absorbs the mean output shift")) if on]
        return "least output error on training images" + (f" ({'; '.join(extra)})" if extra else "")

    @property
    def needs(self) -> tuple:
        return ("input_covariance",) + (("input_mean",) if self.bias_correction else ())

    def covariance(self, moments):
        return None if moments is None else moments.cov

    def weights(self, entry, layer, rank, mode, moments):
        """The twin's weights (kernels, then the bias if it has one) on the layer's ``moments``
        (``statistics.LayerMoments``); None if they are not finite."""
        kernel = entry.kernel(layer)
        base = entry.modes[0]
        w = entry.to_matrix(kernel, base)
        target = kernel
        cov = self.covariance(moments)
        if moments.cross is not None:
            target = entry.from_matrix(linalg.sequential_target(w, moments.cov, moments.cross), kernel.shape, base)
            target = np.asarray(target, dtype=kernel.dtype)
        weights = [np.asarray(k) for k in entry.factors(target, rank, mode, cov)]
        bias = getattr(layer, "bias", None)
        if bias is not None:
            bias = keras.ops.convert_to_numpy(bias).astype(np.float64)
            if self.bias_correction:
                approx = entry.to_matrix(entry.approximate(target, rank, mode, cov), base)
                bias = self.corrected_bias(bias, w, approx, moments)
            weights.append(bias.astype(kernel.dtype))
        return weights if all(np.all(np.isfinite(v)) for v in weights) else None

    def truncated(self, candidate, mode, rank, moments, bias):
        """The kernel the twin computes and its bias, corrected (with ``bias_correction``) from
        the original kernel: call it before the layer's kernel is swapped."""
        kernel = candidate.approximate(mode, rank)
        if self.bias_correction and bias is not None and moments is not None:
            base = candidate.modes[0]
            shifted = self.corrected_bias(np.asarray(bias, dtype=np.float64), candidate.matrix(base),
                                          candidate.entry.to_matrix(kernel, base), moments)
            bias = shifted.astype(np.asarray(bias).dtype)
        return kernel, bias

    @staticmethod
    def corrected_bias(bias, w, approx, moments):
        """``bias`` + E[x]·W − E[x̂]·W_r (x: the original's inputs, x̂: the ones the twin sees).

        >>> from types import SimpleNamespace as M
        >>> w, approx = np.eye(2), np.zeros((2, 2))
        >>> DataAware.corrected_bias(np.zeros(2), w, approx, M(mean=np.array([1.0, 2.0]), reference_mean=None))
        array([1., 2.])
        """
        reference = moments.mean if moments.reference_mean is None else moments.reference_mean
        return bias + reference @ np.asarray(w, dtype=np.float64) - moments.mean @ np.asarray(approx, dtype=np.float64)


for _sequential in (False, True):
    for _bias in (False, True):
        register_method(DataAware(bias_correction=_bias, sequential=_sequential))
