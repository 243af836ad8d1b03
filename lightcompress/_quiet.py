"""Import Keras (and start its backend) without TensorFlow's start-up chatter on stderr.

TensorFlow prints oneDNN, CUDA-stub and absl notices straight to file descriptor 2 before any
Python logging exists, and ``TF_CPP_MIN_LOG_LEVEL`` no longer hides all of them. They are held
back during the import; if the import fails they are printed with the error when ``verbose_errors``
(the command line prints them only with ``--debug``: its error is one line). Set
``LIGHTCOMPRESS_TF_LOGS=1`` to see them always.
"""

import os
import sys
import tempfile


def import_keras_quietly(verbose_errors=True):
    if "keras" in sys.modules or os.environ.get("LIGHTCOMPRESS_TF_LOGS") == "1":
        import keras  # noqa: F401

        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import keras

            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                tf.config.list_physical_devices()  # device discovery prints once, here
        except KeyboardInterrupt:  # the user stopped it: the held-back lines explain nothing
            raise
        except BaseException:
            os.dup2(saved, 2)
            if verbose_errors:
                held.seek(0)
                sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def backend_problem(err: BaseException) -> str | None:
    """For an error raised by ``import_keras_quietly``, one line naming the backend and the fix (None
    when the error is not about the backend)."""
    name = os.environ.get("KERAS_BACKEND")
    where = f"KERAS_BACKEND={name}" if name else "Keras's configured backend (~/.keras/keras.json)"
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    if isinstance(err, ValueError) and "Unable to import backend" in text:
        return f"{where} is not a Keras backend; use tensorflow, jax or torch, or unset KERAS_BACKEND."
    if isinstance(err, ImportError):
        missing = getattr(err, "name", None) or text
        extra = {"jax": ' (pip install "lightcompress[jax]")', "torch": " (pip install torch)"}.get(name or "", "")
        return (f"{where} needs {missing}, which could not be imported ({type(err).__name__}: {text}); install "
                f"it{extra} or unset KERAS_BACKEND.")
    return None
