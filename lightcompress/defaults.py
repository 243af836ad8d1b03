"""Default settings, each with the measurement that chose it. No Keras here: the CLI reads these
before Keras is imported."""

# The demo's data set: scikit-learn's 1,797 real 8x8 digits, offline. No other command has a default
# data set: one that needs data and is given none says so (data.sets.required); a silent default
# gave meaningless accuracies on the wrong images (evaluate of a 28x28 model, 0.1167 with --resize).
DEMO_DATASET = "digits"

DEFAULT_EPOCHS = 3
# compress's fine-tuning budget: at most this many epochs, stopped early (DEFAULT_PATIENCE) once the
# held-out training slice stops improving. Measured (docs/RESULTS.md, both real CNNs, 10x and 20x):
# every 3-epoch run was still improving at its last epoch, and 8 epochs recovered 1.3 and 2.4 more
# points at 20x; 5 keeps the wall time within 1.5x of the 3-epoch default.
DEFAULT_COMPRESS_EPOCHS = 5
DEFAULT_BATCH_SIZE = 64
# Peak learning rate; cosine decay to 5%. Measured on fmnist_cnn_keras2 rank 8, 1 epoch:
# 3e-4 -> 0.883, 1e-3 -> 0.894, 3e-3 -> 0.899 (3e-3 riskier for longer runs).
DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_VALIDATION_SPLIT = 0.1
DEFAULT_PATIENCE = 2

# compress's epoch budget grows beyond 10x fewer params: one epoch per unit of the factor above 10,
# at most 15 (20x: 15). Measured at 20x (docs/RESULTS.md 2b, fmnist_cnn_keras3.h5): 5 epochs -5.53
# points, 8 -4.28, 15 -3.15, and every run was still improving at its last epoch; rank-2 and
# rank-3 layers need the longer run, and early stopping ends it when the held-out slice stops improving.
MOST_COMPRESS_EPOCHS = 15


def compress_epochs(target_params=None) -> int:
    """compress's epoch budget for a params budget (a fraction; None: any other budget):
    ``DEFAULT_COMPRESS_EPOCHS`` up to 10x fewer params, one more per unit of the factor above 10,
    at most ``MOST_COMPRESS_EPOCHS``.

    >>> [compress_epochs(f) for f in (None, 0.2, 0.1, 1 / 12, 1 / 15, 0.05, 0.01)]
    [5, 5, 5, 7, 10, 15, 15]
    """
    if not target_params:
        return DEFAULT_COMPRESS_EPOCHS
    extra = max(0, round(1 / target_params - 10))
    return min(DEFAULT_COMPRESS_EPOCHS + extra, MOST_COMPRESS_EPOCHS)


# ... and that longer budget trains at a higher peak learning rate. Measured at 20x with 15 epochs
# (docs/RESULTS.md 2b): 3e-3 against 1e-3 lost 3.35 against 4.84 points on fmnist_cnn_keras2.h5 and
# 2.64 against 3.15 on fmnist_cnn_keras3.h5.
LONG_BUDGET_LEARNING_RATE = 3e-3


def compress_learning_rate(target_params=None) -> float:
    """compress's peak learning rate for a params budget: ``LONG_BUDGET_LEARNING_RATE`` where the
    epoch budget is longer than ``DEFAULT_COMPRESS_EPOCHS`` (beyond 10x), else the default.

    >>> [compress_learning_rate(f) for f in (None, 0.1, 1 / 12, 0.05)]
    [0.001, 0.001, 0.003, 0.003]
    """
    long_budget = compress_epochs(target_params) > DEFAULT_COMPRESS_EPOCHS
    return LONG_BUDGET_LEARNING_RATE if long_budget else DEFAULT_LEARNING_RATE


# Distillation. Measured on fmnist_cnn_keras3.h5 at 5x fewer params, 3 epochs: alpha 0.5/T 4 ->
# 0.8883, 0.7/2 -> 0.8984, 0.9/2 -> 0.9008, no distillation -> 0.9021 (docs/RESULTS.md).
DEFAULT_ALPHA = 0.9
DEFAULT_TEMPERATURE = 2.0

