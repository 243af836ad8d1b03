"""Export targets: the one registry of the artefacts lightcompress writes, loads and times in.

An ``ExportTarget`` declares what the rest of the code asks about a format: its name (and the
aliases ``format=`` also takes), the suffix of what it writes ("" = a folder), the quantisations
it writes, the packages it needs (with the install hint), its writer and its loader, whether
loading runs code held in the file (``runs_code``: needs ``trust=True``) or native code a damaged
file can crash (``native``: probed in a child process first), the runtime names a Keras model is
timed as it under (``runtime``: ``"litert"``, and ``"litert-int8"`` for its int8 quantisation),
and its default output name. ``export``, ``load_artifact``, ``Runtime``, ``compress(export=...)``
(``<format>-<quantisation>``, ``export_choices``) and the command line's choices and help all read
``targets()``: a new target is one ``register_target`` call (``tests/toy_export_target.py``).

A leaf: it imports nothing heavy and nothing else of ``deploy``. The built-in targets (keras,
tf_saved_model, litert, onnx) are registered by ``builtin_targets``, which ``lightcompress.deploy``
imports before any of its modules.

>>> get_target("saved_model").name, get_target("tflite").suffix
('tf_saved_model', '.tflite')
>>> get_target("tpu")
Traceback (most recent call last):
lightcompress.errors.ExportError: format='tpu' is unknown; use one of keras, saved_model, litert, onnx.
>>> list(export_choices())[2:6]
['litert', 'litert-float16', 'litert-dynamic', 'litert-int8']
>>> runtime_target("litert-int8")
(ExportTarget('litert'), 'int8')
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ExportError

# A target's ``missing`` message when it gives none: {format}, {missing} (the modules not
# importable here) and {install} are filled in.
MISSING = "format={format} needs the {missing} package(s), which are not installed here; install them with: {install}"


@dataclass(frozen=True)
class ExportTarget:
    """One kind of artefact. ``writer(lowered, path, options)`` writes the lowered Keras model
    (``options``: ``converter_options``'s); ``loader(path, threads, trust)`` returns a
    ``runtimes.Artifact``."""

    name: str  # canonical: ExportResult.format, Artifact.format (e.g. "tf_saved_model")
    suffix: str  # of what the writer writes; "" = a folder
    writer: Callable
    loader: Callable
    choice: str = ""  # how --format and messages spell it (default: name), e.g. "saved_model"
    aliases: tuple[str, ...] = ()  # other names format= takes
    read_suffixes: tuple[str, ...] = ()  # further suffixes loaded as this target (.h5 for keras)
    folder_marks: tuple[str, ...] = ()  # a folder target: a folder holding one of these files is one
    title: str = ""  # a folder target: what such a folder is called ("SavedModel")
    summary: str = ""  # --format help: what it writes (default: the suffix)
    quantizations: tuple[str, ...] = ("none",)
    quantize_help: str = ""  # --quantize help: what its quantisations do
    converter_options: Callable | None = None  # (quantize, int8_io, calibration arrays) -> writer options
    needs: tuple[str, ...] = ()  # modules export needs (checked before any work)
    install: str = ""  # how to install them
    missing: str = MISSING  # the one line when some are missing ({format}, {missing}, {install})
    loader_needs: tuple[str, ...] = ()  # modules the loader needs (none here: no probe, the loader says)
    backend: str = ""  # the Keras backend its writer needs ("" any)
    keras_model: bool = False  # a Keras model file: flows open it as a model, not only as an artefact
    runs_code: str = ""  # what loading runs ("a TensorFlow SavedModel: loading it runs ..."): needs trust=True
    native: str = ""  # the native runtime a damaged file can crash ("the LiteRT interpreter"): probed first
    runtime: str = ""  # the runtime name a Keras model is timed as this artefact ("" not timed)
    timed: tuple[str, ...] = ("none",)  # its quantisations timed: `runtime` for none, `runtime-<q>` else
    runtime_words: str = ""  # Runtime.describe: {model} (", full-int8 model"), {threads}, {s}
    output_name: Callable | None = None  # (stem, quantize) -> file name; default <stem>[.<q>]<suffix>

    def __post_init__(self):
        object.__setattr__(self, "choice", self.choice or self.name)

    def __repr__(self):
        return f"ExportTarget({self.name!r})"

    @property
    def is_folder(self) -> bool:
        return self.suffix == ""

    @property
    def reads(self) -> tuple[str, ...]:
        """Every suffix loaded as this target."""
        return tuple(s for s in (self.suffix, *self.read_suffixes) if s)

    def default_name(self, stem: str, quantize: str = "none") -> str:
        """The file (or folder) name written for a model called ``stem``, without a folder."""
        if self.output_name is not None:
            return self.output_name(stem, quantize)
        return f"{stem}{'' if quantize == 'none' else f'.{quantize}'}{self.suffix}"

    def runtime_name(self, quantize: str) -> str | None:
        """The runtime name timing this target at ``quantize``; None if it is not timed so."""
        if not self.runtime or quantize not in self.timed:
            return None
        return self.runtime if quantize == "none" else f"{self.runtime}-{quantize}"

    def missing_modules(self, modules=None) -> list[str]:
        """Of ``modules`` (default: ``needs``), those that cannot be imported here."""
        missing = []
        for name in self.needs if modules is None else modules:
            try:
                importlib.import_module(name)
            except ImportError:
                missing.append(name)
        return missing

    def require(self, modules=None):
        """Raise the target's one-line ExportError when ``modules`` (default: ``needs``) are missing."""
        missing = self.missing_modules(modules)
        if missing:
            raise ExportError(self.missing.format(format=self.choice, missing=", ".join(missing),
                                                  install=self.install))


_TARGETS: dict[str, ExportTarget] = {}


def targets() -> tuple[ExportTarget, ...]:
    """The registered targets, in registration order."""
    return tuple(_TARGETS.values())


def _names(target):
    return (target.name, target.choice, *target.aliases)


def register_target(target: ExportTarget) -> ExportTarget:
    """Make ``target`` reachable by its names (``export(format=...)``, the export command) and its
    suffixes (``load_artifact``). A name, a suffix and a runtime name are registered once
    (``unregister_target`` frees them)."""
    taken = {n: t for t in _TARGETS.values() for n in _names(t)}
    for name in _names(target):
        if name in taken:
            raise ExportError(f"an export target named {name!r} is already registered ({taken[name]!r}); give "
                              f"yours another name, or unregister_target({taken[name].name!r}) first.")
    for suffix in target.reads:
        other = next((t for t in _TARGETS.values() if suffix.lower() in map(str.lower, t.reads)), None)
        if other is not None:
            raise ExportError(f"suffix {suffix!r} is already loaded as {other.name!r}; a suffix names one target.")
    runtimes = {r for t in _TARGETS.values() for r in _runtime_names(t)}
    for name in _runtime_names(target):
        if name in runtimes or name == "keras":
            raise ExportError(f"runtime {name!r} is already registered; a runtime name times one target.")
    _TARGETS[target.name] = target
    return target


def unregister_target(name: str) -> ExportTarget:
    """Remove the target called ``name`` (or an alias of it) and return it (a test's toy cleans up so)."""
    return _TARGETS.pop(get_target(name).name)


def choices() -> list[str]:
    """The names ``format=`` is offered as, in registration order."""
    return [t.choice for t in _TARGETS.values()]


def get_target(name) -> ExportTarget:
    """The target called ``name`` (its name, spelling or an alias; a target is returned as it is)."""
    if isinstance(name, ExportTarget):
        return name
    for target in _TARGETS.values():
        if name in _names(target):
            return target
    raise ExportError("is unknown", option="format", value=name, allowed=f"one of {', '.join(choices())}")


def quantizations() -> list[str]:
    """Every quantisation some target writes, "none" first."""
    seen = []
    for target in _TARGETS.values():
        seen += [q for q in target.quantizations if q not in seen]
    return seen


def for_path(path) -> ExportTarget | None:
    """The target a path holds, by its suffix or, for a folder, its marks; None when none does."""
    path = Path(path)
    if path.is_dir():
        return next((t for t in _TARGETS.values() if any((path / m).exists() for m in t.folder_marks)), None)
    suffix = path.suffix.lower()
    return next((t for t in _TARGETS.values() if suffix in map(str.lower, t.reads)), None)


def export_choices() -> dict[str, tuple[ExportTarget, str]]:
    """``compress(export=...)``'s choices: ``<format>`` (float) and ``<format>-<quantisation>``,
    each with its (target, quantisation)."""
    return {(t.choice if q == "none" else f"{t.choice}-{q}"): (t, q)
            for t in _TARGETS.values() for q in t.quantizations}


def either(words) -> str:
    """``a``, ``a or b``, ``a, b or c``: choices in a sentence.

    >>> either(["keras", "saved_model", "litert"])
    'keras, saved_model or litert'
    """
    words = list(words)
    return " or ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} or {words[-1]}"


def _runtime_names(target):
    return [target.runtime_name(q) for q in target.timed if target.runtime_name(q)]


def runtime_names() -> tuple[str, ...]:
    """Where a Keras model can be timed: "keras" (its own forward pass), then each target's runtimes."""
    return ("keras", *[name for t in _TARGETS.values() for name in _runtime_names(t)])


def runtime_target(name) -> tuple[ExportTarget, str] | None:
    """(target, quantisation) of the artefact the runtime ``name`` times; None for "keras" or an unknown name."""
    for target in _TARGETS.values():
        for quantize in target.timed:
            if target.runtime_name(quantize) == name:
                return target, quantize
    return None


__all__ = ["ExportTarget", "choices", "either", "export_choices", "for_path", "get_target", "quantizations",
           "register_target", "runtime_names", "runtime_target", "targets", "unregister_target"]
