"""Input files read safely: only regular files, and never more bytes than a limit.

Every path lightcompress opens for reading (a model, a plan, a ``.npz`` data set, a TFRecord file)
is checked first with ``check_regular_file``: ``open()`` on a FIFO blocks until some other process
writes to it (a run that hangs with no word), and a device such as ``/dev/zero`` never ends. The
check is a ``stat``, which neither opens nor blocks. ``read_bounded`` reads at most ``limit + 1``
bytes, a chunk at a time, so a file (or a zip member) larger than any real one of its kind is
refused without being read whole.

>>> size_text(64 * 2**20), size_text(1000)
('64 MB', '1,000 bytes')
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import LightCompressError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def file_kind(path) -> str | None:
    """What ``path`` is when it is not a regular file (``"a FIFO"``, ``"a folder"``, ...); None for
    a regular file, or for a path that cannot be looked at (missing: the caller names that)."""
    try:
        mode = os.stat(path).st_mode  # follows links: a link to /dev/zero is a character device
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a file")


def no_such_file(path) -> str:
    """The one message for a model or artefact path that does not exist."""
    return f"{path}: no such file; check the path."


def check_regular_file(path, what: str, error=LightCompressError, *, folders=False) -> Path:
    """``path``, after refusing (before any ``open``) one that exists and is not a regular file.

    ``what`` is what to give instead (``"a .keras or .h5 model file"``); ``error`` the error class
    of the caller's stage; ``folders=True`` lets a folder through (for callers that read folders).
    """
    kind = file_kind(path)
    if kind is None or (folders and kind == "a folder"):
        return Path(path)
    raise error(f"{path} is not a regular file ({kind}); give {what}.")


def size_text(n: int) -> str:
    """A limit as a user reads it: ``64 MB``, ``1 MB``, ``512 KB`` (powers of 1024)."""
    for unit, scale in (("GB", 2 ** 30), ("MB", 2 ** 20), ("KB", 2 ** 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n:,} bytes"


READ_CHUNK = 2 ** 20  # bytes asked of a stream at once: a zip member inflates at most about this much per read


def read_bounded(stream, limit: int) -> bytes | None:
    """At most ``limit`` bytes of ``stream``; None when it holds more. It is read in chunks of
    ``READ_CHUNK`` and never past ``limit + 1`` bytes: one ``read(limit + 1)`` of a zip member
    would inflate a whole ``limit`` at once (twice that at its peak) before its size is known."""
    parts, total = [], 0
    while total <= limit:
        part = stream.read(min(READ_CHUNK, limit + 1 - total))
        if not part:
            break
        parts.append(part)
        total += len(part)
    return None if total > limit else b"".join(parts)


def read_file_bounded(path, limit: int, what: str, error=LightCompressError) -> bytes:
    """The bytes of the regular file ``path``, refused in one line when over ``limit``; ``what``
    names the kind of file (``"a plan file"``) in that line."""
    check_regular_file(path, what, error)
    with open(path, "rb") as f:
        data = read_bounded(f, limit)
    if data is None:
        raise error(f"{path} is over the {size_text(limit)} {what} may take; the file is damaged or not "
                    f"{what}.")
    return data
