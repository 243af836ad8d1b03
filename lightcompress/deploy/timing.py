"""What every timing in deploy shares: the runtimes a Keras model can be timed in, the thread
default, ``Runtime`` (a runtime and its thread count, checked once when made), and the median of
repeated calls. A leaf: it imports nothing else of ``deploy`` (export, runtimes, latency and
measure all import it), and nothing heavy, so the command line reads it before Keras is loaded.

>>> Runtime("keras", threads=4).threads
4
>>> Runtime("tpu")
Traceback (most recent call last):
lightcompress.errors.OptionError: runtime='tpu' is unknown; use one of keras, litert.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from ..errors import OptionError
from ..validation import INT_MAX, number, whole

RUNTIMES = ("keras", "litert")  # where a Keras model is timed (exported artefacts: their own runtime)
DEFAULT_THREADS = 2  # the interpreter's thread count: 2 = this project's reference machine


@dataclass
class Latency:
    batch: int
    median_ms: float
    min_ms: float
    repeats: int
    warmup: int


def _backend() -> str:
    import keras

    return keras.backend.backend()


def default_runtime() -> str:
    """LiteRT where TensorFlow is the backend (what a deployment runs), else the backend itself."""
    return "litert" if _backend() == "tensorflow" else "keras"


@dataclass(frozen=True)
class Runtime:
    """Where Keras models are timed: ``name`` ("litert": the LiteRT interpreter, "keras": the
    compiled forward pass; None: ``default_runtime()``) and ``threads`` (the interpreter's and
    ONNX Runtime's thread count). Checked once, here; every stage that times takes one and trusts
    it."""

    name: str | None = None
    threads: int = DEFAULT_THREADS

    def __post_init__(self):
        name = self.name or default_runtime()
        if name not in RUNTIMES:
            raise OptionError("is unknown", option="runtime", value=name, allowed=f"one of {', '.join(RUNTIMES)}")
        if name == "litert" and _backend() != "tensorflow":
            raise OptionError(f"needs TensorFlow; this process runs Keras on {_backend()}",
                              option="runtime", value=name, allowed="runtime='keras'")
        number("threads", self.threads, 1, INT_MAX, whole_only=True)  # the interpreters take a C int
        object.__setattr__(self, "name", name)

    @classmethod
    def parse(cls, runtime=None, threads=None) -> Runtime:
        """``runtime`` as a Runtime: one given is returned as it is (``threads`` must then be None
        or its own); a name (or None: the default) is checked with ``threads`` (None: 2)."""
        if isinstance(runtime, cls):
            if threads is not None and threads != runtime.threads:
                raise OptionError(f"is given twice ({runtime.threads} in runtime={runtime!r}); give it once",
                                  option="threads", value=threads)
            return runtime
        return cls(runtime, DEFAULT_THREADS if threads is None else threads)

    def describe(self) -> str:
        if self.name == "litert":
            return f"LiteRT interpreter, {self.threads} thread{'s' if self.threads != 1 else ''}"
        return f"compiled Keras forward pass ({_backend()})"


def median_ms(call, repeats, warmup):
    """(median, fastest) milliseconds of ``repeats`` calls of ``call`` after ``warmup`` calls."""
    whole("repeats", repeats, 1)
    whole("warmup", warmup, 0)
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


__all__ = ["DEFAULT_THREADS", "RUNTIMES", "Latency", "Runtime", "default_runtime", "median_ms"]
