"""Import Keras (and start its backend) without TensorFlow's start-up chatter on stderr.

TensorFlow prints oneDNN, CUDA-stub and absl notices straight to file descriptor 2 before any
Python logging exists, and ``TF_CPP_MIN_LOG_LEVEL`` no longer hides all of them. They are held
back during the import; if the import fails they are printed with the error. Set
``LIGHTCOMPRESS_TF_LOGS=1`` to see them always.
"""

import os
import sys
import tempfile


def import_keras_quietly():
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
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
