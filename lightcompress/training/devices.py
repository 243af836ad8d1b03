"""The device the current Keras backend computes on, in words (for reports)."""

from __future__ import annotations

import os
import platform

import keras

from .._deferred import deferred

tf = deferred("tensorflow")
jax = deferred("jax")
torch = deferred("torch")


def device_name() -> str:
    """The device the current Keras backend computes on, in words (GPU first)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return f"GPU {details.get('device_name', gpus[0].name)} (tensorflow)"
    elif backend == "jax":
        device = jax.devices()[0]
        if device.platform != "cpu":
            return f"{device.platform.upper()} {device.device_kind} (jax)"
    elif backend == "torch":
        if torch.cuda.is_available():
            return f"GPU {torch.cuda.get_device_name(0)} (torch)"
    return f"CPU {_cpu_model()}, {os.cpu_count()} cores ({backend})"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()