# Layers below this many parameters are left alone: on fmnist_cnn_keras2.h5 factorising the
# 640-parameter first conv and the 650-parameter head saves ~1% and costs most of the accuracy.
DEFAULT_MIN_PARAMS = 1000

# compress: training images held out to judge sensitivity (never test images).
DEFAULT_HOLDOUT = 1000

# compress --allocation: "sensitivity" (each layer's loss per rank measured on the held-out images)
# or "error" (each layer's output error on the calibration images; no model evaluated). Sensitivity
# stays the default: the two have not yet been benchmarked against each other.
ALLOCATION_CHOICES = ("sensitivity", "error")
DEFAULT_ALLOCATION = "sensitivity"
# convert --allocation, for a params or MACs budget with a data set: "both" plans it each way, builds
# both and keeps the one whose outputs on held-out training images are closer to the original's (KL)
# (flows/best_allocation.py). Measured without fine-tuning (docs/RESULTS.md): neither wins
# everywhere (fmnist_cnn_keras3.h5: error 0.11 / sensitivity 0.26 points lost at 2x, 0.75 / 0.39 at 3x).
# "auto" (the default) is "both" where measuring every layer's sensitivity costs at most
# AFFORDABLE_MACS, else "error" (the plan says so).
CONVERT_ALLOCATION_CHOICES = ("auto", "both", "error", "sensitivity")
DEFAULT_CONVERT_ALLOCATION = "auto"
# ... on this many held-out training images: convert trains on none, so holding out more costs only
# evaluation time, and halves the variance of the sensitivities and of the choice against compress's
# 1,000 (fmnist_cnn_keras3.h5 at 3x: 1,000 held out lost 0.51 points, 2,000 lost 0.39).
CONVERT_HOLDOUT = 2000

# export --quantize int8: training images drawn to calibrate activation ranges (never test images).
DEFAULT_CALIBRATION = 300

# A layer is factorised only at ranks saving at least this share of its kernel's weights
# (measured: ResNet50 plans converted 36 of 54 layers for under 5% each, costing accuracy for
# almost nothing). Below it the layer is kept.
DEFAULT_MIN_SAVING = 0.2

# Data-aware factors: training images whose layer inputs are accumulated (never test images).
# 2,000 is what the issue's measurement used; the covariances of the real models' layers
# (n <= 1,600) are full rank from it. compress and inspect calibrate on this many.
DEFAULT_CALIBRATION_SAMPLES = 2000

# convert with a data set has no fine-tuning after it, so its factors are the result: where it can,
# it calibrates layer by layer ("data-aware+sequential") on more images (one data-aware pass stays
# on DEFAULT_CALIBRATION_SAMPLES: 10,000 bought it 0.0-0.1 points). Measured (docs/RESULTS.md, convert
# --target-params 1/2, 1/3, 1/5, both real CNNs): sequential on 2,000 images lost 0.54/0.99/2.49
# points on fmnist_cnn_keras2.h5 (its 1,600-wide dense layer's cross moments from 2,000 rows
# overfit), on 10,000 images 0.19/0.42/1.81, against 0.34/0.82/2.10 for one data-aware pass.
CONVERT_CALIBRATION_SAMPLES = 10_000
# ... fewer when that many inputs would take more than this many bytes (ImageNet-sized inputs:
# 2,000 as before), never fewer than DEFAULT_CALIBRATION_SAMPLES.
CALIBRATION_BYTES = 256 << 20
# ... and layer by layer only while that costs at most this many multiply-accumulates (one pass
# over the calibration images per factorisable layer; about a minute on 2 cores); above it,
# one data-aware pass (ResNet50 on 2,000 images would take about 50 passes of 8e12). The same
# bound decides whether convert's "auto" allocation measures each layer's sensitivity.
AFFORDABLE_MACS = 1e12


