"""Model files saved by older Keras, made loadable by rewriting their config before Keras sees it.

Nothing in the file is executed: the config is JSON, rewritten as data, and the rewritten copy
is what Keras loads (the user's file is never touched). Each kind of rewrite is reported in one
line (see ``Rewrites.lines``):

- initializer, regularizer and constraint configs carrying ``dtype`` (TF 2.0-2.3 tf.keras);
- activations saved as TensorFlow function names (``softmax_v2`` is ``softmax``);
- an input shape with ``None`` where the first weighted layer's kernel says the size;
- HDF5 content under a ``.keras`` name (the format is sniffed from the first bytes).

>>> config = {"class_name": "Sequential", "config": {"layers": [
...     {"class_name": "Dense", "config": {"name": "d", "activation": "softmax_v2",
...      "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None, "dtype": "float32"}}}}]}}
>>> fixed, done = rewrite_config(config)
>>> fixed["config"]["layers"][0]["config"]["activation"], done.lines()
('softmax', ["dropped 'dtype' from 1 initializer config (layer 'd')", "activation 'softmax_v2' read as 'softmax' (layer 'd')"])
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"

# TensorFlow function names saved as activations by tf.keras 2.x, and the Keras 3 name for each.
ACTIVATION_RENAMES = {"softmax_v2": "softmax", "log_softmax_v2": "log_softmax", "relu_v2": "relu",
                      "swish_v2": "swish", "gelu_v2": "gelu"}
OBJECT_KEYS = ("_initializer", "_regularizer", "_constraint")
SHAPE_KEYS = ("batch_shape", "batch_input_shape")


def sniff(path) -> str | None:
    """The file's real format from its first bytes: "h5", "keras" (a zip archive) or None.

    An HDF5 file may start with a user block (``h5py.File(..., userblock_size=512)``): its
    signature is then at 512, 1024, 2048, ... (where the HDF5 library itself looks), and the first
    bytes are anything, a zip's magic included. A zip's magic at 0 is taken for a zip unless the
    file has no zip directory at its end and an HDF5 signature at a user-block offset.
    """
    import zipfile

    with open(path, "rb") as f:
        head = f.read(8)
        if head.startswith(HDF5_MAGIC):
            return "h5"
        size = f.seek(0, 2)
        offset, user_block = 512, False
        while offset + len(HDF5_MAGIC) <= size and not user_block:
            f.seek(offset)
            user_block = f.read(len(HDF5_MAGIC)) == HDF5_MAGIC
            offset *= 2
        if head.startswith(ZIP_MAGIC) and not (user_block and not zipfile.is_zipfile(f)):
            return "keras"
    return "h5" if user_block else None


@dataclass
class Rewrites:
    """What was rewritten, by kind: {kind: [layer names or details]}."""

    done: dict = field(default_factory=dict)

    def add(self, kind: str, detail: str):
        self.done.setdefault(kind, []).append(detail)

    def __bool__(self):
        return bool(self.done)

    def lines(self) -> list[str]:
        out = []
        for kind, details in self.done.items():
            layers = ", ".join(f"'{d}'" for d in dict.fromkeys(details))
            if kind == "dtype":
                n = len(details)
                out.append(f"dropped 'dtype' from {n} initializer config{'s' if n != 1 else ''} "
                           f"(layer{'s' if len(set(details)) != 1 else ''} {layers})")
            elif kind.startswith("activation:"):
                old, new = kind.split(":", 1)[1].split("->")
                out.append(f"activation '{old}' read as '{new}' (layer{'s' if len(set(details)) != 1 else ''} {layers})")
            else:
                out.extend(f"{kind}: {d}" for d in details)
        return out


def layer_configs(config):
    """Every layer config in a model config (a dict with ``class_name`` and a ``config`` dict),
    nested models included."""
    if isinstance(config, dict):
        if "class_name" in config and isinstance(config.get("config"), dict):
            yield config
        for value in config.values():
            yield from layer_configs(value)
    elif isinstance(config, list):
        for value in config:
            yield from layer_configs(value)


def _name(layer) -> str:
    return str(layer["config"].get("name", "?"))


def _shape_holders(config) -> list:
    """The dicts that may declare an input shape: every layer's config and the model's own."""
    return [layer["config"] for layer in layer_configs(config)] + [config.get("config") or {}]


def _drop_object_dtypes(layer, done: Rewrites):
    for key, value in layer["config"].items():
        if key.endswith(OBJECT_KEYS) and isinstance(value, dict) and isinstance(value.get("config"), dict):
            if "dtype" in value["config"]:
                del value["config"]["dtype"]
                done.add("dtype", _name(layer))


def _rename_activation(layer, done: Rewrites):
    value = layer["config"].get("activation")
    if isinstance(value, str) and value in ACTIVATION_RENAMES:
        layer["config"]["activation"] = ACTIVATION_RENAMES[value]
        done.add(f"activation:{value}->{ACTIVATION_RENAMES[value]}", _name(layer))


def _fill_input_shape(config, fan_in, done: Rewrites):
    """A declared input shape whose last size is None, filled from the first kernel's fan-in."""
    if fan_in is None:
        return
    for holder in _shape_holders(config):
        for key in SHAPE_KEYS + ("build_input_shape",):
            shape = holder.get(key) if isinstance(holder, dict) else None
            if isinstance(shape, list) and len(shape) >= 2 and shape[-1] is None:
                holder[key] = shape[:-1] + [int(fan_in)]
                where = holder.get("name", "the model")
                done.add("input shape", f"{key} of '{where}' {tuple(shape)} -> {tuple(holder[key])} "
                                        f"(from the first kernel's input size)")


