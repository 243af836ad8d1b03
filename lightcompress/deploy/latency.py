"""Latency measured in the runtime a model is deployed to, for whole models and per layer.

Runtimes:

- ``"litert"``: the model lowered to standard layers, exported to a float ``.tflite`` with Keras's
  own exporter, timed in the LiteRT interpreter (its ``invoke`` on a resident input, a stated
  thread count). Needs TensorFlow.
- ``"litert-int8"``: the same, exported full-int8 (int8 weights and activations, float input and
  output: ``export_model(quantize="int8")``'s settings, ``export.litert_options``), so a plan is timed in
  the precision it is deployed in. The converter needs calibration inputs: random inputs of the
  model's (or the layer's) input shape, ``TIMING_CALIBRATION`` of them, unless real ones are given
  (``calibration=``, where a flow has training images). Timing hardly depends on them: they only
  set each tensor's scale and zero point, and the int8 kernels run the same whatever those are.
- ``"onnxruntime"``: the model lowered, exported to ONNX with Keras's own exporter (as ``export_model(format="onnx")``
  writes it), timed in ONNX Runtime on the CPU (``run_with_ort_values`` on
  resident inputs, ``intra_op_num_threads`` = the thread count). Needs the ``onnx`` extra.
- ``"keras"``: the model's forward pass compiled by its backend (``tf.function``, ``jax.jit``,
  or torch under ``no_grad``) on device-resident inputs, so ``predict_on_batch``'s per-call
  overhead (data adapters, callbacks: 0.5-3 ms on small models) is not counted.

Where a Keras model is timed is a ``timing.Runtime`` (the runtime and its thread count, checked
once when it is made); every function here takes one and trusts it.

Every figure is a ``timing.Latency`` (median, quartiles and the calls it took: at least
``repeats`` after ``warmup``, more until the median is known to ±2%), batch 1 and a larger batch.
Nothing here is derived from a FLOP count.

Per-layer profiles time each candidate layer alone, at its real input shape, as it is and as
each (rank, mode) option on a ladder, in the chosen runtime, all of one layer's variants in turns
(``timing.interleaved``) so they are judged against each other under the same conditions; each
time carries its noise (the notch of its median), and each group holds a control: a second copy
of the layer as it is, so the spread between two identical artefacts (which the notches do not
see: a busy machine, thread scheduling) is measured too and no verdict is given inside it. They are cached on disk like the sensitivity
table, keyed by the layer, the ladder and the runtime.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from .._deferred import deferred
from ..data.synthetic import model_inputs_like
from ..errors import LightCompressError, OptionError
from ..factorization.candidates import call_nodes, candidates
from ..io import cache
from ..planning import LayerFilter
from ..planning.sensitivity import ladder
from . import runtimes
from .export import calibration_images, converter_options, write_artifact
from .lower import lower_model
from .targets import runtime_target
from .timing import (DEFAULT_THREADS, MIN_NOISE, Latency, Runtime, default_runtime, interleaved, timed,
                     whole_model_seconds)

tf = deferred("tensorflow")
jax = deferred("jax")
torch = deferred("torch")

# Fractions of the break-even rank timed per layer (latency is interpolated between them): timing
# an option on LiteRT costs a conversion through Keras's exporter (~1.5 s here), so the ladder is
# coarser than sensitivity's. (The converter called directly on a concrete function is 5x faster
# to convert, but left the weights as variables and ran convolutions ~500x slower: not what a
# deployment runs.)
LATENCY_LADDER = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 1.0)
# Calibration inputs of a "litert-int8" artefact timed: they set scales, not the work done, so a few
# suffice (each is one float call during conversion, and every ladder option is converted).
TIMING_CALIBRATION = 16
PROFILE_VERSION = 4  # 2: interleaved timing, each option with its noise; 3: a control copy per layer;
# 4: the attribute layers of subclassed and keras-hub models (recorded calls) are profiled too


def _inputs(model, batch, seed=0):
    x = model_inputs_like(model, batch=batch, seed=seed)
    return x if isinstance(x, list) else [x]


def keras_timer(model, batch=1, seed=0):
    """A no-argument callable running ``model``'s compiled forward pass on resident inputs."""
    arrays = _inputs(model, batch, seed)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        x = [tf.constant(a) for a in arrays]
        fn = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
        return lambda: keras.tree.map_structure(lambda t: t.numpy(), fn(*x))
    if backend == "jax":
        x = [jax.device_put(a) for a in arrays]
        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]
        fn = jax.jit(lambda tv, ntv, *xs: model.stateless_call(tv, ntv, list(xs) if len(xs) > 1 else xs[0],
                                                              training=False)[0])
        return lambda: jax.block_until_ready(fn(tv, ntv, *x))

    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = [torch.as_tensor(a, device=device) for a in arrays]

    def call():
        with torch.no_grad():
            out = model(x if len(x) > 1 else x[0], training=False)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return call


