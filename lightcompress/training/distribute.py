"""Data-parallel fine-tuning on several devices through the backend's own engine, never a
home-made loop.

- JAX: ``keras.distribution.DataParallel``; with several hosts, ``keras.distribution.initialize()``
  first (it reads ``KERAS_DISTRIBUTION_JOB_ADDRESSES``, ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and
  ``KERAS_DISTRIBUTION_PROCESS_ID``).
- TensorFlow: ``tf.distribute.MirroredStrategy``; ``MultiWorkerMirroredStrategy`` when
  ``TF_CONFIG`` names several workers.
- PyTorch, or one device: Keras trains as it does by itself.

``devices`` is ``"all"`` (every visible accelerator; the CPU, as one device, when there is none)
or a whole number N >= 1 (the first N accelerators; with no accelerator, the first N CPU devices,
e.g. the virtual ones of ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` or TensorFlow's
logical CPU devices). The batch size stays the global batch: each replica computes its share of
every step, so the loss curve is that of one device.

Several hosts need their engine before the backend computes anything (JAX refuses a late
``initialize``; TensorFlow configures collectives at start-up): the file flows call ``start()``
before loading a model. From Python, call ``lightcompress.training.distribute.start()`` first.
Process 0 alone writes files (``writes_output``); a job that loses a process ends each survivor
with one error and exit code 1 (``job_failed``). Run as two local processes on CPU on both engines
(tests/multihost_run.py, tests/training/test_multihost.py).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import sys
from dataclasses import dataclass

import keras

from .. import _keras_private
from .._deferred import deferred
from ..errors import LightCompressError, OptionError

jax = deferred("jax")
tf = deferred("tensorflow")
torch = deferred("torch")

_started = {}  # the engines of this process, each made once (several hosts: by start())
_failed = []  # the job lost a process: this one exits without the engine's shutdown handshake


@dataclass(frozen=True)
class Placement:
    """Where training runs: the engine (a library name), the local devices it spreads over (as the
    engine names them), the hosts and the number of replicas in all."""

    engine: str
    devices: tuple
    count: int
    hosts: int = 1

    def describe(self) -> str:
        """``"2 devices (tf.distribute.MirroredStrategy)"``; ``"1 device (keras)"``."""
        where = f"{self.count} device{'s' if self.count != 1 else ''}"
        if self.hosts > 1:
            where += f" on {self.hosts} hosts"
        return f"{where} ({self.engine})"


def check_devices(devices):
    """``devices`` as ``"all"`` or a whole number >= 1 (a string of digits is read as one);
    anything else is an OptionError, before any work."""
    if isinstance(devices, str) and devices.strip().lower() == "all":
        return "all"
    number = None
    if isinstance(devices, int) and not isinstance(devices, bool):
        number = devices
    elif isinstance(devices, str) and devices.strip().isdigit():
        number = int(devices.strip())
    if number is None or number < 1:
        raise OptionError("is invalid", option="devices", value=devices,
                          allowed="'all' or a whole number of devices >= 1, e.g. 2")
    return number


def hosts() -> int:
    """How many hosts (processes) the environment describes: ``TF_CONFIG`` on TensorFlow,
    ``KERAS_DISTRIBUTION_NUM_PROCESSES`` on JAX; 1 otherwise."""
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow" and os.environ.get("TF_CONFIG"):
            cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
            return max(1, len(cluster.get("worker", [])) + len(cluster.get("chief", [])))
        if backend == "jax" and os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES"):
            return max(1, int(os.environ["KERAS_DISTRIBUTION_NUM_PROCESSES"]))
    except (ValueError, AttributeError) as err:
        raise LightCompressError(f"the multi-host settings in the environment cannot be read ({err}); fix "
                                 f"TF_CONFIG or KERAS_DISTRIBUTION_NUM_PROCESSES.") from None
    return 1


def start():
    """Set up the multi-host engine of this process when the environment describes several hosts
    (nothing otherwise). Call it before building or loading any model; calling it again is free."""
    if hosts() <= 1 or "jax" in _started or "tensorflow" in _started:
        return
    backend = keras.backend.backend()
    if backend == "jax":
        try:
            keras.distribution.initialize()  # reads the KERAS_DISTRIBUTION_* variables
        except RuntimeError as err:
            if jax.process_count() != hosts():  # not already initialised by the caller
                first = (str(err).strip().splitlines() or [""])[0]
                raise LightCompressError(
                    f"the JAX multi-host setup failed ({first}); with several hosts, call "
                    f"lightcompress.training.distribute.start() before any model is built.") from None
        _started["jax"] = True
    elif backend == "tensorflow":
        _started["tensorflow"] = tf.distribute.MultiWorkerMirroredStrategy()
    atexit.register(_exit_if_failed)  # after the engine's own exit hooks, so it runs before them


def _exit_if_failed():
    """At exit after ``job_failed``: leave now, with the exit code the command set (1). The engines'
    exit hooks would wait for the lost process: JAX's ``distributed.shutdown`` waits at a barrier
    until ``shutdown_timeout_seconds`` (300 s), then aborts with a stack trace."""
    if _failed:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_failed[-1])


def job_failed(err: BaseException) -> LightCompressError:
    """The one-line error for a multi-host job whose training failed, e.g. because another process
    died (JAX: "Gloo AllGather failed: ... Connection closed by peer"; TensorFlow: a collective
    aborted); this process then exits without waiting for the others."""
    _failed.append(1)
    first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
    index, count = process()
    return LightCompressError(
        f"process {index} of {count}: training stopped because the job failed, most likely another "
        f"process ended ({first[:300]}); nothing is saved. Start every process again.")


def process() -> tuple[int, int]:
    """(index of this process, number of processes) in the job; (0, 1) with one host. Index 0 is
    JAX's process 0 (the coordinator's) or TensorFlow's chief: the ``chief`` task when
    ``TF_CONFIG`` names one, else worker 0, as ``tf.distribute`` counts them."""
    n_hosts = hosts()
    if n_hosts <= 1:
        return 0, 1
    start()
    if "jax" in _started:
        return jax.process_index(), jax.process_count()
    resolver = _started["tensorflow"].cluster_resolver
    cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
    index = resolver.task_id + (len(cluster.get("chief", [])) if resolver.task_type == "worker" else 0)
    return index, n_hosts


def writes_output() -> bool:
    """Whether this process writes the job's files: process 0 only. Data-parallel training ends
    with the same weights in every process, so one copy is the whole result, and one writer never
    races another for the same path (on a shared file system) nor leaves copies to tell apart."""
    return process()[0] == 0


def visible_devices() -> tuple[list, list]:
    """(accelerators, CPU devices) the current backend sees, named as its engine takes them."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return ([d.name for d in tf.config.list_logical_devices("GPU")],
                [d.name for d in tf.config.list_logical_devices("CPU")])
    if backend == "jax":
        accelerators = [f"{d.platform}:{d.id}" for d in jax.devices() if d.platform != "cpu"]
        return accelerators, [f"cpu:{d.id}" for d in jax.devices("cpu")]
    if backend == "torch":
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())], ["cpu"]
    return [], ["cpu"]


