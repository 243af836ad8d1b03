"""What every timing in deploy shares: the runtimes a Keras model can be timed in, the thread
default, ``Runtime`` (a runtime and its thread count, checked once when made), timing of repeated
calls with their spread, and the verdict on two timings. Nearly a leaf: of ``deploy`` it imports
only the registry of export targets (``targets``: the runtime names are theirs), and nothing
heavy, so the command line reads it before Keras is loaded.

How a timing is taken (``interleaved``): the callables compared are called in turns, rounds of
one untimed call then ``CHUNK`` timed calls each, so drift of the machine (clock, cache, other
load) falls on all of them alike; rounds go on until every median is known to ``precision``
(its notch, ``NOTCH``·IQR/√n, as a fraction of it) or the time budget is spent. Whole models are
timed for ``WHOLE_MODEL_SECONDS`` at least, cut into blocks of ``BLOCK_SECONDS``: their median is
that of the calls in the quietest third of the blocks, the same blocks for all the callables timed
together (``quiet_blocks``), and the spread of all the blocks' medians (the machine's slower drift,
which the notch of single calls does not see) widens the notch. A verdict
(``verdict``) is "faster" or "slower" only when two medians differ by more than their combined
notch, i.e. when their notches do not overlap (never less than
``MIN_NOISE``); otherwise "same within noise (±x%)".

>>> a = Latency.from_samples(1, [1.00, 1.01, 0.99, 1.02, 0.98] * 8, warmup=0)
>>> verdict(a, Latency.from_samples(1, [1.005, 1.0, 0.995, 1.015, 0.985] * 8, warmup=0)).word
'same within noise'
>>> verdict(a, Latency.from_samples(1, [0.50, 0.51, 0.49, 0.52, 0.48] * 8, warmup=0)).text()
'0.5x, faster'

>>> Runtime("keras", threads=4).threads
4
>>> Runtime("tpu")
Traceback (most recent call last):
lightcompress.errors.OptionError: runtime='tpu' is unknown; use one of keras, litert, litert-int8, onnxruntime.
"""

from __future__ import annotations

import importlib
import math
import os
import statistics
import time
from dataclasses import dataclass, fields

from .._deferred import deferred
from ..errors import OptionError
from ..validation import INT_MAX, number, whole
from .targets import runtime_names, runtime_target

keras = deferred("keras")  # the command line reads this module before Keras starts

# Where a Keras model is timed (exported artefacts: their own runtime): "keras", then the runtime
# names of the export targets (``targets.runtime_names``). Each but "keras" times the model as the
# artefact a deployment runs: (export format, quantisation) written through export.write_artifact,
# then loaded by runtimes.load_artifact. RUNTIMES and ARTIFACTS are read from the registry each
# time (``__getattr__``), so a target registered later is there too.
ONNX_MODULES = ("onnx", "tf2onnx", "onnxruntime")  # the `onnx` extra: Keras's exporter, and its runtime
ONNX_INSTALL = 'pip install "lightcompress[onnx]"'
DEFAULT_THREADS = 2  # the interpreter's thread count: 2 = this project's reference machine


def __getattr__(name):
    if name == "RUNTIMES":
        return runtime_names()
    if name == "ARTIFACTS":  # runtime name -> (export format, quantisation)
        return {runtime: (target.name, quantize) for runtime in runtime_names()[1:]
                for target, quantize in [runtime_target(runtime)]}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def whole_model_seconds() -> float:
    """``WHOLE_MODEL_SECONDS``, or the seconds LIGHTCOMPRESS_TIMING_SECONDS gives; a value that is
    not a finite number >= 0 is refused with one line naming the variable."""
    name = "LIGHTCOMPRESS_TIMING_SECONDS"
    text = os.environ.get(name)
    if text is None:
        return WHOLE_MODEL_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise OptionError("is not a number of seconds >= 0 (an environment variable)", option=name, value=text,
                          allowed="e.g. 6, or 0 to stop on the notches alone")
    return value