def artifact(model, folder, runtime: Runtime, name="model", calibration=None):
    """``model`` as the artefact ``runtime`` times (see the module's note): lowered, written into
    ``folder`` through ``export.write_artifact`` (Keras's own exporter, as ``export`` writes it)
    and loaded with ``runtime``'s thread count. ``calibration`` ("litert-int8" only): the model's
    inputs to calibrate on (arrays, as ``export.calibration_images`` takes them); None: random
    inputs of its input shape."""
    target, quantize = runtime_target(runtime.name)
    options = {}
    if quantize != "none":
        arrays = (_inputs(model, TIMING_CALIBRATION) if calibration is None
                  else calibration_images(calibration, TIMING_CALIBRATION))
        options = converter_options(target.name, quantize, calibration_arrays=arrays)
    path = Path(folder) / f"{name}{target.suffix}"
    write_artifact(lower_model(model), path, target.name, options)
    # written just now by Keras's exporter into lightcompress's own folder: trusted, not probed
    return runtimes.load_artifact(path, threads=runtime.threads, trust=True, probe=False)


def litert_artifact(model, folder, threads=DEFAULT_THREADS, name="model"):
    """``model`` lowered, exported as a float ``.tflite`` into ``folder`` and loaded."""
    return artifact(model, folder, Runtime("litert", threads), name)


@contextmanager
def timers(model, runtime: Runtime | None = None, calibration=None):
    """Inside the block, ``timer(batch)``: a no-argument callable running ``model`` on one resident
    batch in ``runtime`` (None: ``Runtime()``). An artefact runtime: the model exported once, to a
    temporary folder removed at the end; one batch size per model at a time (LiteRT resizes).
    ``calibration``: see ``artifact``."""
    runtime = runtime or Runtime()
    if runtime.artifact is None:
        yield lambda batch: keras_timer(model, batch)
        return
    with tempfile.TemporaryDirectory(prefix="lightcompress-latency-") as folder:
        yield artifact(model, folder, runtime, calibration=calibration).timer


def model_latency(model, runtime: Runtime | None = None, batches=(1, 32), repeats=30, warmup=5, calibration=None):
    """[Latency per batch] of ``model`` in ``runtime`` (None: ``Runtime()``, the default);
    ``calibration``: see ``artifact``."""
    with timers(model, runtime, calibration) as timer:
        return [timed(timer(batch), repeats, warmup, batch, min_seconds=whole_model_seconds()) for batch in batches]


# -- per-layer profiles --------------------------------------------------------------------------

@dataclass
class LayerOption:
    rank: int | None  # None: the layer as it is
    mode: str | None
    ms: float  # median, net of the runtime's per-call overhead
    noise_ms: float = 0.0  # half-width of that median's notch, the overhead's included


