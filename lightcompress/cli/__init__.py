"""The command-line front end: ``typer_app.py`` assembles the Typer app and maps errors to exit codes,
``options.py`` holds the options several commands share, ``signals.py`` the one signal policy, and
each command is one thin module calling ``flows``.

``main`` installs the signal policy before anything else is imported (Typer, Keras, TensorFlow),
so an interrupt at any point of a run ends the same way.
"""

from __future__ import annotations

__all__ = ["app", "main"]


def main():
    from .signals import install

    install()
    from .typer_app import main as run

    return run()


def __getattr__(name):
    if name == "app":
        from .typer_app import app

        return app
    raise AttributeError(f"module 'lightcompress.cli' has no attribute {name!r}")