# The notch of a median, median ± NOTCH·IQR/√n: about a 95% interval for it (McGill, Tukey and
# Larsen 1978, the notches of box plots).
NOTCH = 1.57
# No verdict on a difference below 1%: the resolution claimed for any timing here, however many
# calls were made (measured: interleaved medians of the same LiteRT model agree to ~0.5-1%).
MIN_NOISE = 0.01
PRECISION = 0.02  # stop timing once every median's notch is within ±2% of it ...
MAX_SECONDS = 3.0  # ... or once the rounds have taken this long (at least `repeats` calls each)
# Whole models compared (compare, compress's report, the latency check) are timed for at least
# this long per batch size, whatever the notches say: the notch covers the noise between calls,
# not the slower drift of a shared machine. Measured on the 2-core reference box (LiteRT, 2
# threads, 40-60 us models at batch 1, benchmarks/timing_windows.py): episodes of 0.5-4 s in which
# most calls of both models are slower and their ratio moves by 20-30%. One covered 8 of 12
# blocks, and the median of all the blocks' medians missed by 31%; the median of the calls in the
# quietest third of the blocks (the same blocks for every model) stayed within 6.5% over 229
# windows of 12 blocks. Some states last 10-50 s and slow even the fastest 1% of calls: no
# summary of a 6-s timing rejects those, and ratios taken in one differ by up to 28%.
# LIGHTCOMPRESS_TIMING_SECONDS=S sets the seconds (0: stop on the notches alone, as the test suite
# does); read when a timing starts (``whole_model_seconds``).
WHOLE_MODEL_SECONDS = 6.0
BLOCK_SECONDS = 0.5  # ... in blocks of rounds this long; the spread of the blocks' medians is in the notch
QUIET_SHARE = 3  # ... of which the quietest third gives the median (``quiet_blocks``)
CHUNK = 5  # timed calls per callable per round, after one untimed call
# A slow model (a 2.9M-param audio CNN at batch 32: 554 s of compare) stops short of ``repeats``
# once the rounds have taken LONG_SECONDS and each callable has MIN_REPEATS calls: the result
# carries its count of calls, which the reports print beside each median.
LONG_SECONDS = 60.0
MIN_REPEATS = CHUNK


@dataclass
class Latency:
    """Milliseconds of ``repeats`` timed calls at ``batch``: median, quartiles, fastest."""

    batch: int
    median_ms: float
    min_ms: float
    repeats: int  # calls timed
    warmup: int
    q1_ms: float | None = None
    q3_ms: float | None = None
    drift_ms: float = 0.0  # half-width of the notch of the block medians (0: timed in one block)
    blocks: int = 1
    quiet_blocks: int = 0  # the median, quartiles and fastest call are of the calls in this many blocks (0: all)

    @classmethod
    def from_dict(cls, d) -> Latency:
        """A Latency from its dict in a report (which may carry more, such as its verdict)."""
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    @classmethod
    def from_samples(cls, batch, samples_ms, warmup, blocks=(), keep=None) -> Latency:
        """From the timed calls' milliseconds; ``blocks``: where they are cut into blocks of time
        (the sample counts at which each block after the first starts). With 3 blocks or more the
        median, quartiles and fastest call are those of the calls in the blocks ``keep`` (indices;
        None: the quietest third of these blocks, ``quiet_blocks``), and the spread of all the
        blocks' medians is the drift."""
        samples_ms = [float(v) for v in samples_ms]
        parts = _blocks(samples_ms, blocks)
        if len(parts) < 3:
            q1, median, q3 = _quartiles(samples_ms)
            return cls(batch, median, float(min(samples_ms)), len(samples_ms), warmup, q1, q3)
        medians = [statistics.median(part) for part in parts]
        keep = quiet_blocks([medians]) if keep is None else sorted(keep)
        kept = [v for i in keep for v in parts[i]]
        q1, median, q3 = _quartiles(kept)
        b1, _, b3 = _quartiles(medians)
        return cls(batch, median, float(min(kept)), len(samples_ms), warmup, q1, q3,
                   NOTCH * (b3 - b1) / math.sqrt(len(medians)), len(medians), len(keep))

    @property
    def iqr_ms(self) -> float:
        return 0.0 if self.q1_ms is None else self.q3_ms - self.q1_ms

    @property
    def noise_ms(self) -> float:
        """Half-width of the median's notch (ms): of the calls, or of the blocks where wider."""
        return max(NOTCH * self.iqr_ms / math.sqrt(max(self.repeats, 1)), self.drift_ms)

    @property
    def noise(self) -> float:
        """The notch as a fraction of the median."""
        return self.noise_ms / self.median_ms if self.median_ms > 0 else 0.0

    def describe(self) -> str:
        blocks = f" in {self.blocks} blocks (median of the quietest {self.quiet_blocks})" if self.blocks > 1 else ""
        return f"median {self.median_ms:.4g} ms, IQR {self.iqr_ms:.2g} ms, {self.repeats} calls{blocks}"


