"""The one stage that renders results: JSON-ready dicts, rich tables, and Markdown.

Each report is first built as a dict with stable keys (the JSON form, documented in README.md),
then laid out once as a list of ``Section`` (``render``), and that layout is drawn either with
rich (terminal) or as Markdown, so the forms never disagree. One module per report (``convert``,
``finetune`` with ``evaluate``, ``inspect``, ``compare``, ``compress``, ``export``, ``baseline``,
``tradeoffs``);
pictures are drawn by ``plots`` from the same dicts.
"""

from .baseline import baseline_dict, baseline_sections
from .compare import compare_dict, compare_sections
from .compress import compress_dict, compress_sections, latency_sections, profile_dict
from .convert import before_after, conversion_dict, conversion_sections, difference_line
from .export import export_dict, export_sections
from .finetune import evaluation_dict, evaluation_sections, finetune_dict, finetune_sections
from .inspect import errors_sections, inspect_dict, inspect_sections, sensitivity_sections
from .render import SCHEMA_VERSION, Section, energy_text, markdown, print_json, render
from .tradeoffs import tradeoffs_dict, tradeoffs_sections

__all__ = [
    "SCHEMA_VERSION", "Section", "baseline_dict", "baseline_sections", "before_after", "compare_dict",
    "compare_sections", "compress_dict", "compress_sections", "conversion_dict", "conversion_sections",
    "difference_line", "energy_text", "errors_sections", "evaluation_dict", "evaluation_sections", "export_dict",
    "export_sections", "finetune_dict", "finetune_sections", "inspect_dict", "inspect_sections", "latency_sections",
    "markdown", "print_json", "profile_dict", "render", "sensitivity_sections", "tradeoffs_dict", "tradeoffs_sections",
]
