"""The ``lightcompress`` command: app assembly and the one place errors become exit codes.

Known errors (the LightCompressError family) become one line on stderr and exit code 1, their
option names phrased as this command's flags; Ctrl-C exits 130 with one line; anything else is
one "unexpected" line. A traceback only with ``--debug``.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import typing
import warnings
from inspect import cleandoc
from pathlib import Path

import typer
import typer.rich_utils

from .. import _interrupts, _quiet
from .._deferred import deferred
from .._version import __version__
from ..errors import LightCompressError, LightCompressWarning
from ..io.files import no_such_file
from . import (baseline, compare, compress, convert, demo, evaluate, export, finetune, inspect, options, signals,
               startup, tradeoffs)

import_custom_objects = deferred("lightcompress.io.models", "import_custom_objects")

app = typer.Typer(
    name="lightcompress",
    help="Low-rank compression of trained Keras models with LightLayers (SVD-initialised).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Library keyword names whose flag has another name.
ALIASES = {"trust": "trust_model", "holdout_size": "holdout", "learning_rate": "lr", "plan_file": "plan",
           "validation_split": "val_split", "data": "dataset"}
_ASSIGNMENT = re.compile(r"\b([a-z][a-z0-9_]*)=('[^']*'|\"[^\"]*\"|[^\s;,'\"]+?)(?=[\s;,)]|\.(?:\s|$)|$)")
_IDENTIFIER = re.compile(r"\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b")


def command_flags(fn) -> dict:
    """{parameter name: its long flag} for a command function's options."""
    flags = {}
    for name, hint in typing.get_type_hints(fn, include_extras=True).items():
        info = next((m for m in getattr(hint, "__metadata__", ()) if isinstance(m, typer.models.OptionInfo)), None)
        if info is None:
            continue
        decls = (info.default, *(info.param_decls or ())) if isinstance(info.default, str) else info.param_decls or ()
        declared = [d for d in decls if d.startswith("--")]
        flags[name] = declared[0] if declared else "--" + name.replace("_", "-")
    return flags


def phrase(message: str, flags: dict) -> str:
    """A library message in flag words: ``target_params=5`` -> ``--target-params 5``,
    ``force=True`` -> ``--force``, ``min_params`` -> ``--min-params`` (for this command's flags)."""

    def flag(name):
        return flags.get(ALIASES.get(name, name)) or flags.get(name)

    def assignment(m):
        name, value = m.group(1), m.group(2).strip("'\"")
        f = flag(name)
        if f is None:
            return m.group(0)
        return f if value == "True" else f"{f} {value}"

    message = _ASSIGNMENT.sub(assignment, message)
    return _IDENTIFIER.sub(lambda m: flag(m.group(1)) or m.group(0), message)


