"""The masks parquet files: their schema (docs/CONTRACTS.md "Training examples"), written
atomically with the tokenizer's model name and the examples kind in the schema metadata."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from faulttune.io import DataError

METADATA_MODEL_KEY = b"faulttune.model"
METADATA_EXAMPLES_KEY = b"faulttune.examples"

MASKS_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("task_id", pa.string()),
    ("kind", pa.string()),
    ("chosen_ids", pa.list_(pa.int32())),
    ("chosen_start", pa.int32()),
    ("chosen_mask", pa.list_(pa.int8())),
    ("rejected_ids", pa.list_(pa.int32())),
    ("rejected_start", pa.int32()),
    ("rejected_mask", pa.list_(pa.int8())),
    ("first_diff", pa.int32()),
])


def write_masks(
    rows: Sequence[dict[str, Any]], path: str | os.PathLike[str], model_name: str,
    examples: str | None = None,
) -> None:
    """Write rows with :data:`MASKS_SCHEMA`; the schema metadata keeps the tokenizer's model name
    (``faulttune.model``, so a viewer can decode the ids) and the examples kind the rows were
    built as (``faulttune.examples``, the registry's name). Atomic (temporary file renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {METADATA_MODEL_KEY: model_name.encode()}
    if examples is not None:
        metadata[METADATA_EXAMPLES_KEY] = examples.encode()
    table = pa.Table.from_pylist(list(rows), schema=MASKS_SCHEMA.with_metadata(metadata))
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def read_masks(path: str | os.PathLike[str]) -> tuple[pa.Table, str | None]:
    """A masks table and the model name stored in its metadata (None if absent)."""
    table = pq.read_table(path)
    missing = [n for n in MASKS_SCHEMA.names if n not in table.column_names]
    if missing:
        raise DataError(f"{path}: not a masks file, missing column(s) {missing}")
    name = (table.schema.metadata or {}).get(METADATA_MODEL_KEY)
    return table, name.decode() if name is not None else None


def examples_kind(table: pa.Table) -> str | None:
    """The examples kind a masks table was built as (None for a file written without it)."""
    name = (table.schema.metadata or {}).get(METADATA_EXAMPLES_KEY)
    return name.decode() if name is not None else None
