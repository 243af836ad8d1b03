"""The one error family of lightcompress.

Every message names what is wrong (the layer, the shape, the value) and how to fix it, in one
line. Library messages speak Python: an option is written as its keyword argument
(``target_params=5``, ``force=True``). Errors about one option also carry it as fields
(``option``, ``value``, ``allowed``), so a front end can phrase them in its own words: the CLI
rewrites ``name=value`` in its own flag spelling for the options its command has.

>>> err = RankError("is not a fraction", option="target_params", value=5, allowed="a number in (0, 1)")
>>> str(err)
'target_params=5 is not a fraction; use a number in (0, 1).'
>>> err.option, err.value
('target_params', 5)
"""

from __future__ import annotations


class LightCompressError(Exception):
    """Base of every error lightcompress raises on purpose.

    Either a whole ``message``, or (with ``option``) a problem about one option: the message is
    then ``"<option>=<value> <problem>; use <allowed>."``.
    """

    def __init__(self, message: str, *, option: str | None = None, value=None, allowed: str | None = None):
        self.option, self.value, self.allowed = option, value, allowed
        if option is not None:
            message = f"{option}={value!r} {message}" + (f"; use {allowed}." if allowed else ".")
        super().__init__(message)


class RankError(LightCompressError, ValueError):
    """A rank (or a rank-choosing value) that cannot be used for a layer."""


class OptionError(LightCompressError, ValueError):
    """An option (a number, a name, a combination) outside what is allowed."""


class ModelLoadError(LightCompressError):
    """A model file that cannot be read, or that lightcompress must not load."""


class UnsupportedModelError(LightCompressError):
    """A model or layer that lightcompress cannot rewrite."""


class OutputPathError(LightCompressError):
    """An output path that would overwrite something it must not."""


class DataError(LightCompressError):
    """A data set that cannot be found, read, or shaped for the model."""


class ExportError(LightCompressError):
    """An export that cannot be made, or whose artefact does not compute what the model does."""


class LightCompressWarning(UserWarning):
    """Something the user should know that did not stop the work (e.g. a file saved by older Keras
    was rewritten on load). The CLI prints these as ``note:`` lines."""
