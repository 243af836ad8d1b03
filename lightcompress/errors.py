"""The one error family of lightcompress.

Every message names what is wrong (the layer, the shape, the value) and how to fix it, in one
line, so the CLI can print it as it is and exit with code 1.
"""


class LightCompressError(Exception):
    """Base of every error lightcompress raises on purpose."""


class RankError(LightCompressError, ValueError):
    """A rank (or a rank-choosing value) that cannot be used for a layer."""


class ModelLoadError(LightCompressError):
    """A model file that cannot be read, or that lightcompress must not load."""


class UnsupportedModelError(LightCompressError):
    """A model or layer that lightcompress cannot rewrite."""


class OutputPathError(LightCompressError):
    """An output path that would overwrite something it must not."""


class DataError(LightCompressError):
    """A data set that cannot be found, read, or shaped for the model."""