def fail(message: str, code: int = 1):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(fn):
    """Map known errors to one line and an exit code; ``debug=True`` re-raises them."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        debug = kwargs.get("debug", False)
        if isinstance(kwargs.get("model"), Path) and not kwargs["model"].name:  # "." names no file
            kwargs["model"] = kwargs["model"].resolve()
        missing = next((p for p in _model_paths(kwargs) if not p.exists() and not p.is_symlink()), None)
        if missing is not None and not debug:  # answered at once, before Keras starts (seconds)
            fail(no_such_file(missing))
        start_keras(debug)
        try:
            with signals.armed(), options.report_stdout(kwargs.get("json_out", False)):
                if kwargs.get("custom_objects"):  # the user's classes, registered before any model loads
                    import_custom_objects(kwargs["custom_objects"])
                result = fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except LightCompressError as err:
            if debug:
                raise
            fail(phrase(str(err), command_flags(fn)))
        except KeyboardInterrupt as err:
            if debug:
                raise
            fail(f"interrupted ({signals.name(err)}); the step that was running wrote nothing (files finished before "
                 f"it are whole).",
                 signals.exit_code(err))
        except Exception as err:  # noqa: BLE001 - last resort: one line, not a traceback
            if debug:
                raise
            first = (str(err).strip().splitlines() or [""])[0]
            fail(startup.named(err)
                 or f"unexpected {type(err).__name__}: {first} (rerun with --debug for the traceback)")
        if _interrupts.pending():  # a library swallowed the interrupt and the command ran to its end
            fail(f"interrupted ({signals.name()}) while it ran; it finished anyway and wrote its outputs.",
                 signals.exit_code())
        return result

    return wrapper


def _model_paths(kwargs) -> list:
    """The model or artefact paths a command was given (``model``; compare's ``models``)."""
    given = kwargs.get("models") or [kwargs.get("model")]
    return [p for p in given if isinstance(p, Path)]


def start_keras(debug=False):
    """Import Keras and start its backend, with TensorFlow's start-up lines held back
    (``LIGHTCOMPRESS_TF_LOGS=1`` shows them): done when a command runs, so ``--help``, ``--version``
    and usage errors answer without it. A backend that cannot start is one line.

    Not armed: a signal that lands inside TensorFlow's C++ start-up is recorded, never raised there
    (raised inside it, it ended the process by SIGABRT or by the signal itself); the command's armed
    block right after raises it, so the run still ends with its one line."""
    try:
        _quiet.import_keras_quietly(verbose_errors=debug)
    except KeyboardInterrupt as err:
        if debug:
            raise
        fail(f"interrupted ({signals.name(err)}) while starting; nothing was written.", signals.exit_code(err))
    except Exception as err:  # noqa: BLE001 - a backend that cannot start, a warning raised as an error
        if debug:
            raise
        fail(startup.message(err))


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """The library's own warnings as one ``note:`` line each; others as Python prints them."""
    if issubclass(category, LightCompressWarning):
        typer.echo(f"note: {message}", err=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


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
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # e.g. retracing notices between models
    warnings.showwarning = _show_warning


def reflow(doc: str) -> str:
    """A command's docstring as ``--help`` shows it: each paragraph one line, for the terminal to
    wrap (Typer keeps single line breaks, which at 80 columns left every source line ragged);
    lines of a list ("- ...") stay lines."""
    paragraphs = []
    for paragraph in cleandoc(doc or "").split("\n\n"):
        lines = paragraph.splitlines()
        listed = any(line.lstrip().startswith("- ") for line in lines)
        paragraphs.append("\n".join(lines) if listed else " ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs)


def _register():
    for module in (convert, finetune, evaluate, inspect, compare, compress, export, demo, baseline, tradeoffs):
        app.command(name=module.NAME, help=reflow(module.command.__doc__))(handle_errors(options.expand(module.command)))


_register()


USAGE_EXIT = 2  # a command line that does not parse (an unknown option, a missing argument), as Click says
PIPED_HELP_WIDTH = 200  # --help into a pipe or a file: whole lines, not rich's 80-column fallback


def _clicks(err, name) -> bool:
    """Whether ``err`` is Click's exception ``name`` (Click's own, or the copy newer Typer vendors)."""
    return any(cls.__name__ == name and cls.__module__.split(".")[0] in ("click", "typer")
               for cls in type(err).__mro__)


def run(args) -> int:
    """Run the command line ``args`` and return its exit code. A usage error (an unknown option, a
    bad value for a typed option, a missing argument) is one ``error:`` line naming the command's
    --help, exit 2, in the same form as every other error."""
    if not sys.stdout.isatty() and not os.environ.get("TERMINAL_WIDTH") and not os.environ.get("COLUMNS"):
        typer.rich_utils.MAX_WIDTH = PIPED_HELP_WIDTH
    command = typer.main.get_command(app)
    try:
        return command.main(args=list(args), prog_name="lightcompress", standalone_mode=False) or 0
    except Exception as err:  # noqa: BLE001 - Click's exceptions, whichever Click raised them
        if _clicks(err, "NoArgsIsHelpError"):  # `lightcompress` alone: its help
            typer.echo(err.ctx.get_help())
            return 0
        if _clicks(err, "ClickException"):
            where = getattr(getattr(err, "ctx", None), "command_path", None) or "lightcompress"
            said = " ".join(err.format_message().split()).rstrip(".")  # Click's lists span lines
            said = said.replace(": Value error, ", ": ")  # Typer's validation prefix says nothing
            typer.echo(f"error: {said}; see '{where} --help'.", err=True)
            return err.exit_code or USAGE_EXIT
        if _clicks(err, "Abort"):
            typer.echo("error: aborted.", err=True)
            return 1
        raise


def main():
    """Entry point of the console script and ``python -m lightcompress``. Keras is imported only
    when a command runs (``start_keras``)."""
    signals.install()
    try:
        with signals.armed():
            pass
        sys.exit(run(sys.argv[1:]))
    except KeyboardInterrupt as err:
        print(f"error: interrupted ({signals.name(err)}) while starting; nothing was written.", file=sys.stderr)
        sys.exit(signals.exit_code(err))
    except SystemExit as done:  # a signal that came after the command's own code ended
        if _interrupts.pending() and not done.code:
            print(f"error: interrupted ({signals.name()}) as it ended; its outputs were written.", file=sys.stderr)
            sys.exit(signals.exit_code())
        if not done.code:
            signals.ended()  # a signal during the teardown that follows still exits with its code
        raise
