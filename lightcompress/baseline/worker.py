"""The tf_keras side of the baselines: ``python path/to/baseline/worker.py FOLDER``.

Runs in its own process (tfmot switches ``tf.keras`` to Keras 2 on import) and never imports
Keras 3 or the rest of lightcompress (it is run by file path: ``import lightcompress`` imports
Keras 3). It reads from FOLDER what ``run`` wrote:

- ``spec.json`` / ``weights.npz``: the architecture (whitelisted layer configs) and weights;
- ``job.json``: the method (``check``, ``prune``, ``cluster``, ``qat``), its budget and the
  fine-tuning settings;
- ``data.npz``: ``x_probe``/``y_probe`` (inputs and the Keras 3 model's outputs on them) and, to
  train, ``x_fit``/``y_fit``/``x_val``/``y_val``,

builds the tf_keras twin, copies the weights, checks the twin's outputs against ``y_probe``
before anything else, runs tfmot, fine-tunes, strips, and writes ``weights_out.npz`` (same keys
as ``weights.npz``), ``probe_out.npy`` (the final twin's outputs on ``x_probe``), ``qat.tflite``
(QAT only) and ``result.json``. Failures the user can act on are written to ``result.json`` as
``{"error": "..."}`` (one line); progress goes to stdout as JSON lines.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow: tf.keras is tf_keras in this process
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

CHECK_ATOL = 1e-4
CHECK_RTOL = 1e-3


class JobError(Exception):
    """A failure to report in one line (result.json), not a crash."""


def emit(**event):
    print(json.dumps(event), flush=True)


# -- the twin ---------------------------------------------------------------------------------

def build_twin(spec, k2):
    def make(entry):
        cls = getattr(k2.layers, entry["class"], None)
        if cls is None:
            raise JobError(f"layer '{entry['name']}' is a {entry['class']}, which tf_keras does not have.")
        try:
            return cls(name=entry["name"], **entry["config"])
        except (TypeError, ValueError) as err:
            raise JobError(f"layer '{entry['name']}' ({entry['class']}) could not be rebuilt in tf_keras: "
                           f"{str(err).splitlines()[0]}") from None

    if spec["kind"] == "sequential":
        shape = spec["inputs"][0]["shape"]
        return k2.Sequential([k2.Input(tuple(shape)), *[make(e) for e in spec["layers"]]], name=spec["name"])
    tensors = {i["name"]: k2.Input(tuple(i["shape"]), name=i["name"]) for i in spec["inputs"]}
    for entry in spec["layers"]:
        args = [tensors[name] for name in entry["inbound"]]
        tensors[entry["name"]] = make(entry)(args if len(args) > 1 else args[0])
    return k2.Model([tensors[i["name"]] for i in spec["inputs"]], [tensors[n] for n in spec["outputs"]],
                    name=spec["name"])


def spec_layers(spec, model):
    return [model.get_layer(e["name"]) for e in spec["layers"]]


def set_weights(spec, model, path):
    with np.load(path) as data:
        for i, layer in enumerate(spec_layers(spec, model)):
            count = len(layer.get_weights())
            if count:
                layer.set_weights([data[f"{i}/{j}"] for j in range(count)])


def predict(model, x):
    y = model.predict(x, batch_size=256, verbose=0)
    return np.asarray(y[0] if isinstance(y, list) else y, np.float32)


def check_twin(twin, x, expected):
    got = predict(twin, x)
    if got.shape != expected.shape or not np.allclose(got, expected, atol=CHECK_ATOL, rtol=CHECK_RTOL):
        diff = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else float("nan")
        raise JobError(f"the tf_keras twin does not compute what the model computes (max abs diff {diff:.3g} "
                       f"on {len(x)} test inputs); this model cannot be compared with tfmot.")
    return float(np.max(np.abs(got - expected)))


# -- training ---------------------------------------------------------------------------------

def loss_and_metrics(tf, k2, kind, distill):
    if distill is None:
        if kind == "binary":
            return k2.losses.BinaryCrossentropy(), ["accuracy"]
        return k2.losses.SparseCategoricalCrossentropy(from_logits=kind == "logits"), ["accuracy"]
    alpha, temperature = float(distill["alpha"]), float(distill["temperature"])

    def distillation(y_true, y_pred):  # lightcompress.training.distill.DistillationLoss, in TensorFlow
        labels = tf.cast(y_true[:, 0], tf.int32)
        teacher = tf.clip_by_value(y_true[:, 1:], 1e-7, 1.0)
        log_p = tf.nn.log_softmax(y_pred) if kind == "logits" else tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1.0))
        hard = -tf.reduce_sum(tf.one_hot(labels, tf.shape(y_pred)[-1]) * log_p, axis=-1)
        log_student_t = tf.nn.log_softmax(log_p / temperature)
        kl = tf.reduce_sum(teacher * (tf.math.log(teacher) - log_student_t), axis=-1)
        return alpha * hard + (1.0 - alpha) * temperature ** 2 * kl

    def accuracy(y_true, y_pred):
        labels = tf.cast(y_true[:, 0], tf.int64)
        return tf.cast(tf.equal(tf.argmax(y_pred, axis=-1), labels), tf.float32)

    return distillation, [accuracy]


class EpochLog:
    def __init__(self, k2, epochs):
        base = k2.callbacks.Callback

        class _Log(base):
            def on_epoch_begin(cb, epoch, logs=None):
                cb.start = time.perf_counter()

            def on_epoch_end(cb, epoch, logs=None):
                seconds = time.perf_counter() - cb.start
                self.seconds.append(seconds)
                emit(event="epoch", epoch=epoch + 1, epochs=epochs, seconds=round(seconds, 2),
                     **{k: float(v) for k, v in (logs or {}).items()})

        self.seconds = []
        self.callback = _Log()


def fit(tf, k2, model, data, job, extra_callbacks=(), start_from_epoch=0):
    s = job["settings"]
    k2.utils.set_random_seed(s["seed"])
    x, y, x_val, y_val = data["x_fit"], data["y_fit"], data["x_val"], data["y_val"]
    steps = max(1, math.ceil(len(x) / s["batch_size"]))
    schedule = k2.optimizers.schedules.CosineDecay(s["learning_rate"], decay_steps=steps * s["epochs"], alpha=0.05)
    loss, metrics = loss_and_metrics(tf, k2, job["kind"], job.get("distill"))
    model.compile(optimizer=k2.optimizers.Adam(schedule), loss=loss, metrics=metrics)
    has_val = len(x_val) > 0
    stopper = k2.callbacks.EarlyStopping(monitor="val_loss" if has_val else "loss", patience=s["patience"],
                                         restore_best_weights=True, start_from_epoch=start_from_epoch)
    log = EpochLog(k2, s["epochs"])
    train = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=s["seed"], reshuffle_each_iteration=True)
             .batch(s["batch_size"]).prefetch(tf.data.AUTOTUNE))
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(s["batch_size"]) if has_val else None
    history = model.fit(train, validation_data=val, epochs=s["epochs"], verbose=0,
                        callbacks=[*extra_callbacks, stopper, log.callback])
    best = getattr(stopper, "best_epoch", None)
    return {
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "epochs_run": len(log.seconds),
        "epoch_seconds": log.seconds,
        "best_epoch": None if best is None or not log.seconds else int(best) + 1,
        "steps_per_epoch": steps,
    }


# -- methods ----------------------------------------------------------------------------------

def prune_schedule(steps_per_epoch, epochs):
    """(end_step, frequency, epoch index from which the final sparsity holds): the polynomial
    schedule reaches its target one epoch before the end (70% into a single epoch), so the last
    epoch fine-tunes at the final sparsity; the end step is a multiple of the frequency, so the
    last mask update lands exactly on it."""
    end = steps_per_epoch * (epochs - 1) if epochs > 1 else int(0.7 * steps_per_epoch)
    end = max(1, end)
    frequency = min(100, max(1, end // 10))
    end = max(frequency, (end // frequency) * frequency)
    return end, frequency, end // steps_per_epoch


def run_prune(tf, k2, tfmot, twin, spec, data, job):
    sparsity = float(job["sparsity"])
    chosen = set(job["layers"])
    steps = max(1, math.ceil(len(data["x_fit"]) / job["settings"]["batch_size"]))
    end, frequency, start_epoch = prune_schedule(steps, job["settings"]["epochs"])
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, sparsity, begin_step=0, end_step=end, frequency=frequency)

    def wrap(layer):
        if layer.name in chosen:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    pruned = k2.models.clone_model(twin, clone_function=wrap)
    info = fit(tf, k2, pruned, data, job, [tfmot.sparsity.keras.UpdatePruningStep()], start_from_epoch=start_epoch)
    info["schedule"] = {"kind": "polynomial decay", "initial_sparsity": 0.0, "final_sparsity": sparsity,
                        "begin_step": 0, "end_step": end, "frequency": frequency,
                        "final_sparsity_from_epoch": start_epoch + 1}
    return tfmot.sparsity.keras.strip_pruning(pruned), info


def run_cluster(tf, k2, tfmot, twin, spec, data, job):
    clusters = int(job["clusters"])
    chosen = set(job["layers"])
    init = tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS

    def wrap(layer):
        if layer.name in chosen:
            return tfmot.clustering.keras.cluster_weights(layer, number_of_clusters=clusters,
                                                          cluster_centroids_init=init)
        return layer

    clustered = k2.models.clone_model(twin, clone_function=wrap)
    info = fit(tf, k2, clustered, data, job)
    info["clusters"] = clusters
    return tfmot.clustering.keras.strip_clustering(clustered), info


def run_qat(tf, k2, tfmot, twin, spec, data, job, folder):
    try:
        quantized = tfmot.quantization.keras.quantize_model(twin)
    except (ValueError, RuntimeError) as err:
        raise JobError(f"tfmot cannot quantise this model for training: {str(err).splitlines()[0]}") from None
    info = fit(tf, k2, quantized, data, job)
    converter = tf.lite.TFLiteConverter.from_keras_model(quantized)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    (folder / "qat.tflite").write_bytes(converter.convert())
    # The float model with the QAT-trained weights: the wrappers keep each layer's variables under
    # the layer's own names (``conv2d/kernel:0``), beside their quantiser ranges.
    trained = {w.name: w for w in quantized.weights}
    for layer in spec_layers(spec, twin):
        if layer.weights:
            missing = [w.name for w in layer.weights if w.name not in trained]
            if missing:
                raise JobError(f"layer '{layer.name}' lost weights {missing} in tfmot's quantize_model; "
                               f"this model cannot be quantised for training here.")
            layer.set_weights([trained[w.name].numpy() for w in layer.weights])
    return twin, info


def layer_stats(spec, model, chosen):
    rows = []
    for entry, layer in zip(spec["layers"], spec_layers(spec, model)):
        weights = layer.get_weights()
        if not weights:
            continue
        kernel = weights[0]
        rows.append({"name": entry["name"], "class": entry["class"], "params": int(sum(w.size for w in weights)),
                     "nonzero": int(sum(np.count_nonzero(w) for w in weights)),
                     "kernel_size": int(kernel.size), "kernel_nonzero": int(np.count_nonzero(kernel)),
                     "kernel_unique": int(len(np.unique(kernel))), "compressed": entry["name"] in chosen})
    return rows


def main(folder):
    folder = Path(folder)
    job = json.loads((folder / "job.json").read_text())
    spec = json.loads((folder / "spec.json").read_text())
    try:
        import tensorflow as tf
        import tf_keras as k2

        tf.get_logger().setLevel("ERROR")
        data = dict(np.load(folder / "data.npz"))
        twin = build_twin(spec, k2)
        set_weights(spec, twin, folder / "weights.npz")
        result = {"twin_max_abs_diff": check_twin(twin, data["x_probe"], data["y_probe"]),
                  "tf_keras": k2.__version__}
        emit(event="twin", max_abs_diff=result["twin_max_abs_diff"])
        method = job["method"]
        if method != "check":
            import tensorflow_model_optimization as tfmot

            result["tfmot"] = getattr(tfmot, "__version__", "?")
            runner = {"prune": run_prune, "cluster": run_cluster}.get(method)
            if method == "qat":
                final, info = run_qat(tf, k2, tfmot, twin, spec, data, job, folder)
            else:
                final, info = runner(tf, k2, tfmot, twin, spec, data, job)
            result["fit"] = info
            arrays = {}
            for i, layer in enumerate(spec_layers(spec, final)):
                for j, w in enumerate(layer.get_weights()):
                    arrays[f"{i}/{j}"] = np.asarray(w)
            np.savez(folder / "weights_out.npz", **arrays)
            np.save(folder / "probe_out.npy", predict(final, data["x_probe"]))
            result["layers"] = layer_stats(spec, final, set(job.get("layers", ())))
        result["tf_keras_is_legacy"] = os.environ.get("TF_USE_LEGACY_KERAS") == "1"
    except JobError as err:
        result = {"error": str(err)}
    (folder / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
