"""Run an exported artefact in the runtime a deployment would use, and time it there.

``load_artifact(path)`` picks the export target from the path (``targets.for_path``: its suffix,
or a folder's marks) and loads it with the target's loader. The built-in ones:

- ``.tflite``: the LiteRT interpreter (``ai_edge_litert`` when installed, else ``tf.lite.Interpreter``);
- a folder holding ``saved_model.pb``: ``tf.saved_model.load`` and its ``serve`` endpoint;
- ``.onnx``: ONNX Runtime on the CPU;
- ``.keras`` / ``.h5``: Keras itself.

Files from elsewhere are not trusted: what a target declares ``runs_code`` (a SavedModel's graph
runs when it is loaded and called, and can do anything: write files, start programs) needs
``trust=True``, as a Keras file's Lambda layers do. An ``.onnx`` file needs no trust: ONNX Runtime
runs only the operators built into it
(custom operators come from a library the caller registers, which lightcompress never does). A
``.tflite`` or ``.onnx`` file (a ``native`` target) runs in native code that a damaged file can
crash, taking this process with it: it is first opened and run once in a child process (``probe``),
and a crash there is one line here. Files lightcompress has just written itself skip both (``trust=True, probe=False``).

Every artefact has ``predict(x, batch_size)`` (float32 in, float32 out: int8 inputs are
quantised and int8 outputs dequantised with the tensor's own scale and zero point), ``name``,
``runtime`` (words, with the thread count), and ``latency(batch)``: the median milliseconds of
the runtime's own invoke on one fixed input already in the runtime's memory, so no Python-level
data conversion is inside the timed region. ``predict(x, batch_size=..., verbose=0)`` has the
signature ``evaluation.evaluate`` uses, so an artefact can be evaluated like a Keras model:
``evaluate_artifact`` does that.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import keras
import numpy as np

from .._deferred import available, deferred
from ..data.synthetic import input_specs
from ..errors import LightCompressError, ModelLoadError
from ..io.models import load_model
from ..training import evaluation
from . import targets
from .timing import DEFAULT_THREADS, Latency, timed

tf = deferred("tensorflow")
ort = deferred("onnxruntime")
litert = deferred("ai_edge_litert.interpreter")  # the maintained LiteRT runtime, when installed


def require_onnx(*modules):
    """Import ``modules`` (default: what the onnx target needs) or raise its one clear ExportError."""
    targets.get_target("onnx").require(modules or None)


@contextlib.contextmanager
def held_stderr():
    """Hold back what converters print straight to file descriptor 2; replay it if they fail."""
    if os.environ.get("LIGHTCOMPRESS_TF_LOGS") == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    loggers = [logging.getLogger(n) for n in ("tf2onnx", "absl", "tensorflow")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace")[-4000:])
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def _as_inputs(x):
    """A list of float32 arrays from one array, a list/tuple of them, or a dict (kept as dict)."""
    if isinstance(x, dict):
        return {k: np.asarray(v, np.float32) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [np.asarray(v, np.float32) for v in x]
    return [np.asarray(x, np.float32)]


def _ordered(inputs, names):
    if isinstance(inputs, dict):
        missing = [n for n in names if n not in inputs]
        if missing:
            raise LightCompressError(f"inputs {missing} are missing; the artefact takes {names}.")
        return [inputs[n] for n in names]
    if len(inputs) != len(names):
        raise LightCompressError(f"the artefact takes {len(names)} input(s) ({names}); got {len(inputs)}.")
    return inputs


def _single(outputs):
    return outputs[0] if len(outputs) == 1 else outputs


class Artifact:
    """An exported model loaded in its runtime. Subclasses run one runtime each."""

    format = "?"

    def __init__(self, path):
        self.path = Path(path)
        self.name = self.path.name.rstrip("/") or str(self.path)

    # What subclasses provide.
    input_names: list
    runtime: str

    def _input_shapes(self):
        """Shapes without the batch axis, one per input (None where unknown)."""
        raise NotImplementedError

    def _run(self, arrays):
        """Float32 arrays in the input order, one batch -> list of float32 outputs."""
        raise NotImplementedError

    def _timer(self, arrays):
        """A no-argument callable that runs the runtime's own invoke on ``arrays``, made resident."""
        raise NotImplementedError

    def predict(self, x, batch_size=256, verbose=0):
        """Outputs (float32) for inputs ``x``; several outputs come back as a list."""
        arrays = _ordered(_as_inputs(x), self.input_names)
        n = len(arrays[0])
        if n == 0:
            raise LightCompressError("predict needs at least one example.")
        self._seen_shapes = [tuple(a.shape[1:]) for a in arrays]  # latency's shape where the artefact's is open
        chunks = []
        for start in range(0, n, max(1, int(batch_size))):
            chunks.append(self._run([a[start:start + batch_size] for a in arrays]))
        outputs = [np.concatenate([c[i] for c in chunks]) for i in range(len(chunks[0]))]
        return _single(outputs)

    def sample_inputs(self, batch=1, seed=0):
        rng = np.random.default_rng(seed)
        arrays = []
        seen = getattr(self, "_seen_shapes", None) or [None] * len(self.input_names)
        for name, shape, last in zip(self.input_names, self._input_shapes(), seen):
            if (shape is None or any(d is None for d in shape)) and last is not None and len(last) == len(shape or ()):
                shape = last  # an open size (a sequence length): the one predict last ran
            if shape is None or any(d is None for d in shape):
                raise LightCompressError(
                    f"input '{name}' of {self.name} has an unknown size {shape}; latency needs fixed shapes."
                )
            arrays.append(rng.random((batch, *shape), dtype=np.float32))
        return arrays

    def timer(self, batch=1, seed=0):
        """A no-argument callable: the runtime's own invoke on one resident random batch of
        ``batch`` (one timer per artefact at a time: LiteRT resizes its input for it)."""
        if batch < 1:
            raise LightCompressError(f"latency needs batch >= 1; got batch={batch}.")
        return self._timer(self.sample_inputs(batch, seed))

    def latency(self, batch=1, repeats=100, warmup=10, seed=0) -> Latency:
        """Latency of the runtime's own invoke on one resident random batch of ``batch`` (see
        ``timing.timed``)."""
        return timed(self.timer(batch, seed), repeats, warmup, batch)


