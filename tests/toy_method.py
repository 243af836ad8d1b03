"""A toy factorisation method, as one module: ASVD-style scaling, where each input row of the
kernel is weighted by its mean square on the calibration inputs (the diagonal of their second
moment) instead of the whole second moment."""

import numpy as np

from lightcompress.factorization.methods import register_method
from lightcompress.factorization.methods.data_aware import DataAware


class DiagonalAware(DataAware):
    name = "diagonal-aware"
    summary = "weights each input by its mean square on training images"
    needs = ("input_covariance",)

    def covariance(self, moments):
        return None if moments is None else np.diag(np.diag(moments.cov))


register_method(DiagonalAware())
