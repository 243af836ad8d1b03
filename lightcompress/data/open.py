"""Opening a data set for a model: the one door from a data set spec to a ``Dataset``.

``open_for_model(model, data)`` takes a ``Dataset`` (returned as it is), a ``sets.DataSpec`` or a
spec string (a name, a ``.npz`` file, a folder, TFRecord files, ``module:function``); None (there
is no default data set) is a DataError asking for one. It shapes the data for ``model``: folders,
TFRecord files and module:function as a ``streams.Streamed`` read in batches, the rest as an
in-memory ``Prepared``. ``in_memory=True`` gives a ``Prepared`` for every source (streamed sources
are read whole; folders are read as Keras reads them into arrays), for the consumers that need arrays.

This module imports both kinds; ``sets`` and ``streams`` import neither each other nor this.
"""

from __future__ import annotations

from pathlib import Path

from .dataset import Dataset, single_io_shape
from .sets import DataSpec, check_limits, load_dataset, prepare
from .sources import is_function_spec, is_tfrecord_spec
from .streams import open_stream


def open_for_model(model, data=None, *, in_memory: bool = False) -> Dataset:
    """``data`` (a Dataset, a DataSpec, a spec string or None) shaped for ``model`` (see the
    module docstring); a DataError names what does not fit, before any training."""
    if isinstance(data, Dataset):
        return data
    spec = data if isinstance(data, DataSpec) else DataSpec(data)
    source = spec.source
    whole_source = bool(source) and (is_tfrecord_spec(source) or is_function_spec(source))
    if whole_source or (not in_memory and bool(source) and Path(str(source)).is_dir()):
        check_limits(spec)
        stream = open_stream(model, spec)
        return stream.materialise() if in_memory else stream
    target, _ = single_io_shape(model)
    image_size = target[:2] if len(target) == 3 else None
    color = "grayscale" if len(target) == 3 and target[2] == 1 else "rgb"
    check_limits(spec)
    raw = load_dataset(source, npz_keys=spec.npz_keys, image_size=image_size, color_mode=color, seed=spec.seed)
    return prepare(raw.limit(spec.train_limit, spec.test_limit), model, scale=spec.scale, resize=spec.resize)