# -- LiteRT ----------------------------------------------------------------------------------

def _litert_interpreter(path, threads):
    if available("ai_edge_litert"):
        return litert.Interpreter(model_path=str(path), num_threads=threads), "ai_edge_litert"
    else:
        with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": it is what TF ships
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_path=str(path), num_threads=threads), "tf.lite"


def _quantize(x, detail):
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype, copy=False)
    scale, zero = detail["quantization"]
    if not scale:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _dequantize(y, detail):
    if np.issubdtype(y.dtype, np.floating):
        return y.astype(np.float32, copy=False)
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32) if scale else y.astype(np.float32)


class LiteRTArtifact(Artifact):
    format = "litert"

    def __init__(self, path, threads=DEFAULT_THREADS):
        super().__init__(path)
        self.threads = threads
        with held_stderr():  # "Created TensorFlow Lite XNNPACK delegate for CPU."
            self.interpreter, source = _litert_interpreter(path, threads)
            self.interpreter.allocate_tensors()
        signatures = self.interpreter.get_signature_list()
        all_in = {d["index"]: d for d in self.interpreter.get_input_details()}
        all_out = {d["index"]: d for d in self.interpreter.get_output_details()}
        if signatures:  # Keras's exporter names inputs after the model's and outputs output_<i>
            key = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
            runner = self.interpreter.get_signature_runner(key)
            inputs, outputs = runner.get_input_details(), runner.get_output_details()
            self.input_names = list(signatures[key]["inputs"])
            self._inputs = [all_in[inputs[n]["index"]] for n in self.input_names]
            out_names = sorted(signatures[key]["outputs"], key=_output_order)
            self._outputs = [all_out[outputs[n]["index"]] for n in out_names]
        else:
            self._inputs, self._outputs = list(all_in.values()), list(all_out.values())
            self.input_names = [d["name"] for d in self._inputs]
        self._batch = None
        dtypes = sorted({np.dtype(d["dtype"]).name for d in self._inputs + self._outputs})
        self.runtime = f"LiteRT interpreter ({source}), {threads} thread{'s' if threads != 1 else ''}"
        self.io_types = dtypes

    def _input_shapes(self):
        return [tuple(int(d) if d >= 0 else None for d in detail["shape_signature"][1:])
                for detail in self._inputs]

    def _resize(self, arrays):
        """Size the inputs for ``arrays``: the batch, and any size the signature leaves open
        (-1, a sequence length) from the arrays themselves."""
        shapes = [[len(x), *[int(s) if d < 0 else int(d) for d, s in zip(detail["shape_signature"][1:], x.shape[1:])]]
                  for detail, x in zip(self._inputs, arrays)]
        if self._batch == shapes:
            return
        for detail, shape in zip(self._inputs, shapes):
            self.interpreter.resize_tensor_input(detail["index"], shape)
        self.interpreter.allocate_tensors()
        self._batch = shapes

    def _run(self, arrays):
        self._resize(arrays)
        for detail, x in zip(self._inputs, arrays):
            self.interpreter.set_tensor(detail["index"], _quantize(x, detail))
        self.interpreter.invoke()
        return [_dequantize(self.interpreter.get_tensor(d["index"]), d) for d in self._outputs]

    def _timer(self, arrays):
        self._resize(arrays)
        for detail, x in zip(self._inputs, arrays):
            self.interpreter.set_tensor(detail["index"], _quantize(x, detail))
        return self.interpreter.invoke


