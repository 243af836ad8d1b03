"""lightcompress: low-rank compression of trained Keras models with LightLayers.

>>> import lightcompress
>>> sorted(lightcompress.__all__)[:3]
['LightCompressError', 'LightConv2D', 'LightDense']
"""

__version__ = "0.1.0"

from ._quiet import import_keras_quietly

import_keras_quietly()

from .errors import LightCompressError  # noqa: E402
from .layers import LightConv2D, LightDense  # noqa: E402

__all__ = ["__version__", "LightCompressError", "LightConv2D", "LightDense"]