@dataclass
class LayerLatency:
    """One layer's batch-1 times, net of the runtime's per-call overhead (``overhead_ms``: a
    one-ReLU model at the same input shape), so the layers of a model add up."""

    name: str
    kind: str
    input_shape: list
    options: list  # [LayerOption]; the first is the layer as it is
    overhead_ms: float = 0.0
    control_ms: float | None = None  # a second copy of the layer as it is, timed in the same turns

    @property
    def original_ms(self) -> float:
        return self.options[0].ms

    def ms(self, rank, mode) -> float:
        """Measured, or interpolated linearly between the measured ranks of ``mode``."""
        return self._at(rank, mode, "ms")

    def noise_ms(self, rank, mode) -> float:
        """The noise of ``ms(rank, mode)`` (interpolated like it)."""
        return self._at(rank, mode, "noise_ms")

    def margin_ms(self, rank, mode) -> float:
        """The noise a difference from the layer as it is must pass: both notches added (as
        ``timing.verdict`` judges), at least the gap between the layer and its control copy (two
        identical artefacts), at least ``MIN_NOISE`` of the layer's time with overhead."""
        control = 0.0 if self.control_ms is None else abs(self.control_ms - self.original_ms)
        return max(MIN_NOISE * (self.original_ms + self.overhead_ms), control,
                   self.noise_ms(None, None) + self.noise_ms(rank, mode))

    def slower(self, rank, mode) -> bool:
        """Is this option slower than the layer as it is, beyond ``margin_ms``? A difference
        inside the noise is no difference."""
        return self.ms(rank, mode) > self.original_ms + self.margin_ms(rank, mode)

    def _at(self, rank, mode, field_name):
        if rank is None:
            return getattr(self.options[0], field_name)
        measured = sorted((o.rank, getattr(o, field_name)) for o in self.options[1:] if o.mode == mode)
        if not measured:
            raise OptionError(f"layer '{self.name}' has no latency measured for mode '{mode}'.")
        ranks, values = zip(*measured)
        return float(np.interp(rank, ranks, values))


@dataclass
class Profile:
    runtime: str
    threads: int
    layers: list = field(default_factory=list)  # [LayerLatency]
    model_ms: float = 0.0  # the whole model at batch 1 in the same runtime
    seconds: float = 0.0
    cache_file: str | None = None
    from_cache: bool = False

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        layers = [LayerLatency(**{**ls, "options": [LayerOption(**o) for o in ls["options"]]}) for ls in d.pop("layers")]
        return cls(layers=layers, **d)

    def layer(self, name) -> LayerLatency | None:
        return next((ls for ls in self.layers if ls.name == name), None)


def latency_ladder(limit: int, multiple: int = 1) -> list[int]:
    """The ranks each layer is timed at: the sensitivity ladder's rule on ``LATENCY_LADDER``."""
    return ladder(limit, multiple, LATENCY_LADDER)


def _alone(layer, input_shape):
    """A one-layer model of ``layer`` (cloned from config, weights copied) at ``input_shape``."""
    inputs = keras.Input(tuple(input_shape[1:]), batch_size=None)
    return keras.Model(inputs, layer(inputs))


def _copy(layer):
    new = layer.__class__.from_config(layer.get_config())
    return new, layer.get_weights()


def _layer_timer(model, runtime: Runtime, folder, name):
    if runtime.artifact is None:
        return keras_timer(model, 1)
    return artifact(model, folder, runtime, name).timer(1)


def profile_key(model, layer_filter, runtime: Runtime, multiple) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([PROFILE_VERSION, model.to_json(), runtime.name, runtime.threads, multiple, LATENCY_LADDER,
                         layer_filter.conv_mode, layer_filter.include, layer_filter.exclude,
                         layer_filter.min_params, keras.backend.backend()]).encode())
    return h.hexdigest()[:32]


def default_cache_dir() -> Path:
    return cache.root() / "latency"