def _output_order(name):
    """'output_10' after 'output_2': Keras names a model's outputs output_0, output_1, ..."""
    head, _, tail = name.rpartition("_")
    return (head, int(tail)) if tail.isdigit() else (name, -1)


# -- TensorFlow SavedModel -------------------------------------------------------------------

def _tf_threads():
    n = tf.config.threading.get_intra_op_parallelism_threads()
    return n or os.cpu_count(), bool(n)


class SavedModelArtifact(Artifact):
    format = "tf_saved_model"

    def __init__(self, path):
        super().__init__(path)
        self._tf = tf
        self.loaded = tf.saved_model.load(str(path))
        if hasattr(self.loaded, "serve"):
            self._fn = self.loaded.serve
        else:
            self._fn = self.loaded.signatures["serving_default"]
        signature = self.loaded.signatures["serving_default"]
        specs = signature.structured_input_signature[1]
        self.input_names = list(specs)
        self._specs = [specs[n] for n in self.input_names]
        self._outputs = sorted(signature.structured_outputs, key=_output_order)
        self._signature = signature
        n, fixed = _tf_threads()
        self.threads = n
        self.runtime = (f"TensorFlow {tf.__version__} SavedModel 'serve', "
                        f"{n} intra-op threads{'' if fixed else ' (TensorFlow default: all cores)'}")

    def _input_shapes(self):
        return [tuple(spec.shape)[1:] for spec in self._specs]

    def _call(self, tensors):
        if hasattr(self.loaded, "serve"):
            signature = getattr(self._fn, "input_signature", None) or ()
            if signature and isinstance(signature[0], dict):  # a model taking a dict (keras-hub)
                return self._fn(dict(zip(self.input_names, tensors)))
            return self._fn(tensors[0] if len(tensors) == 1 else list(tensors))
        return self._fn(**dict(zip(self.input_names, tensors)))

    def _constants(self, arrays):
        """Tensors of each input's own dtype (token ids arrive as float32 and go in as ints)."""
        return [self._tf.constant(np.asarray(a).astype(spec.dtype.as_numpy_dtype, copy=False))
                for a, spec in zip(arrays, self._specs)]

    def _run(self, arrays):
        y = self._call(self._constants(arrays))
        if isinstance(y, dict):
            y = [y[k] for k in self._outputs]
        elif not isinstance(y, (list, tuple)):
            y = [y]
        return [np.asarray(t, np.float32) for t in y]

    def _timer(self, arrays):
        tensors = self._constants(arrays)
        return lambda: self._call(tensors)


# -- ONNX Runtime ----------------------------------------------------------------------------

