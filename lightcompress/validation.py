"""Checks of option values, shared by every stage: each refuses a bad value with an
``OptionError`` naming the option, the value and what is allowed."""

from __future__ import annotations

import math

from .errors import OptionError

SEED_MAX = 2 ** 32 - 1  # NumPy's largest seed (np.random.seed, which keras.utils.set_random_seed calls)
INT_MAX = 2 ** 31 - 1  # a C int: LiteRT's num_threads, ONNX Runtime's intra_op_num_threads


def whole(name, value, minimum=0):
    """A whole number >= ``minimum`` (booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OptionError("is invalid", option=name, value=value, allowed=f"a whole number >= {minimum}")
    return value


def number(name, value, low, high=math.inf, *, low_open=False, whole_only=False, example=""):
    """A finite (whole) number in [low, high] (low excluded if ``low_open``)."""
    kind = (int,) if whole_only else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        if high == math.inf:
            bounds = f"{'>' if low_open else '>='} {_shown(low)}"
        else:
            bounds = f"in {'(' if low_open else '['}{_shown(low)}, {_shown(high)}]"
        allowed = f"a {'whole ' if whole_only else ''}number {bounds}" + (f", e.g. {example}" if example else "")
        raise OptionError("is invalid", option=name, value=value, allowed=allowed)
    return value


def _shown(bound):
    """A bound as a user reads it: whole numbers in full (4294967295), others short (3.40282e+38)."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def verbose(value) -> int:
    """Keras's ``verbose``: 0 (silent) or 1 (progress lines on stderr); 2 and "auto" read as 1."""
    if value == "auto" or (not isinstance(value, bool) and isinstance(value, int) and value in (0, 1, 2)):
        return 0 if value == 0 else 1
    if isinstance(value, bool):
        return int(value)
    raise OptionError("is invalid", option="verbose", value=value,
                      allowed="0 (silent) or 1 (progress lines on stderr)")
