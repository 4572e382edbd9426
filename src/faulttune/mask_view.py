"""Look at masks: ``faulttune show-mask MASKS.parquet --row N`` (rich, terminal) and
:func:`mask_html` (the report's HTML view).

Both decode the ids token by token with the tokenizer named in the parquet's schema metadata
(written by :func:`faulttune.mask_table.write_masks`), so every highlighted span is exactly one
token, and say which mask kinds of the registry marked each side (:func:`examples_note`, from the
examples kind the file records). Mask value 1 and value 2 (the hybrid diff's edited tokens) get
different styles; the prompt is left out of the HTML and shown dimmed in the terminal.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Sequence
from typing import Any

from faulttune.io import DataError

RICH_STYLES = {0: "", 1: "black on yellow", 2: "bold white on red"}
HTML_STYLE = (
    "<style>.ft-mask pre{white-space:pre-wrap;font-size:12px;border:1px solid #ccc;padding:4px}"
    ".ft-m1{background:#fff3a0}.ft-m2{background:#e0463c;color:#fff;font-weight:bold}</style>"
)


def token_pieces(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """The text of each token (decoded one at a time; special tokens kept)."""
    return [tokenizer.decode([int(i)], skip_special_tokens=False) for i in ids]


def _sides(row: dict[str, Any]) -> list[tuple[str, list[int], int, list[int]]]:
    sides = [("chosen", row["chosen_ids"], row["chosen_start"], row["chosen_mask"])]
    if row.get("rejected_ids") is not None:
        sides.append(("rejected", row["rejected_ids"], row["rejected_start"], row["rejected_mask"]))
    return sides


def _summary(row: dict[str, Any]) -> str:
    parts = [f"id={row['id']}", f"task_id={row['task_id']}", f"kind={row['kind']}"]
    if row.get("first_diff") is not None:
        parts.append(f"first_diff={row['first_diff']}")
    return "  ".join(parts)


def mask_html(row: dict[str, Any], tokenizer: Any) -> str:
    """A small self-contained HTML block: the response of each side with masked tokens shaded
    (class ``ft-m1`` for 1, ``ft-m2`` for 2)."""
    out = [HTML_STYLE, '<div class="ft-mask">', f"<p>{html.escape(_summary(row))}</p>"]
    for name, ids, start, mask in _sides(row):
        spans = []
        for piece, value in zip(token_pieces(tokenizer, ids[start:]), mask[start:]):
            text = html.escape(piece)
            spans.append(f'<span class="ft-m{value}">{text}</span>' if value else text)
        marked = sum(1 for v in mask if v)
        out.append(f"<p><b>{name}</b> ({marked} of {len(ids) - start} response tokens masked)</p>")
        out.append(f"<pre>{''.join(spans)}</pre>")
    out.append("</div>")
    return "".join(out)


def _rich_side(tokenizer: Any, ids: list[int], start: int, mask: list[int]) -> Any:
    from rich.text import Text

    text = Text()
    for i, (piece, value) in enumerate(zip(token_pieces(tokenizer, ids), mask)):
        text.append(piece, style="dim" if i < start else RICH_STYLES.get(value, "reverse"))
    return text


def examples_note(examples: str | None) -> str:
    """What marked the rows of a masks file built as ``examples`` (the registry's examples kind):
    for each row kind, the mask kind of each side and what it marks."""
    from faulttune import methods

    if examples is None or examples not in methods.EXAMPLES:
        return "examples kind not recorded"
    parts = []
    for spec in methods.examples(examples).rows:
        sides = [f"{side} {name} ({methods.mask_kind(name).help})"
                 for side, name in (("chosen", spec.chosen_mask), ("rejected", spec.rejected_mask))
                 if name]
        parts.append(f"{spec.kind}: " + ("; ".join(sides) or f"{spec.build} row, every response token"))
    return f"examples {examples}: " + " | ".join(parts)


def _read_row(path: str, index: int) -> tuple[dict[str, Any], str | None, str | None]:
    from faulttune.mask_table import examples_kind, read_masks

    table, model_name = read_masks(path)
    if not 0 <= index < table.num_rows:
        raise DataError(f"{path}: row {index} out of range (the file has {table.num_rows} rows)")
    return table.slice(index, 1).to_pylist()[0], model_name, examples_kind(table)


def show_mask_command(args: Any) -> int:
    """``faulttune show-mask``: print one row, chosen then rejected, with masked tokens styled."""
    from rich.console import Console
    from rich.rule import Rule

    from faulttune.models import load_tokenizer

    try:
        row, model_name, examples = _read_row(args.masks, args.row)
    except (DataError, OSError) as e:
        print(f"faulttune show-mask: {e}", file=sys.stderr)
        return 2
    model_name = getattr(args, "model", None) or model_name
    if model_name is None:
        print(f"faulttune show-mask: {args.masks} has no 'faulttune.model' metadata", file=sys.stderr)
        return 2
    tokenizer = load_tokenizer(model_name)
    console = Console()
    console.print(_summary(row), style="bold")
    console.print(examples_note(examples))
    console.print("legend: ", "mask 1", style=RICH_STYLES[1], end=" ")
    console.print("mask 2", style=RICH_STYLES[2])
    for name, ids, start, mask in _sides(row):
        console.print(Rule(f"{name}: {sum(1 for v in mask if v)} masked of {len(ids)} tokens"))
        console.print(_rich_side(tokenizer, ids, start, mask))
    return 0
