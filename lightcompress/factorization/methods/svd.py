"""Plain truncated SVD: each kernel's best rank-r approximation in weight space (Eckart–Young).
Needs no data; the factors come from the one decomposition planning made of each kernel."""

from __future__ import annotations

from .base import Method, register_method


class TruncatedSVD(Method):
    name = "svd"
    summary = "plain truncated SVD of each kernel (needs no data)"


register_method(TruncatedSVD())
