"""The command-line front end: ``app.py`` assembles the Typer app and maps errors to exit codes,
``options.py`` holds the options several commands share, and each command is one thin module
calling the library (mostly ``pipeline``)."""

from .app import app, main

__all__ = ["app", "main"]