def placement(devices="all") -> Placement:
    """The ``Placement`` for ``devices`` (``"all"`` or N) on the current backend; an OptionError
    when N is more than the backend sees or the backend cannot spread training."""
    devices = check_devices(devices)
    backend = keras.backend.backend()
    n_hosts = hosts()
    if n_hosts > 1:
        if devices != "all":
            raise OptionError(f"devices={devices} cannot pick devices across {n_hosts} hosts; use devices='all' "
                              f"and limit each host's GPUs with CUDA_VISIBLE_DEVICES.")
        start()
        if backend == "tensorflow":
            strategy = _started["tensorflow"]
            return Placement("tf.distribute.MultiWorkerMirroredStrategy", (), strategy.num_replicas_in_sync,
                             n_hosts)
        if backend == "jax":
            return Placement("keras.distribution.DataParallel", (), jax.device_count(), n_hosts)
    accelerators, cpus = visible_devices()
    pool = accelerators or cpus
    if devices == "all":
        chosen = accelerators or cpus[:1]
        if backend not in ("jax", "tensorflow"):
            chosen = chosen[:1]  # Keras distributes on JAX and TensorFlow only
    elif devices > len(pool):
        kind = "accelerator" if accelerators else "CPU device"
        raise OptionError(f"devices={devices} is more than the {len(pool)} {kind}(s) the {backend} backend sees "
                          f"({', '.join(pool)}); use devices='all' or a number up to {len(pool)}.")
    else:
        chosen = pool[:devices]
    if len(chosen) <= 1:
        return Placement("keras", tuple(chosen), 1)
    if backend == "jax":
        return Placement("keras.distribution.DataParallel", tuple(chosen), len(chosen))
    if backend == "tensorflow":
        return Placement("tf.distribute.MirroredStrategy", tuple(chosen), len(chosen))
    raise OptionError(f"devices={devices} needs the jax or tensorflow backend: Keras trains on one device "
                      f"on the {backend} backend. Use devices=1, or KERAS_BACKEND=jax.")


