"""One signal policy for every command, installed on the first line of the entry point.

SIGINT (Ctrl-C) and SIGTERM both raise ``KeyboardInterrupt`` (SIGTERM as its subclass
``Terminated``) in the main thread, so every stage that handles an interrupt handles both: a
fine-tune stops and keeps its best completed epoch, an atomic write leaves nothing partial. The
command then prints one line and exits 130 after SIGINT, 143 after SIGTERM (128 + the signal's
number, as a shell reports it), also when the interrupted run saved its best epoch: a script can
tell an interrupted run from a finished one by the exit code alone, and the line says what is on
disk.
"""

from __future__ import annotations

import contextlib
import signal
import sys

from .._interrupts import note, received as _received


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C."""


_armed = [0]  # > 0 while our own code runs (start-up, a command); Typer/Click's own code is never interrupted


def _interrupt():
    return Terminated() if _received and _received[-1] == signal.SIGTERM else KeyboardInterrupt()


def _on_signal(signum, frame):
    note(signum)
    if _armed[0]:
        raise _interrupt()


@contextlib.contextmanager
def armed():
    """Signals raise inside this block; outside it (in Click's parsing and exit) they are recorded
    and raised when the next armed block starts, so none escapes to Click (which would end the run
    with a blank line and its own exit code)."""
    _armed[0] += 1
    try:
        if _received:
            raise _interrupt()
        yield
    finally:
        _armed[0] -= 1


def install():
    """SIGINT and SIGTERM are handled by this policy from now on (see ``armed``)."""
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    sys.unraisablehook = _unraisable


def _unraisable(info, _python=sys.unraisablehook):
    """An interrupt raised where Python cannot raise it (a ``__del__``, a weakref callback) would be
    printed as "Exception ignored ... Traceback"; it is recorded already and handled at the next
    batch or when the command ends, so it is dropped quietly. Anything else is Python's to print."""
    if not isinstance(info.exc_value, KeyboardInterrupt):
        _python(info)


def exit_code(err: BaseException | None = None) -> int:
    """130 after SIGINT, 143 after SIGTERM."""
    if isinstance(err, Terminated) or (_received and _received[-1] == signal.SIGTERM):
        return 128 + signal.SIGTERM
    return 128 + signal.SIGINT


def name(err: BaseException | None = None) -> str:
    return "SIGTERM" if exit_code(err) == 128 + signal.SIGTERM else "SIGINT"


def interrupted() -> bool:
    """Whether a signal arrived during this run (a stage may have caught it and carried on)."""
    return bool(_received)
