"""The tf_keras oracle on a sample of the legacy corpus (slow; needs the files).

Set ``LIGHTCOMPRESS_CORPUS`` to the folder holding the files of
``benchmarks/legacy_corpus_manifest.json`` (``python benchmarks/legacy_corpus.py fetch --from ...
--to DIR``); without it the tests skip. Each file is loaded by tf_keras and by
``lightcompress.load_model`` in child processes of their own (``legacy_corpus.run_one``), both
predict the same inputs, and the outputs must agree within 1e-5.
"""

import importlib.util
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = os.environ.get("LIGHTCOMPRESS_CORPUS")
# One file per rule and per kind users have: Teachable Machine (groups, nested lists), LSTM
# (time_major), a Sequential without InputLayer (Dense, Conv2D), Keras 2.2 bare-list Sequential
# with hard_sigmoid, a Bidirectional GRU, a tf.keras 2.15 .keras, Keras 2.0 mini-Xception.
SAMPLE = [
    "010-teachable-machine-keras-model",
    "001-stockpredictionlstm-keras-model",
    "012-python-chatbot-chatbot-model",
    "021-basicdcgan-discriminator",
    "015-mario-level-generator-model",
    "028-comparing-multiple-pre-trained-bigru-model",
    "043-dat255-voicecommandassistant-lstm-mfcc",
    "002-face-classification-fer2013-mini-xception-00-0-47",
]


def _benchmark():
    spec = importlib.util.spec_from_file_location("legacy_corpus", ROOT / "benchmarks" / "legacy_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # two child processes per file, some 20 s each
@pytest.mark.skipif(not CORPUS, reason="LIGHTCOMPRESS_CORPUS (the legacy corpus folder) is not set")
@pytest.mark.parametrize("entry_id", SAMPLE)
def test_a_corpus_file_predicts_what_tf_keras_predicts(entry_id):
    bench = _benchmark()
    entries = {e["id"]: e for e in json.loads((ROOT / "benchmarks" / "legacy_corpus_manifest.json").read_text())}
    entry = entries[entry_id]
    if not (Path(CORPUS) / entry["file"]).is_file():
        pytest.skip(f"{entry['file']} is not in {CORPUS}")
    record = bench.run_one(entry, Path(CORPUS), timeout=300, convert=False)
    assert record["oracle"]["ok"], record["oracle"]
    assert record["light"]["ok"], record["light"].get("error")
    assert record["light"]["diff"] is not None and record["light"]["diff"] <= bench.TOLERANCE, record["light"]
