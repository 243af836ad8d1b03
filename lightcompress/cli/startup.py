"""One line for an error that no library message names: one raised while the tool starts
(importing Typer, the commands, Keras and its backend), a warning that Python's warnings filter
turned into an error, a full disk. Imports nothing that could itself fail."""

from __future__ import annotations

import errno

from .._quiet import backend_problem


def first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0]


def warning_as_error(err: BaseException) -> str | None:
    """For a warning raised as an exception (``PYTHONWARNINGS=error``, ``python -W error``), what
    happened and the fix; None for anything else."""
    if not isinstance(err, Warning):
        return None
    return (f"a {type(err).__name__} was raised as an error because Python's warnings filter turns warnings "
            f"into errors (PYTHONWARNINGS=error or -W error): {first_line(err)}; unset PYTHONWARNINGS (or drop "
            f"-W error) to run lightcompress.")


def disk_full(err: BaseException) -> str | None:
    """For a write that found no room (a full disk or TMPDIR, a quota), where and the fix."""
    if not isinstance(err, OSError) or err.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    where = f" while writing {err.filename}" if err.filename else ""
    return (f"no space left on the device{where}; free some space, or set TMPDIR to a folder on a disk with "
            f"room (temporary files go there).")


def named(err: BaseException) -> str | None:
    """The line for an error of a kind named here (a warning raised as an error, a full disk)."""
    return warning_as_error(err) or disk_full(err)


def message(err: BaseException) -> str:
    """The one line for ``err`` raised outside every command's handler."""
    return (backend_problem(err) or named(err)
            or f"unexpected {type(err).__name__} while starting: {first_line(err)} (rerun with --debug for the "
               f"traceback)")
