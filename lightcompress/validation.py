"""Checks of option values, shared by every stage: each refuses a bad value with an
``OptionError`` naming the option, the value and what is allowed."""

from __future__ import annotations

import math

from .errors import OptionError


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
            bounds = f"{'>' if low_open else '>='} {low:g}"
        else:
            bounds = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
        allowed = f"a {'whole ' if whole_only else ''}number {bounds}" + (f", e.g. {example}" if example else "")
        raise OptionError("is invalid", option=name, value=value, allowed=allowed)
    return value
