"""Markdown tables and the number formats of report.md."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from faulttune.stats import Comparison, MeanStd


def cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None
) -> str:
    lines = ["| " + " | ".join(headers or columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def with_interval(value: float, low: Any, high: Any, signed: bool = False) -> str:
    """``0.600 [0.300, 0.900]``; ``+`` on positive numbers when ``signed``; no interval when its
    ends are missing."""
    spec = "+.3f" if signed else ".3f"
    text = format(value, spec)
    if isinstance(low, (int, float)) and isinstance(high, (int, float)):
        text += f" [{format(low, spec)}, {format(high, spec)}]"
    return text


def difference_text(c: Comparison) -> str:
    return with_interval(c.estimate, c.low, c.high, signed=True)


def p_text(p: float | None) -> str:
    """``0.0312``, ``< 0.0001``; "" for None."""
    if p is None:
        return ""
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def mean_sd_text(s: MeanStd) -> str:
    return f"{s.mean:.3f} ± {s.std:.3f}" if s.std is not None else f"{s.mean:.3f}"
