"""Importing and running the user's own Python code, by module name or by file path: the data
functions of ``--dataset module:function`` and the classes of ``--custom-objects``. It runs that
code, so it is only ever done for a name the user passed.

The user's code is contained (``running``): whatever it raises, ``SystemExit`` and
``KeyboardInterrupt`` included, ends as one error line naming it (a real Ctrl-C or SIGTERM stays
an interrupt: the signal policy records every signal it handles), and what it prints goes to
stderr, so a report on stdout (``--json``) stays whole.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from pathlib import Path

from . import _interrupts
from .errors import LightCompressError


def first_line(err) -> str:
    text = getattr(err, "message", None) or str(err)
    return (text.strip().splitlines() or [""])[0]


def what_happened(err: BaseException) -> str:
    """What the user's code did, in a few words: ``ValueError: bad shape``, ``it called sys.exit(0)``."""
    if isinstance(err, SystemExit):
        return f"it called sys.exit({err.code!r})"
    line = first_line(err)
    return type(err).__name__ + (f": {line}" if line else "")


def raised(err: BaseException) -> str:
    """``raised ValueError: bad shape``, ``called sys.exit(0)``."""
    said = what_happened(err)
    return said[3:] if isinstance(err, SystemExit) else f"raised {said}"


@contextlib.contextmanager
def running(error, message):
    """Run the user's code inside this block: its prints go to stderr; anything it raises becomes
    ``error(message(exception))`` (our own errors pass through, and so does an interrupt that the
    signal policy recorded during the block: a real Ctrl-C or SIGTERM)."""
    signals_before = len(_interrupts.received)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except LightCompressError:
        raise
    except KeyboardInterrupt as err:
        if len(_interrupts.received) > signals_before:  # a real SIGINT/SIGTERM: the run is interrupted
            raise
        raise error(message(err)) from None
    except GeneratorExit:
        raise
    except BaseException as err:  # noqa: BLE001 - the user's code: SystemExit and the rest end as one line
        raise error(message(err)) from None


def import_user_module(name: str, error, what: str = "module"):
    """The module ``name`` (``pkg.mod``, found from the working folder too, or ``path/to/file.py``),
    imported; a failure is one ``error(...)`` line naming the file or module and the fix."""
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise error(f"{name}: no such Python file; check the path of the {what}.")
        spec = importlib.util.spec_from_file_location(f"lightcompress_user_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # classes defined there pickle and print under this name
        try:
            with running(error, lambda err: f"importing {name} failed ({what_happened(err)}); fix that file."):
                spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(spec.name, None)
            raise
        return module
    added = str(Path.cwd()) not in sys.path
    if added:
        sys.path.insert(0, str(Path.cwd()))
    try:
        with running(error, lambda err: f"importing module '{name}' failed ({what_happened(err)}); fix that module."):
            try:
                return importlib.import_module(name)
            except ModuleNotFoundError as err:
                if err.name and name.startswith(err.name):
                    raise error(f"module '{name}' was not found; check its name, run from its folder or add that "
                                f"folder to PYTHONPATH (or give the path of its .py file).") from None
                raise error(f"importing module '{name}' failed ({type(err).__name__}: {first_line(err)}); "
                            f"install what it needs.") from None
    finally:
        if added:
            sys.path.remove(str(Path.cwd()))
