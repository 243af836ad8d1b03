"""A disk cache of JSON results (sensitivity tables, latency profiles). It is only a cache: a
corrupt or foreign entry is a miss (with a one-line warning naming the file) and is recomputed
and replaced; writes are atomic under unique temporary names, so concurrent runs never collide."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from ..errors import LightCompressError, LightCompressWarning
from .models import atomic_write


def root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lightcompress"


def check_dir(folder) -> Path:
    """The cache folder; refuses a path that is a file, before any work."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise LightCompressError(f"cache folder {folder} is a file; give a folder for cache_dir.")
    return folder


def read(path: Path, parse, what="cache", warn=None):
    """``parse(json data)`` of the entry at ``path``, or None when it is missing or unreadable."""
    if not path.exists():
        return None
    try:
        return parse(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as err:
        if warn:
            warn(f"ignoring the unreadable {what} file {path} ({type(err).__name__}); recomputing it")
        return None


def write(data: dict, path: Path) -> Path | None:
    """Write the entry at ``path`` atomically; where the cache cannot be written (its folder is a
    file, read-only, the disk full), warn once in a line and go on without it: None."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data)))
    except (OSError, LightCompressError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        warnings.warn(LightCompressWarning(f"could not write the cache file {path} ({reason}); the result is "
                                           f"not cached: set XDG_CACHE_HOME to a writable folder"), stacklevel=2)
        return None
