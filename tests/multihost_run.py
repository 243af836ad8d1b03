"""Two processes on 127.0.0.1 forming one job, each running ``lightcompress finetune`` as on two
hosts; used by tests/training/test_multihost.py, and runnable by hand:

    python tests/multihost_run.py jax|tensorflow [--epochs 2] [--kill]

prints one JSON line: the 1-process run and the 2-process job (exit codes, final losses, the files
each wrote, the last line of each), or with --kill the job where process 1 is killed (SIGKILL)
after its first epoch.

JAX: ``KERAS_DISTRIBUTION_JOB_ADDRESSES=127.0.0.1:PORT``, ``KERAS_DISTRIBUTION_NUM_PROCESSES=2``,
``KERAS_DISTRIBUTION_PROCESS_ID=0|1`` (lightcompress calls ``keras.distribution.initialize()``,
JAX's CPU collectives are gloo). TensorFlow: ``TF_CONFIG`` naming two workers on two local ports.
Ports are picked free (bound to port 0). Every process runs in a folder of its own, so a file one
of them writes is seen as written by it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "sample_models" / "digits_mlp.keras"
CLI = "import sys; from lightcompress.cli import main; sys.argv[0] = 'lightcompress'; sys.exit(main())"


def free_ports(n):
    """``n`` distinct ports the system reports free (bound to port 0, then released)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def job_env(backend, index, ports):
    """The environment variables that make this process ``index`` of a 2-process job."""
    if backend == "jax":
        return {"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{ports[0]}",
                "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": str(index)}
    return {"TF_CONFIG": json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                     "task": {"type": "worker", "index": index}})}


def command(output, epochs, seed=0):
    return [sys.executable, "-u", "-c", CLI, "finetune", str(MODEL), "-d", "digits", "--epochs", str(epochs),
            "--batch-size", "64", "--seed", str(seed), "-o", str(output)]


def environment(backend, extra=None):
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith("KERAS_DISTRIBUTION_") and k not in ("TF_CONFIG", "XLA_FLAGS")}
    return {**keep, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "400",
            "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            **(extra or {})}


def result(proc, folder, stdout, stderr):
    """What one process did: exit code, final training loss (from the history file, if it wrote
    one), the files it left and the last line of its output."""
    files = sorted(p.name for p in Path(folder).iterdir())
    history = Path(folder) / "tuned.history.json"
    loss = json.loads(history.read_text())["history"]["loss"] if history.exists() else None
    lines = [line for line in (stdout + stderr).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return {"rc": proc.returncode, "loss": loss, "files": files, "errors": errors,
            "last": lines[-1] if lines else "", "stderr_tail": stderr[-2000:]}


def single(backend, epochs, timeout=240):
    """The same command as one process (no job variables)."""
    folder = Path(tempfile.mkdtemp(prefix="mh-single-"))
    done = subprocess.run(command(folder / "tuned.keras", epochs), env=environment(backend), cwd=folder,
                          capture_output=True, text=True, timeout=timeout)
    return result(done, folder, done.stdout, done.stderr)


def job(backend, epochs, kill=False, timeout=240):
    """The 2-process job; with ``kill``, process 1 is SIGKILLed once it has printed its first
    epoch, and the survivor's exit is timed (``seconds_after_kill``)."""
    ports = free_ports(1 if backend == "jax" else 2)
    folders = [Path(tempfile.mkdtemp(prefix=f"mh-job{i}-")) for i in range(2)]
    procs = [subprocess.Popen(command(folders[i] / "tuned.keras", epochs), cwd=folders[i],
                              env=environment(backend, job_env(backend, i, ports)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    out = [{"stdout": [], "stderr": []} for _ in procs]
    first_epoch = threading.Event()

    def read(i, name):
        for line in getattr(procs[i], name):
            out[i][name].append(line)
            if i == 1 and line.startswith("epoch 1/"):
                first_epoch.set()

    readers = [threading.Thread(target=read, args=(i, name), daemon=True) for i in range(2) for name in ("stdout", "stderr")]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + timeout
    killed_at = None
    try:
        if kill:
            if not first_epoch.wait(timeout):
                raise TimeoutError("process 1 printed no epoch")
            procs[1].send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
        for p in procs:
            p.wait(max(1, deadline - time.monotonic()))
    finally:
        for p in procs:  # bounded: nothing outlives the run
            if p.poll() is None:
                p.kill()
                p.wait()
    ended = time.monotonic()
    for reader in readers:
        reader.join(5)
    results = [result(p, folders[i], "".join(out[i]["stdout"]), "".join(out[i]["stderr"])) for i, p in enumerate(procs)]
    if kill:
        results[0]["seconds_after_kill"] = round(ended - killed_at, 1)
    return results


def main():
    backend = sys.argv[1]
    epochs = int(sys.argv[sys.argv.index("--epochs") + 1]) if "--epochs" in sys.argv else 2
    if "--kill" in sys.argv:
        print(json.dumps({"kill": job(backend, 20, kill=True)}))
        return
    print(json.dumps({"one": single(backend, epochs), "two": job(backend, epochs)}))


if __name__ == "__main__":
    main()
