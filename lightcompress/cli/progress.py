"""A rich progress display for Keras training: epoch, step, loss, accuracy, ETA."""

from __future__ import annotations

import keras
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .._deferred import deferred

iter_layers = deferred("lightcompress.factorization.candidates", "iter_layers")
registry = deferred("lightcompress.layers.registry")


def _fmt(logs, key):
    value = (logs or {}).get(key)
    return f"{float(value):.4f}" if value is not None else "-"


class RichProgress(keras.callbacks.Callback):
    """One live bar per epoch, and a line per finished epoch with its training and validation metrics."""

    def __init__(self, console: Console | None = None):
        super().__init__()
        self.steps = self.epochs = None  # read from Keras's fit parameters when training starts
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  acc {task.fields[acc]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,  # a log or a pipe: the epoch lines, no stray blank line
        )
        self.task = None

    def on_train_begin(self, logs=None):
        self.steps, self.epochs = self.params.get("steps"), self.params.get("epochs")
        self.console.print(self.heading(), highlight=False, markup=False)
        self.progress.start()

    def heading(self) -> str:
        """What is being trained, printed before the first epoch line (logs read in a file need it)."""
        model = self.model
        # by path (a subclassed model's attribute path, a nested model's prefix), every depth
        light = [f"{name} r{layer.rank}" for name, layer in (iter_layers(model) if model is not None else ())
                 if registry.twin_entry(layer) is not None]  # (a Conv2D's own `rank` is its spatial rank)
        what = f"{model.name}, {int(model.count_params()):,} params" if model is not None else "the model"
        if light:
            shown = ", ".join(light[:6]) + (f", +{len(light) - 6} more" if len(light) > 6 else "")
            what += f"; LightLayers {shown}"
        steps = f" of {self.steps} steps" if self.steps else ""
        return f"fine-tuning {what}: up to {self.epochs} epoch(s){steps}"

    def on_epoch_begin(self, epoch, logs=None):
        label = f"{epoch + 1}/{self.epochs}"
        self.task = self.progress.add_task("", total=self.steps, epoch=label, loss="-", acc="-")

    def on_train_batch_end(self, batch, logs=None):
        self.progress.update(self.task, completed=batch + 1, loss=_fmt(logs, "loss"),
                             acc=_fmt(logs, "accuracy"))

    def on_epoch_end(self, epoch, logs=None):
        self.progress.remove_task(self.task)
        self.console.print(
            f"epoch {epoch + 1}/{self.epochs}: loss {_fmt(logs, 'loss')} acc {_fmt(logs, 'accuracy')}"
            f" | val_loss {_fmt(logs, 'val_loss')} val_acc {_fmt(logs, 'val_accuracy')}",
            highlight=False,
        )

    def on_train_end(self, logs=None):
        self.progress.stop()

    def stop(self):
        """Close the display after an interrupted fit (Keras skips on_train_end then)."""
        self.progress.stop()
