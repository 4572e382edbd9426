"""CodeFlow's checkpoint: every tested version appended to a JSONL file, read back on resume."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from faulttune.codeflow.columns import TRAJECTORY_COLUMNS, Row
from faulttune.io import DataError, read_appended_jsonl

log = logging.getLogger(__name__)


def load_checkpoint(
    path: str | Path, by_id: Mapping[str, Any], start: str
) -> dict[str, list[Row]]:
    """Stored versions per task; a torn last line (a run killed mid-write) is dropped and rewritten."""
    path = Path(path)
    if not path.exists():
        return {}
    rows = read_appended_jsonl(path)
    histories: dict[str, list[Row]] = {}
    for lineno, row in rows:
        _check_checkpoint_row(path, lineno, row, histories, by_id, start)
        histories.setdefault(row["task_id"], []).append(row)
    log.info("codeflow: resumed %d versions of %d tasks from %s", len(rows), len(histories), path)
    return histories


def _check_checkpoint_row(
    path: Path, lineno: int, row: Row, histories: Mapping[str, list[Row]],
    by_id: Mapping[str, Any], start: str,
) -> None:  # fmt: skip
    where = f"{path} line {lineno}"
    row.setdefault("raw", row.get("code"))  # checkpoints written before the column existed
    for key in TRAJECTORY_COLUMNS:
        if key not in row:
            raise DataError(f"{where}: missing '{key}'")
    if row["task_id"] not in by_id:
        raise DataError(f"{where}: task_id {row['task_id']!r} is not among this run's tasks")
    history = histories.get(row["task_id"], [])
    if row["iteration"] != len(history):
        raise DataError(f"{where}: iteration {row['iteration']}, expected {len(history)}")
    if history and history[-1]["passed"]:
        raise DataError(f"{where}: a version after the passing iteration {len(history) - 1}")
    if row["iteration"] == 0 and row["origin"] != start:
        raise DataError(f"{where}: origin {row['origin']!r} but this run starts from {start!r}")


