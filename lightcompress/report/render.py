"""Layout and drawing shared by every report: ``Section`` (a titled table and lines of text), drawn with rich or as Markdown, JSON output, and the number formats the reports share."""

from __future__ import annotations



import json
import math
from dataclasses import dataclass, field

from rich import box
from rich.console import Console
from rich.table import Table



SCHEMA_VERSION = 1


@dataclass
class Section:
    title: str = ""
    columns: list = field(default_factory=list)  # names; a leading ">" right-aligns
    rows: list = field(default_factory=list)
    lines: list = field(default_factory=list)  # text printed after the table


def render(sections, console: Console | None = None):
    console = console or Console()
    for s in sections:
        if s.columns:
            table = Table(title=s.title or None, title_justify="left", box=box.SIMPLE_HEAD,
                          pad_edge=False, collapse_padding=True)
            for c in s.columns:
                right = c.startswith(">")
                table.add_column(c.lstrip(">"), justify="right" if right else "left",
                                 overflow="fold", no_wrap=right)
            for row in s.rows:
                table.add_row(*[str(v) for v in row])
            console.print(table)
        elif s.title:
            console.print(f"[bold]{s.title}[/bold]")
        for line in s.lines:
            console.print(line, highlight=False, markup=False)


def markdown(sections) -> str:
    out = []
    for s in sections:
        if s.title:
            out.append(f"### {s.title}\n")
        if s.columns:
            out.append("| " + " | ".join(c.lstrip(">") for c in s.columns) + " |")
            out.append("|" + "|".join("---:" if c.startswith(">") else "---" for c in s.columns) + "|")
            for row in s.rows:
                out.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
            out.append("")
        out.extend(f"{line}  " for line in s.lines)
        if s.lines:
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def print_json(data: dict, file=None):
    """One JSON document on stdout, or on ``file`` (no colours, no wrapping)."""
    print(json.dumps(data, indent=2), file=file)


def ratio(after, before):
    return round(after / before, 4) if before and after is not None else None


def num(n):
    return f"{n:,}" if n is not None else "-"


def size(n):
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024


def times(after, before):
    if not before or not after:
        return "-"
    if round(before / after, 2) == 1 and round(after / before, 2) == 1:
        return "about the same"
    return f"{before / after:.2f}x smaller" if after < before else f"{after / before:.2f}x larger"


def significant(v) -> str:
    """At least three significant digits, thousands separated: 2.13, 46.9, 469, 12,345."""
    if v == 0:
        return "0"
    decimals = max(0, 2 - math.floor(math.log10(abs(v))))
    return f"{v:,.{decimals}f}"


def time_unit(values_ms) -> tuple[str, float]:
    """µs when the smallest time is under 1 ms, else ms: (unit, factor from ms)."""
    known = [v for v in values_ms if v]
    return ("µs", 1000.0) if known and min(known) < 1 else ("ms", 1.0)


def duration(ms) -> str:
    """A time in µs or ms with at least three significant digits: "2.13 µs", "1.25 ms"."""
    if ms is None:
        return "-"
    unit, factor = time_unit([ms])
    return f"{significant(ms * factor)} {unit}"


def times_factor(after, before):
    """A change as a factor: 0.25x."""
    return f"{after / before:.3g}x" if before and after is not None else "-"


def shape_text(shape):
    return "x".join(str(d) for d in shape) if shape else "-"


def energy_text(v) -> str:
    """A kept energy fraction, never rounded up to 1 when some energy was dropped."""
    text = f"{v:.3f}"
    if v < 1 and text == "1.000":
        digits = 4
        while f"{v:.{digits}f}" == "1." + "0" * digits and digits < 12:
            digits += 1
        text = f"{v:.{digits}f}"
    return text


def percent(v):
    return "-" if v is None else f"{100 * v:.2f}%"
