"""A toy export target, written as every entry of lightcompress.deploy.builtin_targets is: the whole
diff of adding a target. ``toy`` writes the lowered model as a ``.npz`` holding its JSON config and
its weights, loads it back in Keras, and times Keras models as such a file under the runtime name
``toy``; export, verification, loading, ``--format``, ``compress --export`` and ``--runtime`` then
take it with no other change."""

import io

import keras
import numpy as np

from lightcompress.deploy.runtimes import KerasArtifact
from lightcompress.deploy.targets import ExportTarget, register_target


def write(lowered, path, options):
    weights = {f"w{i}": w for i, w in enumerate(lowered.get_weights())}
    buffer = io.BytesIO()  # np.savez(path) would add ".npz" to a name without it
    np.savez(buffer, config=np.array(lowered.to_json()), **weights)
    path.write_bytes(buffer.getvalue())


def load(path, threads, trust):
    with np.load(path) as held:
        model = keras.models.model_from_json(str(held["config"]))
        model.set_weights([held[f"w{i}"] for i in range(len(held.files) - 1)])
    return KerasArtifact(path, model=model)


TOY = register_target(ExportTarget(
    name="toy", suffix=".npz", writer=write, loader=load, summary="config and weights in a .npz",
    runtime="toy", runtime_words="Keras, from the toy .npz{model}, {threads} thread{s} asked",
))
