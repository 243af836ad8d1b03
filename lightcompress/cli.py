"""The ``lightcompress`` command: a thin Typer app over the library.

Commands parse options, call the pipeline, and hand results to ``report``. Errors of the
LightCompressError family become one line on stderr and exit code 1; a traceback only with
``--debug``.
"""

from __future__ import annotations

import functools
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional


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


# Options shared by several commands.
Debug = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout instead of tables.")]
Force = Annotated[bool, typer.Option("--force", help="Overwrite the output file if it exists.")]
TrustModel = Annotated[
    bool,
    typer.Option(
        "--trust-model",
        help="Allow Lambda layers (Python code in the file). Only for files from authors you trust.",
    ),
]
ModelPath = Annotated[Path, typer.Argument(help="A trained Keras model: .h5 (Keras 2 or 3) or .keras.")]


class ConvMode(str, Enum):
    channel = "channel"
    spatial = "spatial"
    auto = "auto"


def _consoles():
    from rich.console import Console

    return Console(), Console(stderr=True)


@app.command()
@handle_errors
def convert(
    model: ModelPath,
    rank: Annotated[
        Optional[int],
        typer.Option("--rank", "-r", help="The same rank for every layer, clipped per layer to what saves parameters."),
    ] = None,
    energy: Annotated[
        Optional[float],
        typer.Option(help="Per layer, the smallest rank keeping this fraction of spectral energy (e.g. 0.95)."),
    ] = None,
    ratio: Annotated[
        Optional[float],
        typer.Option(help="Global budget: converted layers keep about this fraction of their params (e.g. 0.3)."),
    ] = None,
    include: Annotated[
        Optional[list[str]], typer.Option(help="Only layers whose name matches this glob (repeatable).")
    ] = None,
    exclude: Annotated[
        Optional[list[str]], typer.Option(help="Leave layers whose name matches this glob (repeatable).")
    ] = None,
    min_params: Annotated[int, typer.Option(help="Leave layers with fewer parameters alone.")] = 1000,
    conv_mode: Annotated[
        ConvMode,
        typer.Option(help="Conv2D factorisation: channel (kxk then 1x1), spatial (kx1 then 1xk), or auto per layer."),
    ] = ConvMode.channel,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Where to save (.keras or .h5). Default: <stem>.light.keras beside the input.")
    ] = None,
    force: Force = False,
    json_out: JsonOut = False,
    trust_model: TrustModel = False,
    debug: Debug = False,
):
    """Replace Dense and Conv2D layers with SVD-initialised LightLayers and report what changed.

    Example: lightcompress convert model.h5 --rank 8
    """
    from . import model_io, report
    from .factorize import convert as convert_model
    from .plan import RankPolicy

    out, err = _consoles()
    policy = RankPolicy(
        rank=rank,
        energy=energy,
        ratio=ratio,
        include=tuple(include or ()),
        exclude=tuple(exclude or ()),
        min_params=min_params,
        conv_mode=conv_mode.value,
    )
    target = model_io.check_output(output or model_io.default_output(model), force=force, inputs=[model])
    with err.status(f"loading {model}"):
        original = model_io.load_model(model, trust=trust_model)
    with err.status("factorising"):
        result = convert_model(original, policy)
    model_io.save_model(result.model, target, force=force, inputs=[model])
    data = report.conversion_dict(result, model, target, model.stat().st_size, target.stat().st_size)
    if json_out:
        report.print_json(data)
    else:
        report.print_conversion(data, out)


def main():
    """Entry point of the console script and ``python -m lightcompress``."""
    app(prog_name="lightcompress")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
