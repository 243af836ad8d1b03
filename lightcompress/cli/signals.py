"""One signal policy for every command, installed on the first line of the entry point.

SIGINT (Ctrl-C), SIGTERM and SIGHUP (the terminal closed) all raise ``KeyboardInterrupt`` (SIGTERM
and SIGHUP as its subclass ``Terminated``) in the main thread, so every stage that handles an
interrupt handles all three: a
fine-tune stops and keeps its best completed epoch, an atomic write leaves nothing partial. The
command then prints one line and exits 130 after SIGINT, 143 after SIGTERM, 129 after SIGHUP (128 +
the signal's number, as a shell reports it), also when the interrupted run saved its best epoch: a script can
tell an interrupted run from a finished one by the exit code alone, and the line says what is on
disk.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

from .._interrupts import note
from .._interrupts import received as _received


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C; ``signum`` says which."""

    def __init__(self, signum=signal.SIGTERM):
        super().__init__()
        self.signum = signum


HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


_armed = [0]  # > 0 while our own code runs (start-up, a command); Typer/Click's own code is never interrupted


def _interrupt():
    last = _received[-1] if _received else signal.SIGINT
    return KeyboardInterrupt() if last == signal.SIGINT else Terminated(last)


_ended = []  # set once the command has ended: a signal then ends the process at once


def _on_signal(signum, frame):
    note(signum)
    if _ended:
        _exit_now()
    if _armed[0]:
        raise _interrupt()


def _exit_now():
    """The command has ended and written its outputs; a signal during teardown (TensorFlow's can
    take seconds) ends the process with the signal's exit code, never 0."""
    try:
        sys.stderr.write(f"error: interrupted ({name()}) as it ended; its outputs were written.\n")
        sys.stderr.flush()
    finally:
        os._exit(exit_code())


def ended():
    """Called when the command's own code is over: a signal from now on ends the process at once
    with its exit code."""
    _ended.append(True)


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
    """SIGINT, SIGTERM and SIGHUP are handled by this policy from now on (see ``armed``)."""
    for signum in HANDLED:
        signal.signal(signum, _on_signal)
    sys.unraisablehook = _unraisable


def _unraisable(info, _python=sys.unraisablehook):
    """An interrupt raised where Python cannot raise it (a ``__del__``, a weakref callback) would be
    printed as "Exception ignored ... Traceback"; it is recorded already and handled at the next
    batch or when the command ends, so it is dropped quietly. Anything else is Python's to print."""
    if not isinstance(info.exc_value, KeyboardInterrupt):
        _python(info)


def _signum(err: BaseException | None = None) -> int:
    if isinstance(err, Terminated):
        return err.signum
    return _received[-1] if _received else signal.SIGINT


def exit_code(err: BaseException | None = None) -> int:
    """130 after SIGINT, 143 after SIGTERM, 129 after SIGHUP."""
    return 128 + _signum(err)


def name(err: BaseException | None = None) -> str:
    return signal.Signals(_signum(err)).name


def interrupted() -> bool:
    """Whether a signal arrived during this run (a stage may have caught it and carried on)."""
    return bool(_received)