def convert_calibration_samples(example_bytes: int) -> int:
    """convert's calibration images for inputs of ``example_bytes`` each.

    >>> [convert_calibration_samples(b) for b in (28 * 28 * 4, 224 * 224 * 3 * 4)]
    [10000, 2000]
    """
    fits = CALIBRATION_BYTES // max(int(example_bytes), 1)
    return int(max(DEFAULT_CALIBRATION_SAMPLES, min(CONVERT_CALIBRATION_SAMPLES, fits)))


# ... and only on at least this many calibration images per input of the widest Dense layer (its
# cross moments come from one row per image): fmnist_cnn_keras2.h5's 1,600-wide layer lost more
# layer by layer than in one pass on 2,000 images (1.25 per input) and less on 10,000 (6.25);
# fmnist_cnn_keras3.h5's 576-wide one lost less on 2,000 (3.5 per input).
SEQUENTIAL_IMAGES_PER_INPUT = 3


def convert_method(samples: int, macs_per_example: float, layers: int, widest_dense: int = 0) -> str:
    """convert's factorisation method with calibration data: layer by layer when its passes
    (``layers`` of them over ``samples`` inputs of ``macs_per_example``) cost at most
    ``AFFORDABLE_MACS`` and ``samples`` are at least ``SEQUENTIAL_IMAGES_PER_INPUT`` per input of
    the widest Dense layer, else one data-aware pass.

    >>> convert_method(10_000, 5e6, 2, 1600), convert_method(2000, 5e6, 2, 1600), convert_method(2000, 4e9, 53)
    ('data-aware+sequential', 'data-aware', 'data-aware')
    """
    affordable = samples * macs_per_example * layers <= AFFORDABLE_MACS
    enough = samples >= SEQUENTIAL_IMAGES_PER_INPUT * widest_dense
    return "data-aware+sequential" if affordable and enough else "data-aware"

# conv_mode (--conv-mode, LayerFilter(conv_mode=...)): how Conv2D kernels are factorised. channel
# (kxk then 1x1), spatial (kx1 then 1xk), tucker (1x1, kxk core, 1x1), or auto: every mode of the
# layer's type, the one with the lower measured error chosen per layer. The one list of the values
# a user may give; the first three are the Conv2D modes of the layer registry.
CONV_MODE_CHOICES = ("channel", "spatial", "tucker", "auto")

# Streamed sources whose length is unknown (module:function) are read at most this many examples
# per split unless train_limit/test_limit say how many to use: a generator that never ends then
# stops with an error naming the limit instead of hanging. 10 million is about 8 times ImageNet-1k's
# 1.28 million training images, the largest set this tool is meant for.
MAX_STREAM_EXAMPLES = 10_000_000
# The one default of conv_mode, for the CLI (convert, compress), the Python verbs and LayerFilter
# alike: auto, each Conv2D in the mode (channel, spatial, Tucker-2) with the lowest measured error
# at its budget. Measured (docs/RESULTS.md, convert --target-params, data-aware, no fine-tuning):
# at 5x auto lost 2.10 / 2.81 points on the two real CNNs where channel lost 6.03 / 9.72. With a
# fixed --rank N every mode keeps rank N and auto picks the mode with the lowest error at N.
DEFAULT_CONV_MODE = "auto"

# tradeoffs: the low-rank (and pruning / clustering) budgets tried when --budgets is not given:
# 2x, 5x and 10x fewer params, the range compress is used at (docs/RESULTS.md reports 5x).
DEFAULT_TRADEOFF_BUDGETS = (0.5, 0.2, 0.1)
# tradeoffs' recommendation: the smallest / fastest candidate losing at most this many accuracy
# points against the original (issue 25's "within 1 point").
DEFAULT_TRADEOFF_MAX_DROP = 1.0


# Without labelled data, a budget spent by weight error alone once cut a MobileNetV2's last 1x1
# conv to rank 1 (2.5% of its spectral energy) and an LSTM's Embedding to rank 2 of 32, and wrecked
# both models (issue 39). No budget planned without labelled data takes a layer below this fraction
# of its energy (1 - relative error squared: of the kernel on weights alone, of the layer's outputs
# on samples or synthesised calibration inputs): a budget that cannot be met above every layer's
# floor is refused, naming the smallest that can.
NO_DATA_ENERGY_FLOOR = 0.5