def needs_fan_in(config) -> bool:
    """Whether a declared input shape ends in None (the file's first kernel is then read)."""
    holders = _shape_holders(config)
    return any(isinstance(h.get(k), list) and len(h[k]) >= 2 and h[k][-1] is None
               for h in holders if isinstance(h, dict) for k in SHAPE_KEYS + ("build_input_shape",))


def rewrite_config(config, fan_in=None) -> tuple[dict, Rewrites]:
    """(a rewritten copy of ``config``, what was rewritten). ``fan_in``: the input size of the
    model's first kernel, read from the file's weights (fills an input shape ending in None)."""
    config = copy.deepcopy(config)
    done = Rewrites()
    for layer in layer_configs(config):
        _drop_object_dtypes(layer, done)
        _rename_activation(layer, done)
    _fill_input_shape(config, fan_in, done)
    return config, done


def first_kernel_fan_in(path, fmt) -> int | None:
    """The input size of the first kernel stored in a model file (``kernel.shape[-2]``: a Dense's
    input units, a convolution's input channels), or None."""
    import h5py

    found = []

    def visit(name, obj):
        if not found and isinstance(obj, h5py.Dataset) and obj.ndim >= 2:
            found.append(int(obj.shape[-2]))

    try:
        if fmt == "keras":
            import io
            import zipfile

            with zipfile.ZipFile(path) as archive:
                if "model.weights.h5" not in archive.namelist():
                    return None
                with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as f:
                    f.visititems(visit)
        else:
            with h5py.File(path, "r") as f:
                group = f["model_weights"] if "model_weights" in f else f
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("layer_names", [])]
                for name in names or list(group):
                    if name in group:
                        group[name].visititems(visit)
                    if found:
                        break
    except (OSError, KeyError, ValueError):
        return None
    return found[0] if found else None


def write_copy(path, fmt, config, folder) -> Path:
    """A copy of the model file at ``path`` in ``folder`` holding ``config``, named for its real
    format (``.h5`` or ``.keras``)."""
    import json
    import shutil
    import zipfile

    target = Path(folder) / ("model.h5" if fmt == "h5" else "model.keras")
    if fmt == "h5":
        import h5py

        shutil.copyfile(path, target)
        with h5py.File(target, "r+") as f:
            f.attrs["model_config"] = json.dumps(config)
        return target
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = json.dumps(config).encode() if item.filename == "config.json" else src.read(item.filename)
            dst.writestr(item, data)
    return target