class OnnxArtifact(Artifact):
    format = "onnx"

    def __init__(self, path, threads=DEFAULT_THREADS):
        require_onnx("onnxruntime")

        super().__init__(path)
        self._ort = ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = self.session.get_inputs()
        self.input_names = [i.name for i in self._inputs]
        self._output_names = [o.name for o in self.session.get_outputs()]
        self.threads = threads
        self.runtime = f"ONNX Runtime {ort.__version__} (CPU), {threads} intra-op thread{'s' if threads != 1 else ''}"

    def _input_shapes(self):
        return [tuple(d if isinstance(d, int) else None for d in i.shape[1:]) for i in self._inputs]

    def _run(self, arrays):
        feed = dict(zip(self.input_names, arrays))
        return [np.asarray(y, np.float32) for y in self.session.run(self._output_names, feed)]

    def _timer(self, arrays):
        feed = {n: self._ort.OrtValue.ortvalue_from_numpy(a) for n, a in zip(self.input_names, arrays)}
        return lambda: self.session.run_with_ort_values(self._output_names, feed)


# -- Keras -----------------------------------------------------------------------------------

class KerasArtifact(Artifact):
    format = "keras"

    def __init__(self, path, trust=False, model=None):
        super().__init__(path)
        if model is None:
            model = load_model(path, trust=trust)

        self.model = model
        self.inputs = input_specs(model)  # a subclassed model's: as it was built
        self.input_names = [t.name for t in self.inputs]
        backend = keras.backend.backend()
        threads = ""
        if backend == "tensorflow":
            n, fixed = _tf_threads()
            threads = f", {n} intra-op threads{'' if fixed else ' (TensorFlow default: all cores)'}"
        self.runtime = f"Keras {keras.__version__} ({backend}), compiled call{threads}"

    def _input_shapes(self):
        return [tuple(t.shape)[1:] for t in self.inputs]

    def _run(self, arrays):
        y = self.model.predict(arrays[0] if len(arrays) == 1 else arrays, verbose=0,
                               batch_size=len(arrays[0]))
        return [np.asarray(a, np.float32) for a in (y if isinstance(y, (list, tuple)) else [y])]

    def _timer(self, arrays):
        model = self.model
        if keras.backend.backend() == "tensorflow":
            tensors = [tf.constant(a) for a in arrays]
            fn = tf.function(lambda *t: model(t[0] if len(t) == 1 else list(t), training=False))
            return lambda: fn(*tensors)
        x = arrays[0] if len(arrays) == 1 else arrays
        return lambda: model.predict_on_batch(x)


# -- loading ---------------------------------------------------------------------------------

def artifact_format(path) -> str:
    """The name of the export target ``path`` holds ('litert', 'tf_saved_model', 'onnx', 'keras',
    ...: ``targets.for_path``); an error for anything else."""
    path = Path(path)
    if not path.exists():
        raise LightCompressError(f"{path}: no such file or folder; check the path.")
    target = targets.for_path(path)
    if target is not None:
        return target.name
    folders = [t for t in targets.targets() if t.is_folder]
    if path.is_dir():
        raise LightCompressError(f"{path} is a folder without {targets.either([t.folder_marks[0] for t in folders])}; "
                                 f"give a {targets.either([t.title for t in folders])} folder.")
    files = targets.either([suffix for t in targets.targets() for suffix in t.reads])
    raise LightCompressError(f"{path}: unknown artefact '{path.suffix.lower()}'; give a {files} file"
                             + (f", or a {targets.either([t.title for t in folders])} folder." if folders else "."))


def load_artifact(path, threads=DEFAULT_THREADS, trust=False, probe=True) -> Artifact:
    """Load an artefact in its runtime (see the module docstring). ``threads``: LiteRT and ONNX.
    ``trust``: allow what runs code when loaded (a SavedModel's graph, a Keras file's Lambda
    layers). ``probe``: open and run a .tflite/.onnx file once in a child process first, so that a
    damaged file crashes the child, not this process (False: a file lightcompress has just written)."""
    target = targets.get_target(artifact_format(path))
    if target.runs_code and not trust:
        raise ModelLoadError(f"{path} is {target.runs_code}; pass trust=True if you trust this file.")
    if probe and target.native:
        probe_file(path, target.name)
    try:
        return target.loader(path, threads, trust)
    except LightCompressError:
        raise
    except Exception as err:  # noqa: BLE001 - each runtime raises its own types; one line
        raise ModelLoadError(f"{path} could not be loaded as {target.name}: {_first_line(err)}") from None


def _first_line(err):
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


# -- the probe: a native runtime's crash in a child, not in this process ----------------------

