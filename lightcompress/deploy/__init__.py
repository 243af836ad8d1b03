"""Export, loading and timing of deployable artefacts. The export targets register first
(``builtin_targets``), so the registry (``targets``) is whole wherever a module of this package reads it."""

from . import builtin_targets  # noqa: F401  (the built-in export targets register)