def _blocks(samples, cuts):
    """``samples`` cut at the sample counts ``cuts`` (empty blocks dropped)."""
    edges = [0, *[c for c in cuts if 0 < c < len(samples)], len(samples)]
    return [samples[a:b] for a, b in zip(edges, edges[1:]) if b > a]


def quiet_blocks(block_medians) -> list[int]:
    """Indices of the quietest third of the blocks (at least 3) of callables timed together:
    ``block_medians``, one list per callable of its blocks' medians. A block's noise is the sum,
    over the callables, of its median as a multiple of that callable's fastest block: a shared
    machine only ever adds time, and it adds it to blocks, not to one callable alone."""
    n = len(block_medians[0])
    score = [sum(m[i] / min(m) for m in block_medians) for i in range(n)]
    return sorted(sorted(range(n), key=score.__getitem__)[:max(3, round(n / QUIET_SHARE))])


def _quartiles(values):
    return statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3


@dataclass(frozen=True)
class Verdict:
    """``new`` against ``base``: their ratio, the noise of that ratio (a fraction) and the word."""

    ratio: float
    noise: float
    word: str  # "faster", "slower" or "same within noise"

    def text(self) -> str:
        if self.word == "same within noise":
            return f"{self.ratio:.3g}x, same within noise (±{self.noise * 100:.0f}%)"
        return f"{self.ratio:.3g}x, {self.word}"


def combined_noise(*latencies: Latency) -> float:
    """The relative noise of a ratio of these medians: their notches added (two medians differ
    when their notches do not overlap, McGill et al.), never below ``MIN_NOISE``."""
    return max(MIN_NOISE, sum(lat.noise for lat in latencies))


def verdict(base: Latency, new: Latency) -> Verdict:
    """Is ``new`` faster or slower than ``base``, beyond the noise of both?"""
    ratio = new.median_ms / base.median_ms if base.median_ms > 0 else math.inf
    noise = combined_noise(base, new)
    word = "same within noise" if abs(ratio - 1) <= noise else ("faster" if ratio < 1 else "slower")
    return Verdict(ratio, noise, word)


def _backend() -> str:
    return keras.backend.backend()


BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch", "numpy": "NumPy"}


