"""Signals received during this run, for code that must notice one a library swallowed.

The command line's signal policy (``cli/signals.py``) raises ``KeyboardInterrupt`` in the main
thread; a library running at that moment (TensorFlow's start-up, a data loader) may catch it.
``note`` records every signal here too, and long loops check ``pending()`` (fine-tuning stops at
the next batch), so no interrupt is lost.
"""

from __future__ import annotations

received: list[int] = []


def note(signum: int):
    received.append(signum)


def pending() -> bool:
    return bool(received)
