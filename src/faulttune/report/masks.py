"""``masks.html``: the first few examples of every masks file, decoded token by token, the
training targets shaded by their mask weight (:mod:`faulttune.mask_view`)."""

from __future__ import annotations

import functools
import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from faulttune.io import DataError

MASK_EXAMPLES_PER_FILE = 3
LEGEND = (
    "<p>Shaded tokens are training targets of the mask: yellow = 1, red = 2 (FGit's "
    "edited tokens). The prompt is left out.</p>"
)


def masks_section(
    path: str, tokenizer_for: Callable[[str], Any], limit: int = MASK_EXAMPLES_PER_FILE
) -> str:
    """HTML for the first ``limit`` rows of one masks file, or a note saying why it is not shown."""
    from faulttune.mask_table import examples_kind, read_masks
    from faulttune.mask_view import examples_note, mask_html

    title = f"<h2>{html.escape(str(path))}</h2>"
    try:
        table, model_name = read_masks(path)
        if model_name is None:
            raise DataError(f"{path}: no 'faulttune.model' metadata, cannot decode the ids")
        tokenizer = tokenizer_for(model_name)
    except (DataError, OSError, ValueError) as e:
        return title + f"<p><i>not shown: {html.escape(str(e))}</i></p>"
    kinds = sorted(set(table.column("kind").to_pylist()))
    rows = table.slice(0, limit).to_pylist()
    head = (
        f"<p>{table.num_rows} examples, kind {', '.join(kinds) or '-'}; the first {len(rows)}:</p>"
        f"<p><i>{html.escape(examples_note(examples_kind(table)))}</i></p>"
    )
    return title + head + "".join(mask_html(row, tokenizer) for row in rows)


def write_masks_html(
    paths: Sequence[str], out: Path, tokenizer_for: Callable[[str], Any] | None = None
) -> None:
    if tokenizer_for is None:
        from faulttune.models import load_tokenizer

        tokenizer_for = functools.lru_cache(maxsize=None)(load_tokenizer)
    body = [masks_section(p, tokenizer_for) for p in paths] or [
        "<p>No masks files in this run.</p>"
    ]
    out.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>faulttune masks</title>"
        "</head><body><h1>Training masks</h1>" + LEGEND + "".join(body) + "</body></html>\n",
        encoding="utf-8",
    )
