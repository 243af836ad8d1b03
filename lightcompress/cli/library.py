"""The library as the commands reach it: deferred (``lightcompress._deferred``), so ``--help``,
``--version`` and usage errors answer before Keras starts; each is imported when a command first
uses it."""

from __future__ import annotations

from .._deferred import deferred

flows = deferred("lightcompress.flows")
model_io = deferred("lightcompress.io.models")
plots = deferred("lightcompress.report.plots")
report = deferred("lightcompress.report")
RichProgress = deferred("lightcompress.cli.progress", "RichProgress")
