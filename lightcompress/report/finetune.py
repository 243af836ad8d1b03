"""The ``finetune`` and ``evaluate`` reports."""

from __future__ import annotations



from dataclasses import asdict


from .convert import accuracy_line, before_after, before_after_lines
from .render import SCHEMA_VERSION, Section


def finetune_dict(source, output, prepared, fit, before, after) -> dict:
    """The `finetune` report (also the history file saved beside the model)."""
    return {
        "schema": SCHEMA_VERSION,
        "report": "finetune",
        "source": str(source),
        "output": str(output),
        "dataset": prepared.name,
        "train_images": prepared.count("train"),
        "heldout_images": int(round(prepared.count("train") * fit.settings.validation_split)),
        "data_changes": prepared.changes,
        "device": fit.device,
        "engine": fit.engine,
        "devices": fit.devices,
        "settings": asdict(fit.settings),
        "epochs_run": fit.epochs_run,
        "best_epoch": fit.best_epoch,
        "interrupted": fit.interrupted,
        "started_from_input": fit.started_from_input,
        "epoch_seconds": [round(s, 3) for s in fit.epoch_seconds],
        "learning_rates": fit.learning_rates,
        "history": fit.history,
        "accuracy": before_after(before, after),
    }


def finetune_sections(data: dict) -> list[Section]:
    lines = []
    if data.get("started_from_input"):
        lines.append("interrupted before the first epoch completed: the weights are the input's, unchanged")
    elif data["interrupted"]:
        lines.append("interrupted: kept the best weights of the completed epochs")
    seconds = data["epoch_seconds"]
    per_epoch = f"{sum(seconds) / len(seconds):.1f} s per epoch" if seconds else "no full epoch"
    held = data.get("heldout_images") or 0
    images = (f"{data['train_images'] - held:,} training images, {held:,} held out for validation" if held
              else f"{data['train_images']:,} training images")
    lines.append(
        f"fine-tuned {data['source']} on {data['dataset']} ({images}): "
        f"{data['epochs_run']} epoch(s), best {data['best_epoch']}, {per_epoch} on {data['device']}"
    )
    if data["data_changes"]:
        lines.append("data: " + "; ".join(data["data_changes"]))
    lines.extend(before_after_lines(data["accuracy"], f"the input, {data['source']}", "fine-tuned"))
    lines.append(f"saved {data['output']}")
    return [Section(lines=lines)]


def evaluation_dict(source, prepared, evaluation, device) -> dict:
    return {
        "schema": SCHEMA_VERSION,
        "report": "evaluate",
        "source": str(source),
        "dataset": prepared.name,
        "data_changes": prepared.changes,
        "device": device,
        **asdict(evaluation),
    }


def evaluation_sections(data: dict) -> list[Section]:
    return [Section(lines=[accuracy_line(f"{data['source']} on {data['dataset']}", data),
                           f"{data['seconds']:.2f} s on {data['device']}"])]
