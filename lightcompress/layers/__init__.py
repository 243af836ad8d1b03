"""The LightLayer twins and the table of layer types (temporary exports until the per-type split)."""

from . import registry  # noqa: F401  (registers every layer type)
from .core import LightConv2D, LightDense
from .twins import (LightConv1D, LightConv2DTranspose, LightEinsumDense, LightEmbedding,
                    LightMultiHeadAttention, LightSeparableConv2D, LightTimeDistributed)

__all__ = ["LightConv1D", "LightConv2D", "LightConv2DTranspose", "LightDense", "LightEinsumDense",
           "LightEmbedding", "LightMultiHeadAttention", "LightSeparableConv2D", "LightTimeDistributed"]
