"""The ``finetune`` flow on files: fine-tune (optionally distilled), save the model and its history, report."""


from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import report
from ..data.sets import DataSpec, required
from ..errors import OptionError
from ..io import models as model_io
from ..training import distribute
from ..training import finetune as ft
from .common import data_inputs, load_inputs, no_progress, stem, tune


@dataclass(frozen=True)
class FinetuneSettings:
    """finetune's choices, checked once (``make``): the ``FitSettings``, the teacher model file
    and how the student learns from it (a ``Distillation``; None without a teacher)."""

    fit: ft.FitSettings
    teacher: Path | None = None
    distillation: ft.Distillation | None = None

    @classmethod
    def make(cls, settings: ft.FitSettings | None = None, *, teacher=None, alpha=None,
             temperature=None) -> FinetuneSettings:
        """The settings of a fine-tune, refused before any work: devices the backend cannot see,
        ``alpha`` or ``temperature`` without a ``teacher``, a mix out of range."""
        fit = settings or ft.FitSettings()
        distribute.placement(fit.devices)
        given = {k: v for k, v in (("alpha", alpha), ("temperature", temperature)) if v is not None}
        if teacher is None and given:
            raise OptionError(f"{' and '.join(given)} only apply with a teacher model; give teacher too.")
        return cls(fit=fit, teacher=None if teacher is None else Path(teacher),
                   distillation=None if teacher is None else ft.Distillation(**given))


def finetune_file(source, output=None, settings: FinetuneSettings | None = None, *, data: DataSpec | None = None,
                  force=False, trust=False, callbacks=(), stage=no_progress) -> dict:
    """Fine-tune the model in ``source`` as ``settings`` say (``FinetuneSettings.make``; default:
    ``FitSettings``' defaults, no teacher), distilled from ``settings.teacher`` if given, save it
    to ``output`` (default ``<stem>.tuned.keras``) with its history beside it
    (``<output stem>.history.json``), and report."""
    source = Path(source)
    data = required(data)  # none given: said before any other check
    settings = settings or FinetuneSettings.make()
    teacher = settings.teacher
    inputs = [source] + ([teacher] if teacher else []) + data_inputs(data)
    target = model_io.check_output(output or source.with_name(f"{stem(source)}.tuned.keras"),
                                   force=force, inputs=inputs)
    history_path = model_io.check_output(target.with_name(f"{target.stem}.history.json"), force=force,
                                         inputs=inputs, suffixes=(".json",))
    net, prepared = load_inputs(source, data, trust, stage, stream=True)
    tutor = None
    if teacher is not None:
        with stage(f"loading teacher {teacher}"):
            mix = settings.distillation
            tutor = ft.Teacher(model_io.load_model(teacher, trust=trust), mix.alpha, mix.temperature)
    fit, before, after = tune(net, prepared, settings.fit, tutor, callbacks)
    out = report.finetune_dict(source, target, prepared, fit, before, after)
    index, count = distribute.process()
    if count > 1:  # several hosts: every process holds the same weights, process 0 writes them
        out["written_by"] = f"process 0 of {count}"
    if index == 0:
        model_io.save_model(net, target, force=force, inputs=inputs)
        model_io.write_json(out, history_path, force=force, inputs=inputs)
    return out