PROBE_SECONDS = 120.0  # one child's time to import its runtime, open the file and run it once
_PROBE_MARK = "lightcompress-probe: "
_PROBED = set()  # (path, size, mtime) of the files that passed in this process
_PROBE_CHILD = r"""
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
from lightcompress.deploy import runtimes, targets
path, fmt = sys.argv[1], sys.argv[2]
opened = False
try:
    artifact = targets.get_target(fmt).loader(path, 1, False)
    opened = True
    shapes = [tuple(1 if d is None else d for d in shape) for shape in artifact._input_shapes()]
    artifact.predict([np.zeros((1, *shape), np.float32) for shape in shapes], batch_size=1)
except Exception as err:
    print(runtimes._PROBE_MARK + runtimes._probe_failure(path, fmt, opened, err), flush=True)
    sys.exit(1)
"""


def _probe_failure(path, fmt, opened, err):
    """The one line for a file its runtime refused (in the child, as a Python error)."""
    target = targets.get_target(fmt)
    runtime, suffix = target.native, target.suffix
    if not opened:
        return (f"{path} could not be loaded as {fmt}: {_first_line(err)}; the file is damaged or not a {suffix} "
                f"file: export it again.")
    return (f"{path} is not a usable {suffix} file: {runtime} failed to run it once on zeros of its input shapes "
            f"({_first_line(err)}); the file is damaged: export it again.")


def _probe_seconds():
    try:
        seconds = float(os.environ.get("LIGHTCOMPRESS_PROBE_SECONDS", PROBE_SECONDS))
    except ValueError:
        return PROBE_SECONDS
    return seconds if seconds > 0 else PROBE_SECONDS


def probe_file(path, fmt=None):
    """Open ``path`` (a ``native`` target's: .tflite, or .onnx where ONNX Runtime is installed) and run
    it once on zeros of its input shapes (resized as the artefact itself resizes) in a quiet child
    process, time-bounded; a crash, a failure or a hang there is one ModelLoadError here. One child
    per file and process."""
    target = targets.get_target(fmt or artifact_format(path))
    if not target.native or target.missing_modules(target.loader_needs):
        return  # no native runtime to crash (without onnxruntime, loading says what to install)
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _PROBED:
        return
    fmt, runtime, suffix = target.name, target.native, target.suffix
    seconds = _probe_seconds()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    root = str(Path(__file__).resolve().parents[2])  # the folder holding the lightcompress package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    try:
        child = subprocess.run([sys.executable, "-c", _PROBE_CHILD, str(path), fmt], env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=seconds)
    except subprocess.TimeoutExpired:
        raise ModelLoadError(
            f"{path} could not be checked: {runtime} did not open and run it once within {seconds:g} s; if the "
            f"model is that large or the machine that busy, allow longer with LIGHTCOMPRESS_PROBE_SECONDS=600."
        ) from None
    if child.returncode < 0:
        number = -child.returncode
        if number == signal.SIGINT:
            raise KeyboardInterrupt
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        raise ModelLoadError(f"{path} is not a usable {suffix} file: {runtime} crashed on it ({name}); "
                             f"the file is damaged: export it again.")
    if child.returncode != 0:
        said = [line[len(_PROBE_MARK):] for line in child.stdout.decode(errors="replace").splitlines()
                if line.startswith(_PROBE_MARK)]
        raise ModelLoadError(said[-1] if said else
                             f"{path} is not a usable {suffix} file: the process that opened it in {runtime} "
                             f"exited with status {child.returncode}; the file is damaged: export it again.")
    _PROBED.add(key)


def is_artifact_path(path) -> bool:
    """True for what only ``load_artifact`` opens (.tflite, .onnx, SavedModel folders): a folder, or a
    file of a target that is not a Keras model file."""
    path = Path(path)
    target = None if path.is_dir() else targets.for_path(path)
    return path.is_dir() or (target is not None and not target.keras_model)


def evaluate_artifact(artifact, prepared, kind=None, batch_size=256, trust=False):
    """``evaluation.evaluate`` on an artefact (a path or a loaded Artifact): the same Evaluation.
    ``trust``: see ``load_artifact``."""
    if not isinstance(artifact, Artifact):
        artifact = load_artifact(artifact, trust=trust)
    return evaluation.evaluate(artifact, prepared, kind, batch_size)


def path_bytes(path) -> int:
    """A file's size, or the total size of the files in a folder (a SavedModel)."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