def profile(model, layer_filter=None, runtime: Runtime | None = None, multiple=1, repeats=50,
            warmup=10, cache_dir=None, use_cache=True, on_step=None, warn=None) -> Profile:
    """Batch-1 latency of every chosen layer alone, as it is and at each ladder option, in
    ``runtime`` (None: ``Runtime()``; "litert-int8": each one-layer model calibrated on random
    inputs of the layer's input shape); cached (the key holds the architecture and the runtime's
    name, so float and int8 profiles are apart, not the weights: latency does not depend on their
    values)."""
    layer_filter = layer_filter or LayerFilter()
    runtime = runtime or Runtime()
    cache_file = None
    if cache_dir is not None or use_cache:
        folder = cache.check_dir(cache_dir if cache_dir is not None else default_cache_dir())
        cache_file = folder / f"{profile_key(model, layer_filter, runtime, multiple)}.json"
        cached = cache.read(cache_file, Profile.from_dict, "latency profile", warn) if use_cache else None
        if cached is not None:
            cached.from_cache, cached.cache_file = True, str(cache_file)
            return cached
    start = time.perf_counter()
    calls = call_nodes(model)  # a subclassed model's attribute layers too
    chosen, _ = layer_filter.chosen(candidates(model))
    jobs = []  # (candidate, input shape, [(rank, mode)]): "overhead", the layer as it is, the ladder
    for c in chosen:
        nodes = calls.get(id(c.layer), [])
        if not nodes:
            continue
        shape = tuple(nodes[0].input_tensors[0].shape)
        if any(d is None for d in shape[1:]):
            continue
        variants = [("overhead", None), (None, None), ("control", None)]
        for mode in layer_filter.modes(c):
            variants.extend((r, mode) for r in latency_ladder(layer_filter.limit(c, mode), multiple))
        jobs.append((c, shape, variants))
    total = sum(len(v) for _, _, v in jobs)
    result = Profile(runtime.name, runtime.threads, model_ms=model_latency(model, runtime, (1,), repeats, warmup)[0].median_ms)
    done = 0
    with tempfile.TemporaryDirectory(prefix="lightcompress-profile-") as folder:
        for c, shape, variants in jobs:
            timers, timed_variants, untimable = [], [], None
            for rank, mode in variants:
                weights = None
                if rank == "overhead":
                    layer = keras.layers.ReLU()
                elif rank is None or rank == "control":
                    layer, weights = _copy(c.layer)
                else:
                    layer = c.entry.build_twin(c.layer, rank, mode)
                one = _alone(layer, shape)
                if weights is not None:
                    layer.set_weights(weights)
                try:
                    timers.append(_layer_timer(one, runtime, folder, f"l{done}"))
                    timed_variants.append((rank, mode))
                except LightCompressError as err:  # e.g. an int8 file the runtime's delegate refuses
                    if rank in ("overhead", None, "control"):
                        untimable = err
                    elif warn:
                        warn(f"latency profile: {c.name} at rank {rank} ({mode}) does not run in {runtime.name} "
                             f"({str(err).split(': ', 1)[-1]}); that option is left out")
                done += 1
                if on_step:
                    on_step(done, total, c.name)
                if untimable is not None:
                    break
            if untimable is not None:  # the layer itself does not run alone here: untimed, planned as such
                done += len(variants) - len(timed_variants) - 1
                if warn:
                    warn(f"latency profile: {c.name} does not run alone in {runtime.name} "
                         f"({str(untimable).split(': ', 1)[-1]}); it is not timed")
                continue
            overhead, *times = interleaved(timers, repeats, warmup)
            entry = LayerLatency(c.name, c.kind, list(shape[1:]), [], overhead.median_ms)
            for (rank, mode), t in zip(timed_variants[1:], times):
                net = max(t.median_ms - overhead.median_ms, 1e-6)
                if rank == "control":
                    entry.control_ms = net
                    continue
                noise = (t.noise_ms ** 2 + overhead.noise_ms ** 2) ** 0.5
                entry.options.append(LayerOption(rank, mode, net, noise))
            result.layers.append(entry)
    result.seconds = time.perf_counter() - start
    if cache_file is not None:
        cache.write(result.to_dict(), cache_file)
        result.cache_file = str(cache_file)
    return result


__all__ = ["DEFAULT_THREADS", "Latency", "Runtime", "artifact", "default_runtime", "keras_timer",
           "model_latency", "timers", "profile", "Profile", "LayerLatency", "LayerOption", "latency_ladder"]