def missing_modules(names=ONNX_MODULES) -> list[str]:
    """The ``names`` that cannot be imported here."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def default_runtime() -> str:
    """LiteRT where TensorFlow is the backend (what a deployment runs), else the backend itself."""
    return "litert" if _backend() == "tensorflow" else "keras"


@dataclass(frozen=True)
class Runtime:
    """Where Keras models are timed: ``name`` and ``threads`` (the LiteRT interpreter's and ONNX
    Runtime's intra-op thread count). Checked once, here (the name, that its packages are
    installed, the thread count); every stage that times takes one and trusts it.

    - "litert": lowered, exported as a float ``.tflite``, run in the LiteRT interpreter;
    - "litert-int8": the same, quantised to full int8 (weights and activations, float input and
      output) as ``export_model(quantize="int8")`` writes it: plan in the precision you deploy;
    - "onnxruntime": lowered, exported to ONNX by Keras's exporter, run in ONNX Runtime on the CPU
      (needs the ``onnx`` extra);
    - "keras": the model's compiled forward pass on this backend;
    - None: ``default_runtime()``.
    """

    name: str | None = None
    threads: int = DEFAULT_THREADS

    def __post_init__(self):
        name = self.name or default_runtime()
        found = runtime_target(name)
        if found is None and name != "keras":
            raise OptionError("is unknown", option="runtime", value=name,
                              allowed=f"one of {', '.join(runtime_names())}")
        target = found[0] if found else None
        if target is not None and target.backend and _backend() != target.backend:
            raise OptionError(f"needs {BACKEND_NAMES.get(target.backend, target.backend)}; this process runs Keras "
                              f"on {_backend()}", option="runtime", value=name, allowed="runtime='keras'")
        missing = target.missing_modules() if target is not None else []
        if missing:
            raise OptionError(f"needs the {', '.join(missing)} package(s), not installed here",
                              option="runtime", value=name, allowed=f"{target.install}, or runtime='litert'")
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

    @property
    def artifact(self) -> tuple[str, str] | None:
        """(export format, quantisation) of the artefact the model is timed as; None for "keras"."""
        found = runtime_target(self.name)
        return None if found is None else (found[0].name, found[1])

    def describe(self) -> str:
        found = runtime_target(self.name)
        if found is None:
            return f"compiled Keras forward pass ({_backend()})"
        target, quantize = found
        return target.runtime_words.format(model="" if quantize == "none" else f", full-{quantize} model",
                                           threads=self.threads, s="s" if self.threads != 1 else "")


def interleaved(calls, repeats=30, warmup=5, batch=1, precision=PRECISION, max_seconds=MAX_SECONDS,
                min_seconds=0.0) -> list[Latency]:
    """[Latency] of each no-argument callable in ``calls``, timed in turns (see the module's
    note): at least ``repeats`` calls each after ``warmup`` untimed ones and ``min_seconds`` of
    rounds, more while a median's notch is wider than ``precision`` of it and ``max_seconds``
    (never less than ``min_seconds``) have not passed; fewer than ``repeats`` (``MIN_REPEATS`` at
    the least) where the rounds pass ``LONG_SECONDS`` and ``min_seconds``. ``batch`` only labels
    the result."""
    whole("repeats", repeats, 1)
    whole("warmup", warmup, 0)
    calls = list(calls)
    for call in calls:
        for _ in range(warmup):
            call()
    samples = [[] for _ in calls]
    max_seconds = max(max_seconds, min_seconds)
    cuts = []  # sample counts where each block of BLOCK_SECONDS after the first starts (min_seconds only)
    start = block = time.perf_counter()
    while True:
        for call, times in zip(calls, samples):
            call()  # untimed: the callable's data back in cache after the others ran
            for _ in range(CHUNK if len(times) >= repeats else min(CHUNK, repeats - len(times))):
                t0 = time.perf_counter()
                call()
                times.append((time.perf_counter() - t0) * 1000)
        now = time.perf_counter()
        if min_seconds and now - block >= BLOCK_SECONDS:
            cuts.append(len(samples[0]))
            block = now
        long = now - start > max(LONG_SECONDS, min_seconds) and len(samples[0]) >= MIN_REPEATS
        if (len(samples[0]) < repeats or now - start < min_seconds) and not long:
            continue
        timed = _latencies(batch, samples, warmup, cuts)
        if all(t.noise <= precision for t in timed) or time.perf_counter() - start > max_seconds:
            return timed


def _latencies(batch, samples, warmup, cuts) -> list[Latency]:
    """A Latency per callable's samples, all of them from the same quiet blocks (``quiet_blocks``)."""
    parts = [_blocks(times, cuts) for times in samples]
    keep = None
    if all(len(p) >= 3 and len(p) == len(parts[0]) for p in parts):
        keep = quiet_blocks([[statistics.median(b) for b in p] for p in parts])
    return [Latency.from_samples(batch, times, warmup, cuts, keep) for times in samples]


def timed(call, repeats=30, warmup=5, batch=1, precision=PRECISION, max_seconds=MAX_SECONDS,
          min_seconds=0.0) -> Latency:
    """``interleaved`` for one callable."""
    return interleaved([call], repeats, warmup, batch, precision, max_seconds, min_seconds)[0]


__all__ = ["ARTIFACTS", "DEFAULT_THREADS", "MIN_NOISE", "NOTCH", "ONNX_INSTALL", "ONNX_MODULES", "RUNTIMES", "WHOLE_MODEL_SECONDS", "BLOCK_SECONDS", "whole_model_seconds", "Latency", "Runtime", "Verdict", "combined_noise",
           "default_runtime", "interleaved", "missing_modules", "timed", "verdict"]
