"""The command-line front end: ``typer_app.py`` assembles the Typer app and maps errors to exit codes,
``options.py`` holds the options several commands share, ``signals.py`` the one signal policy, and
each command is one thin module calling ``flows``.

``main`` installs the signal policy before anything else is imported (Typer, Keras, TensorFlow),
so an interrupt at any point of a run ends the same way, and holds the one error boundary from its
first line: whatever fails while the tool starts (a Keras backend that cannot be imported, a
warning turned into an error) is one ``error:`` line and exit 1, a traceback only with ``--debug``.
"""

from __future__ import annotations

import sys

__all__ = ["app", "main"]


def main():
    try:
        from .signals import install

        install()
        from .typer_app import main as run

        return run()
    except (SystemExit, KeyboardInterrupt):  # exit codes and interrupts are decided inside run()
        raise
    except BaseException as err:  # noqa: BLE001 - the boundary: one line, never a traceback
        if "--debug" in sys.argv[1:]:
            raise
        from .startup import message

        print(f"error: {message(err)}", file=sys.stderr)
        sys.exit(1)


def __getattr__(name):
    if name == "app":
        from .typer_app import app

        return app
    raise AttributeError(f"module 'lightcompress.cli' has no attribute {name!r}")
