"""Does feature distillation help fine-tuning at 20x? (issue 24: "try keras.distillation.FeatureDistillation
on intermediate outputs; keep what measurably helps")

    python benchmarks/feature_distillation.py [MODEL] [FACTOR] [EPOCHS] [ARM,ARM]
        # defaults: ../shared/real_models/fmnist_cnn_keras2.h5, 20, 5; rows appended to
        # benchmarks/feature_distillation.jsonl

One data-aware conversion (`lightcompress convert MODEL --target-params 1/FACTOR -d fashion_mnist`),
then the same student fine-tuned two ways with ``keras.distillation.Distiller`` (teacher: the
original), same epochs, Adam at 1e-3 with cosine decay, batch 64, on the training split:

- "outputs": the label loss (weight 0.9) and the teacher's class probabilities (KL, weight 0.1),
  about what `compress` does by default;
- "outputs + features": the same, plus ``FeatureDistillation`` (MSE) at the output of every layer
  that was factorised, so each thin layer is pulled towards what the original layer computed.

Accuracy on the 10,000 test images (measured after training, never used for a decision).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "feature_distillation.jsonl"
DEFAULT_MODEL = HERE.parents[1] / "shared" / "real_models" / "fmnist_cnn_keras2.h5"


def _fine_tune(teacher, student, train, test, epochs, feature_layers, seed=0):
    import keras
    from keras.distillation import Distiller, FeatureDistillation

    keras.utils.set_random_seed(seed)
    losses = [FeatureDistillation(loss="kl_divergence")]  # the final class probabilities
    weights = [1.0]
    for teacher_name, student_name in feature_layers:
        losses.append(FeatureDistillation(loss="mse", teacher_layer_name=teacher_name, student_layer_name=student_name))
        weights.append(1.0)
    distiller = Distiller(teacher, student, losses, distillation_loss_weights=weights, student_loss_weight=0.9)
    x, y = train
    steps = epochs * (len(x) // 64)
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, steps, alpha=0.05)
    distiller.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy")
    start = time.perf_counter()
    distiller.fit(x, y, batch_size=64, epochs=epochs, verbose=0, shuffle=True)
    seconds = time.perf_counter() - start
    probs = student.predict(test[0], batch_size=512, verbose=0)
    return float((probs.argmax(axis=1) == test[1]).mean()), seconds


def _save(row):
    with OUT.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def main(model_path=DEFAULT_MODEL, factor=20, epochs=5, arms=("outputs", "outputs + features")):
    import keras
    from lightcompress.data.open import open_for_model
    from lightcompress.io import models as model_io
    from lightcompress.layers import registry
    from lightcompress.layers.base import base_name

    model_path = Path(model_path)
    with tempfile.TemporaryDirectory() as folder:
        light = Path(folder) / "student.keras"
        done = subprocess.run([sys.executable, "-m", "lightcompress", "convert", str(model_path), "--target-params",
                               str(1 / factor), "-d", "fashion_mnist", "-o", str(light)], capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(done.stderr)
        teacher = model_io.load_model(model_path)
        data = open_for_model(teacher, "fashion_mnist", in_memory=True)
        train, test = data.head("train", data.count("train")), data.head("test", data.count("test"))
        base = float((teacher.predict(test[0], batch_size=512, verbose=0).argmax(axis=1) == test[1]).mean())
        factorised = [(base_name(layer, None), layer.name) for layer in model_io.load_model(light).layers
                      if registry.twin_entry(layer) is not None]  # (the original's name, the twin's)
        for arm, layers in (("outputs", []), ("outputs + features", factorised)):
            if arm not in arms:
                continue
            student = model_io.load_model(light)
            teacher.trainable = False
            accuracy, seconds = _fine_tune(teacher, student, train, test, epochs, layers)
            row = {"model": model_path.name, "factor": factor, "epochs": epochs, "arm": arm, "features": layers,
                   "accuracy_before": round(base, 4), "accuracy_after": round(accuracy, 4),
                   "drop_points": round(100 * (base - accuracy), 2), "fit_s": round(seconds, 1)}
            _save(row)
            keras.backend.clear_session()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(*(args[:1] or [DEFAULT_MODEL]), *(int(a) for a in args[1:3]), *([args[3].split(",")] if len(args) > 3 else []))
