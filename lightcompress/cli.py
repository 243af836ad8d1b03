"""The ``lightcompress`` command: a thin Typer app over the library.

Commands parse options, call the pipeline, and hand results to ``report``. Errors of the
LightCompressError family become one line on stderr and exit code 1; a traceback only with
``--debug``.
"""

from __future__ import annotations

import functools
import os
import sys


import typer  # noqa: E402

from . import __version__  # noqa: E402
from .errors import LightCompressError  # noqa: E402

app = typer.Typer(
    name="lightcompress",
    help="Low-rank compression of trained Keras models with LightLayers (SVD-initialised).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool):
    if value:
        typer.echo(f"lightcompress {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
):
    """Low-rank compression of trained Keras models with LightLayers (SVD-initialised)."""


def _fail(message: str, code: int = 1):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(fn):
    """Map known errors to one line and an exit code; ``debug=True`` re-raises them."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        debug = kwargs.get("debug", False)
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except LightCompressError as err:
            if debug:
                raise
            _fail(str(err))
        except KeyboardInterrupt:
            if debug:
                raise
            _fail("interrupted.", 130)
        except Exception as err:  # noqa: BLE001 - last resort: one line, not a traceback
            if debug:
                raise
            _fail(f"unexpected {type(err).__name__}: {err} (rerun with --debug for the traceback)")

    return wrapper


def main():
    """Entry point of the console script and ``python -m lightcompress``."""
    app(prog_name="lightcompress")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
