"""Train the small sample models on the embedded digits data set (deterministic: fixed seeds).

    python sample_models/train_samples.py          # writes sample_models/digits_*.keras

The paper's CNN trained on Fashion-MNIST (paper_cnn_fmnist.keras) is made by
`python benchmarks/paper_table.py paper`, which also reproduces the paper's table.
"""

from pathlib import Path

from lightcompress.data import sets as data
from lightcompress.io import models as model_io
from lightcompress.flows import zoo
from lightcompress.training import finetune
from lightcompress.training.evaluation import evaluate

HERE = Path(__file__).resolve().parent
SAMPLES = {
    # file: (builder, input shape, epochs)
    "digits_cnn.keras": (zoo.dense_heavy_cnn, (8, 8, 1), 30),
    "digits_mlp.keras": (zoo.mlp, (8, 8), 40),
}


def train_sample(name, out_dir=HERE, force=True):
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()  # same file on every run (CPU)
    build, shape, epochs = SAMPLES[name]
    model = build(shape)
    prepared = data.prepare(data.load_dataset("digits"), model)
    zoo.train(model, prepared, epochs, batch_size=32, learning_rate=1e-3, seed=0)
    model_io.save_model(model, Path(out_dir) / name, force=force)
    return model, evaluate(model, prepared)


if __name__ == "__main__":
    for name in SAMPLES:
        model, ev = train_sample(name)
        print(f"{name}: {model.count_params():,} params, test accuracy {ev.accuracy:.4f} "
              f"({ev.examples} digits test images)")
