"""The built-in export targets, registered in this order: keras, tf_saved_model, litert, onnx.

Every one writes the lowered model (LightLayers replaced by the standard layers they compute)
with Keras's own ``save`` or exporter, and loads in its own runtime (``runtimes``). Imported by
``lightcompress.deploy`` before any of its modules, so the registry is whole wherever it is read.
The writers and loaders reach their runtimes through deferred modules (``_deferred``): registering
costs no Keras, TensorFlow or NumPy import (the command line reads the choices before any of them
is loaded).
"""

from __future__ import annotations

from .._deferred import deferred
from .targets import ExportTarget, register_target
from .timing import ONNX_INSTALL, ONNX_MODULES

np = deferred("numpy")
models = deferred("lightcompress.io.models")
runtimes = deferred("lightcompress.deploy.runtimes")
export = deferred("lightcompress.deploy.export")

TENSORFLOW = dict(needs=("tensorflow",), install="pip install tensorflow",
                  missing="format={format} needs TensorFlow, which is not installed here; install it ({install}) "
                          "or use format=keras.")


def keras_exporter(fmt):
    """A writer calling ``lowered.export(path, format=fmt, **options)``."""

    def write(lowered, path, options):
        lowered.export(str(path), format=fmt, verbose=False, **options)

    return write


# -- keras -----------------------------------------------------------------------------------

def write_keras(lowered, path, options):
    model = models.plain_copy(lowered) if getattr(lowered, "optimizer", None) is not None else lowered
    model.save(path)


def load_keras(path, threads, trust):
    return runtimes.KerasArtifact(path, trust=trust)


KERAS = register_target(ExportTarget(
    name="keras", suffix=".keras", read_suffixes=(".h5", ".hdf5"), writer=write_keras, loader=load_keras,
    summary="lowered .keras", keras_model=True, output_name=lambda stem, quantize: f"{stem}.lowered.keras",
))


# -- TensorFlow SavedModel -------------------------------------------------------------------

def load_saved_model(path, threads, trust):
    return runtimes.SavedModelArtifact(path)


SAVED_MODEL = register_target(ExportTarget(
    name="tf_saved_model", choice="saved_model", suffix="", writer=keras_exporter("tf_saved_model"),
    loader=load_saved_model, folder_marks=("saved_model.pb", "saved_model.pbtxt"), title="SavedModel",
    summary="folder", **TENSORFLOW,
    runs_code="a TensorFlow SavedModel: loading it runs the graph it holds, which can do anything (write files, "
              "start programs)",
    # a folder name without a suffix: m.light.keras -> m_light_saved_model
    output_name=lambda stem, quantize: f"{stem.replace('.', '_')}_saved_model",
))


# -- LiteRT ----------------------------------------------------------------------------------

def litert_options(quantize, int8_io, calibration_arrays):
    return export.litert_options(quantize, int8_io, calibration_arrays)


def load_litert(path, threads, trust):
    return runtimes.LiteRTArtifact(path, threads)


LITERT = register_target(ExportTarget(
    name="litert", aliases=("tflite",), suffix=".tflite", writer=keras_exporter("litert"), loader=load_litert,
    quantizations=("none", "float16", "dynamic", "int8"), converter_options=litert_options,
    quantize_help="float16 weights, dynamic (int8 weights), or int8 (calibrated)", **TENSORFLOW,
    backend="tensorflow", native="the LiteRT interpreter",
    runtime="litert", timed=("none", "int8"), runtime_words="LiteRT interpreter{model}, {threads} thread{s}",
))


# -- ONNX ------------------------------------------------------------------------------------

def write_onnx(lowered, path, options):
    """Keras's ONNX exporter refuses a model that was never called; a clone never was."""
    shapes = [tuple(t.shape)[1:] for t in lowered.inputs]
    if all(d is not None for shape in shapes for d in shape):
        x = [np.zeros((1, *shape), np.float32) for shape in shapes]
        lowered(x[0] if len(x) == 1 else x, training=False)
    keras_exporter("onnx")(lowered, path, options)


def load_onnx(path, threads, trust):
    return runtimes.OnnxArtifact(path, threads)


ONNX = register_target(ExportTarget(
    name="onnx", suffix=".onnx", writer=write_onnx, loader=load_onnx,
    needs=ONNX_MODULES, install=ONNX_INSTALL, loader_needs=("onnxruntime",),
    missing="ONNX needs the {missing} package(s), which TensorFlow does not ship; install them with: {install}",
    native="ONNX Runtime",
    runtime="onnxruntime", runtime_words="ONNX Runtime (CPU), {threads} intra-op thread{s}",
))
