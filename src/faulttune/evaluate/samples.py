"""Reading SAMPLES.jsonl for ``faulttune score``: every problem named by file, line and field.

A file that cannot be read as JSONL (missing, a folder, bytes that are not UTF-8, a line that is
not a JSON object) stops the run with a :class:`~faulttune.io.DataError`. A row that is readable
but unusable (no ``task_id``, a ``task_id`` that is not a string, text that is not valid Unicode,
an empty solution) becomes an ``error`` result for that row and the other rows are scored. Line
numbers count every line of the file, blank ones included.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faulttune.io import DataError, check_output_file, parse_jsonl_line, replace_file


@dataclass(frozen=True)
class SampleRow:
    """One non-blank line of SAMPLES: its 1-based line number and its JSON object."""

    lineno: int
    row: dict[str, Any]

    def task_id_text(self) -> str:
        """The task id as RESULTS shows it (always encodable: lone surrogates escaped)."""
        value = self.row.get("task_id")
        text = value if isinstance(value, str) else ("" if value is None else repr(value))
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


MAX_LINE_MB = 16  # one sample row: a program of a few KiB, with room for huge ones
MAX_SAMPLES_MB = 2048  # the whole file (200 samples x 500 tasks x 4 KiB is ~400 MiB)


def _open_lines(path: Path) -> Iterator[bytes]:
    """The lines of ``path`` without their newline; a line or a file over the limits (a device
    such as /dev/zero, a file that is not JSONL) stops with the line it reached."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a SAMPLES.jsonl file")
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, also when the caller stops early
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    line_cap, total = MAX_LINE_MB << 20, 0
    with f:
        for lineno in itertools.count(1):
            try:
                line = f.readline(line_cap + 1)
            except OSError as e:
                raise DataError(f"{path} line {lineno}: cannot be read ({e.strerror})") from None
            total += len(line)
            if len(line) > line_cap:
                raise DataError(f"{path} line {lineno}: longer than {MAX_LINE_MB} MiB (is it a "
                                "SAMPLES.jsonl file?)")
            if total > MAX_SAMPLES_MB << 20:
                raise DataError(f"{path} line {lineno}: the file is larger than {MAX_SAMPLES_MB} "
                                "MiB; split it into several SAMPLES files")
            if not line:
                return
            yield line.removesuffix(b"\n")


def _decode(path: Path, lineno: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} line {lineno}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at "
                        f"column {e.start + 1})") from None


def read_samples(path: str | os.PathLike[str]) -> list[SampleRow]:
    """Every non-blank line of ``path`` as a JSON object, with its line number."""
    path = Path(path)
    rows = []
    for lineno, raw in enumerate(_open_lines(path), start=1):
        line = _decode(path, lineno, raw)
        if not line.strip():
            continue
        rows.append(SampleRow(lineno, parse_jsonl_line(path, lineno, line)))
    return rows


def lone_surrogate(text: str) -> str | None:
    """The first lone surrogate in ``text`` as 'U+D800', or None (JSON "\\ud800" decodes to one)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"U+{ord(text[e.start]):04X}"
    return None


# A model's empty answer to a known task is an answer that fails (it counts in pass@k), unlike a
# row that names no task of the benchmark.
EMPTY_SOLUTION = "empty solution"

def row_problem(row: dict[str, Any], known: set[str], benchmark: str) -> str:
    """Why a row cannot be scored ("" when it can): the field and what is wrong with it."""
    task_id = row.get("task_id")
    if task_id is None or task_id == "":
        return "missing 'task_id'"
    if not isinstance(task_id, str):
        return f"'task_id' must be a string, got {type(task_id).__name__} {task_id!r}"
    if lone_surrogate(task_id):
        return f"'task_id' holds a lone surrogate ({lone_surrogate(task_id)}): not valid Unicode"
    if task_id not in known:
        return f"unknown task_id {task_id!r} for {benchmark}"
    field = "solution" if "solution" in row else "completion" if "completion" in row else None
    if field is None:
        return "row has neither 'solution' nor 'completion'"
    code = row[field]
    if not isinstance(code, str):
        return f"'{field}' must be a string, got {type(code).__name__}"
    if lone_surrogate(code):
        return f"'{field}' holds a lone surrogate ({lone_surrogate(code)}): not valid Unicode"
    if not code.strip():
        return EMPTY_SOLUTION
    return ""


def check_writable(out: str | os.PathLike[str], samples: str | os.PathLike[str]) -> Path:
    """Refuse an ``--out`` that RESULTS may not replace, before any program runs: a symlink, a
    device, a FIFO, a folder, SAMPLES itself, or a folder that cannot be written."""
    return check_output_file(out, "--out", inputs=[samples])


def write_atomically(data: dict[str, Any], out: Path) -> None:
    """Write JSON to a new temporary file beside ``out`` and rename it into place."""
    replace_file(out, json.dumps(data, indent=1, ensure_ascii=False).encode("utf-8"))
