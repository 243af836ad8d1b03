"""Unlabelled samples: inputs a model sees in use, with no labels (what users have when they have
no data set). ``flows.ConvertSettings.make(samples=PATH)`` calibrates the factors on most of them and
measures the report's agreement on the rest, instead of on random inputs.

A sample file is a ``.npy`` array of inputs, a ``.npz`` holding one (named ``x`` or ``inputs``, or
its only array), or a folder of images (``IMAGE_SUFFIXES``, read in name order, resized to the
model's input). uint8 images are scaled to [0, 1], as the named data sets are; other arrays are
used as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._deferred import deferred
from ..errors import DataError
from ..io.files import check_regular_file
from .sources import IMAGE_SUFFIXES
from .synthetic import input_specs

Image = deferred("PIL.Image")  # Pillow, which matplotlib brings

MIN_SAMPLES = 5  # four to calibrate on, one to check against at the least
CHECK_SHARE = 5  # every fifth sample is held out from the calibration to measure the agreement on
ARRAY_NAMES = ("x", "inputs")


def read_samples(path, model) -> np.ndarray:
    """The samples in ``path`` shaped for ``model``'s one input, as float32."""
    path = check_regular_file(Path(path), "a folder of images, a .npy or a .npz of inputs", DataError, folders=True)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; give a folder of images, a .npy or a .npz of inputs.")
    specs = input_specs(model)
    if len(specs) != 1:
        raise DataError(f"model '{model.name}' has {len(specs)} inputs; samples feed a model with one input.")
    shape = tuple(specs[0].shape)[1:]
    if path.is_dir():
        x = _images(path, shape)
    elif path.suffix.lower() == ".npy":
        x = _array(lambda: np.load(path, allow_pickle=False), path)
    elif path.suffix.lower() == ".npz":
        x = _array(lambda: _npz_array(path), path)
    else:
        raise DataError(f"{path} is not a sample file; give a folder of images, a .npy or a .npz of inputs.")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    if not np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_:
        raise DataError(f"{path} holds {x.dtype} values, not numbers; give the inputs as numbers.")
    x = x.astype(np.float32)
    if x.ndim != len(shape) + 1 or any(d is not None and d != s for d, s in zip(shape, x.shape[1:])):
        raise DataError(f"{path} holds inputs of shape {tuple(x.shape[1:])} (one per row of {tuple(x.shape)}); "
                        f"model '{model.name}' takes {shape}; give inputs of that shape.")
    if len(x) < MIN_SAMPLES:
        raise DataError(f"{path} holds {len(x)} sample(s); give at least {MIN_SAMPLES} (a fifth of them is held out "
                        f"to measure the agreement on).")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{path} holds values that are not finite (NaN or inf); give finite inputs.")
    return x


def split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(calibration samples, held-out samples): every ``CHECK_SHARE``-th sample is held out."""
    held = np.zeros(len(x), bool)
    held[CHECK_SHARE - 1::CHECK_SHARE] = True
    return x[~held], x[held]


def _array(load, path) -> np.ndarray:
    try:
        return np.asarray(load())
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path} is not a readable array file ({err}).") from None


def _npz_array(path):
    with np.load(path, allow_pickle=False) as arrays:
        names = list(arrays.files)
        chosen = next((n for n in ARRAY_NAMES if n in names), names[0] if len(names) == 1 else None)
        if chosen is None:
            raise DataError(f"{path} holds {len(names)} arrays ({', '.join(names)}); name the inputs "
                            f"{' or '.join(ARRAY_NAMES)}, or keep one array.")
        return arrays[chosen]


def _images(folder: Path, shape) -> np.ndarray:
    if len(shape) != 3 or shape[-1] not in (1, 3) or None in shape[:2]:
        raise DataError(f"{folder} is a folder of images, and the model takes inputs of shape {shape}, not "
                        f"images (height, width, 1 or 3 channels); give a .npy or .npz of inputs.")
    files = sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    height, width, channels = shape
    images = []
    for file in files:
        try:
            with Image.open(file) as image:
                image = image.convert("L" if channels == 1 else "RGB").resize((width, height))
                images.append(np.asarray(image, dtype=np.uint8).reshape(height, width, channels))
        except (OSError, ValueError) as err:
            raise DataError(f"{file} is not a readable image ({err}).") from None
    return np.stack(images)
