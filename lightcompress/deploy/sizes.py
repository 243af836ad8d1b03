"""Honest sizes of a model whose weights may be sparse or clustered, as deployed.

- ``params`` / ``nonzero``: all parameters, and those that are not exactly zero;
- ``gzip_bytes``: the float32 weights, concatenated, gzip-compressed (level 9): what zeros and
  shared values save on the wire or in a compressed archive;
- LiteRT float and int8 files (``export.export_model``: lowered, written, verified in the
  interpreter on the test images): file bytes, gzip-compressed file bytes, accuracy there, and
  batch-1 latency measured in the interpreter.

Zeros and clustered values make files compress better; they do not make a dense kernel faster:
LiteRT runs a pruned Dense/Conv2D with the same dense kernel and the same multiply-adds, so its
latency is the original's. Only fewer (or smaller) matrices, as low-rank gives, change it.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import numpy as np

from .export import export_model, verify
from .timing import DEFAULT_THREADS

LATENCY_NOTE = ("zeros and clustered weights do not make dense kernels faster: LiteRT runs pruned and "
                "clustered layers with the same dense kernels and multiply-adds as the original.")


def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def weight_sizes(model) -> dict:
    weights = [np.asarray(w, np.float32) for w in model.get_weights()]
    raw = b"".join(w.tobytes() for w in weights)
    return {"params": int(sum(w.size for w in weights)),
            "nonzero": int(sum(np.count_nonzero(w) for w in weights)),
            "float32_bytes": len(raw), "gzip_bytes": gzip_size(raw)}


def _litert(model, prepared, path, quantize, threads, repeats):
    kwargs = {"calibration": prepared} if quantize == "int8" else {}
    result = export_model(model, path, "litert", quantize, x=prepared.x_test, y=prepared.y_test,
                          source=f"test images of {prepared.name}", threads=threads, repeats=repeats, **kwargs)
    v = result.verification
    return {"file_bytes": int(v.file_bytes), "gzip_bytes": gzip_size(Path(path).read_bytes()),
            "accuracy": v.accuracy, "agreement_with_keras": v.agreement,
            "latency_ms": v.latency.median_ms, "runtime": v.runtime}


def deployment_sizes(model, prepared, *, threads=DEFAULT_THREADS, repeats=100, workdir=None) -> dict:
    """``weight_sizes`` plus LiteRT float and int8 files of ``model`` (verified on ``prepared``'s
    test images; int8 calibrated on its training images)."""
    out = weight_sizes(model)
    with tempfile.TemporaryDirectory(prefix="lightcompress-sizes-", dir=workdir) as folder:
        out["litert_float"] = _litert(model, prepared, Path(folder) / "m.tflite", "none", threads, repeats)
        out["litert_int8"] = _litert(model, prepared, Path(folder) / "m.int8.tflite", "int8", threads, repeats)
    return out


def tflite_sizes(path_or_bytes, reference, prepared, *, threads=DEFAULT_THREADS, repeats=100) -> dict:
    """Size, accuracy, agreement and batch-1 latency of a LiteRT file (e.g. from QAT) against the
    Keras model ``reference``, verified like any export (quantised: reported, not enforced)."""
    with tempfile.TemporaryDirectory(prefix="lightcompress-sizes-") as folder:
        path = Path(folder) / "model.tflite"
        if isinstance(path_or_bytes, (bytes, bytearray)):
            path.write_bytes(path_or_bytes)
        else:
            path.write_bytes(Path(path_or_bytes).read_bytes())
        v = verify(path, reference, prepared.x_test, prepared.y_test, f"test images of {prepared.name}",
                   strict=False, threads=threads, repeats=repeats)
        return {"file_bytes": int(v.file_bytes), "gzip_bytes": gzip_size(path.read_bytes()), "accuracy": v.accuracy,
                "agreement_with_keras": v.agreement, "latency_ms": v.latency.median_ms, "runtime": v.runtime,
                "max_abs_diff": v.max_abs_diff}
