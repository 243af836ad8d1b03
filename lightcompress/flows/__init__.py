"""The command flows, one module each: files in, report dicts out.

Each flow checks every output path and option before any work, loads the inputs, runs the stages
(load → analyse → plan → factorise → fine-tune → report → save), writes its outputs atomically,
never over an input, and returns the report dict (see ``report``). Front ends pass ``stage(text)``
(a context manager, e.g. a spinner) and training ``callbacks`` for progress.
"""

from .baseline import BaselineSettings, baseline_file
from .common import decomposition_progress, load_any, load_data_for, no_progress, stem
from .compare import CompareSettings, compare_files, compare_models
from .compress import compress, compress_file
from .convert import ConvertSettings, check_runtime, convert, convert_file
from .export import ExportSettings, export_file
from .finetune import FinetuneSettings, finetune_file
from .evaluate import evaluate_file
from .inspect import chosen_spectra, inspect_file, inspect_model, layer_errors, sensitivity_of
from .tradeoffs import TradeoffsSettings, tradeoffs_file

__all__ = [
    "BaselineSettings", "CompareSettings", "ConvertSettings", "ExportSettings", "FinetuneSettings", "TradeoffsSettings",
    "baseline_file", "check_runtime", "chosen_spectra", "compare_files", "compare_models", "compress", "compress_file",
    "convert", "convert_file", "decomposition_progress", "evaluate_file", "export_file", "finetune_file",
    "inspect_file", "inspect_model", "layer_errors", "load_any", "load_data_for", "no_progress", "sensitivity_of",
    "stem", "tradeoffs_file",
]
