"""Plain progress lines for the Python verbs (``verbose=1``): one line per stage, step or epoch on
stderr, with the seconds since the verb started, so they read well in a log file or a notebook.

The flows' own hooks carry them: ``stage(text)`` (a context), ``on_step(done, total, name)``,
``warn(message)``, ``on_plan(plan)``, ``on_trial(trial)`` and a Keras callback for fitting. At
``verbose=0`` every hook is silent. (The command line draws rich displays on the same hooks.)
"""

from __future__ import annotations

import contextlib
import sys
import time

import keras

STEP_EVERY_S = 2.0  # a step line at most this often, besides each phase's first and last


def _fmt(logs, key):
    value = (logs or {}).get(key)
    return f"{float(value):.4f}" if value is not None else "-"


class Lines:
    """Progress lines of one verb, ``verb`` naming it on each line; silent when not ``verbose``."""

    def __init__(self, verb: str, verbose: int = 1, stream=None, phases=()):
        self.verb, self.verbose = verb, bool(verbose)
        self.stream = stream
        self.start = time.perf_counter()
        # what successive runs of on_step follow (a run restarts at done 0 or 1): format strings of
        # done, total, name and percent
        self.phases = list(phases)
        self._phase, self._last_done, self._last_line = -1, None, 0.0

    def say(self, text: str):
        if self.verbose:
            seconds = time.perf_counter() - self.start
            print(f"[{seconds:7.1f}s] {self.verb}: {text}", file=self.stream or sys.stderr, flush=True)

    @contextlib.contextmanager
    def stage(self, text: str):
        self.say(text)
        yield

    def warn(self, message: str):
        self.say(f"warning: {message}")

    def on_step(self, done, total, name):
        if not self.verbose:
            return
        if self._last_done is None or done < self._last_done or (done <= 1 and self._last_done >= 1):
            self._phase += 1  # a new run of steps: the next phase
            self._last_line = 0.0
        self._last_done = done
        phase = self.phases[min(self._phase, len(self.phases) - 1)] if self.phases else "{done}/{total} ({name})"
        now = time.perf_counter()
        if done in (0, 1) or done >= total or now - self._last_line >= STEP_EVERY_S:
            self._last_line = now
            percent = int(100 * done / total) if total else 100
            self.say(phase.format(done=done, total=total, name=name, percent=percent))

    def on_plan(self, plan):
        ranks = ", ".join(f"{p.name} r{p.rank}" for p in plan.converted[:6])
        more = f", +{len(plan.converted) - 6} more" if len(plan.converted) > 6 else ""
        self.say(f"plan ({plan.policy}): {len(plan.converted)} layer(s) converted: {ranks}{more}")

    def on_trial(self, trial):
        self.say(f"trial: keep {trial.target:.3f} of the params -> held-out drop {trial.drop_points:.2f} points")

    def callbacks(self) -> list:
        return [EpochLines(self)] if self.verbose else []


class EpochLines(keras.callbacks.Callback):
    """A line when fitting starts and one per finished epoch: loss, accuracy and their validation twins."""

    def __init__(self, lines: Lines):
        super().__init__()
        self.lines = lines
        self.epochs = None

    def on_train_begin(self, logs=None):
        self.epochs = self.params.get("epochs")
        steps = self.params.get("steps")
        model = self.model
        what = f"{model.name}, {int(model.count_params()):,} params" if model is not None else "the model"
        self.lines.say(f"fine-tuning {what}: up to {self.epochs} epoch(s)" + (f" of {steps} steps" if steps else ""))

    def on_epoch_end(self, epoch, logs=None):
        self.lines.say(f"fine-tuning: epoch {epoch + 1}/{self.epochs} loss {_fmt(logs, 'loss')} "
                       f"acc {_fmt(logs, 'accuracy')} val_loss {_fmt(logs, 'val_loss')} "
                       f"val_acc {_fmt(logs, 'val_accuracy')}")
