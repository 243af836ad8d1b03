"""The layer types lightcompress factorises, one module each, and the table they register in.

Each type module (``dense``, ``conv2d``, ``conv1d``, ``conv2d_transpose``, ``separable_conv2d``,
``einsum_dense``, ``embedding``, ``reversible_embedding``, ``time_distributed``, ``multi_head_attention``) holds its
LightLayer twin, its kernel <-> matrix reshapes, its MAC formula, why a layer of the type cannot
be factorised, its lowering to standard Keras layers, and its ``registry.register`` call.
Importing this package imports them all: every twin is registered serializable with Keras (a
``.keras`` or ``.h5`` file holding them loads with no ``custom_objects``) and every type is in
the table. ``base`` holds what the twins share; ``registry`` the table and what reads it;
``keras2_activations`` the activations Keras 2 computed differently under a Keras 3 name.
"""

# ruff: noqa: I001 - the type modules are imported in the order their entries register
from . import registry
from .registry import (Composite, LayerType, composite_for, count_macs, entry_for, light_info, macs, register,
                       register_composite, twin_entry, unregister)

from .dense import LightDense
from .conv2d import LightConv2D
from .conv1d import LightConv1D
from .conv2d_transpose import LightConv2DTranspose
from .separable_conv2d import LightSeparableConv2D
from .einsum_dense import LightEinsumDense
from .embedding import LightEmbedding
from .reversible_embedding import LightReversibleEmbedding
from .time_distributed import LightTimeDistributed
from .multi_head_attention import LightMultiHeadAttention
from . import keras2_activations  # noqa: F401 - Keras 2's hard_sigmoid, registered with Keras

__all__ = [
    "Composite", "LayerType", "LightConv1D", "LightConv2D", "LightConv2DTranspose", "LightDense",
    "LightEinsumDense", "LightEmbedding", "LightMultiHeadAttention", "LightReversibleEmbedding", "LightSeparableConv2D",
    "LightTimeDistributed", "composite_for", "count_macs", "entry_for", "light_info", "macs", "register",
    "register_composite", "registry", "twin_entry", "unregister",
]