@contextlib.contextmanager
def scope(where: Placement):
    """The context in which a model to train on ``where`` is built, compiled and fitted."""
    if where.count <= 1 and where.hosts <= 1:
        yield
        return
    if where.engine == "keras.distribution.DataParallel":
        # several hosts: each process already feeds its own slice (local_share), so Keras must not
        # shard again (it also shards only tf.data, and refuses anything else while it would)
        distribution = keras.distribution.DataParallel(devices=list(where.devices) or None,
                                                       auto_shard_dataset=where.hosts <= 1)
        with distribution.scope():
            yield
        return
    if where.hosts > 1:
        strategy = _started["tensorflow"]
    else:  # one strategy per set of devices and process: a second one clashes with the first's collectives
        key = ("tensorflow",) + tuple(where.devices)
        if key not in _started:
            _started[key] = tf.distribute.MirroredStrategy(devices=list(where.devices))
        strategy = _started[key]
    with strategy.scope():
        yield


def build_for_fit(model, data):
    """Under ``MultiWorkerMirroredStrategy``, build the compiled ``model`` from the first batch of
    ``data`` (a tf.data set) before ``fit``: Keras's own build there fails with several workers
    (see ``_keras_private.build_for_multi_worker``)."""
    _keras_private.build_for_multi_worker(model, next(iter(data.take(1))))


def replica(model):
    """A copy of ``model`` with its weights, made in the current scope (which places its variables)."""
    copy = keras.models.clone_model(model)
    if not copy.built:
        copy.build(model.input_shape)
    copy.set_weights(model.get_weights())
    return copy


def local_share(x, y, batch_size, where: Placement):
    """(x, y, batch size, multiple) this process feeds to ``fit`` on ``where``: every batch is cut
    to a multiple of ``multiple`` images.

    TensorFlow's strategies split any global batch themselves (multiple 1). JAX shards each batch
    evenly over the devices: the batch size must be a multiple of the device count, and a final
    partial batch drops its last images (fewer than one per device). With several hosts, every
    process keeps the whole set and the global batch size, and feeds its part of each global batch
    (``part``): Keras assembles the global batch from the processes' parts in process order, so the
    job trains on the very batches of one process.
    """
    if where.engine != "keras.distribution.DataParallel":
        return x, y, batch_size, 1
    if batch_size % where.count:
        raise OptionError(f"batch_size={batch_size} does not split evenly over {where.count} devices on JAX; "
                          f"use a multiple of {where.count}.")
    return x, y, batch_size, where.count


def part(where: Placement) -> tuple[int, int]:
    """(this process's index, number of processes) when each process feeds a contiguous part of
    every global batch (JAX with several hosts); (0, 1) otherwise."""
    if where.engine != "keras.distribution.DataParallel" or where.hosts <= 1:
        return 0, 1

    return jax.process_index(), where.hosts
