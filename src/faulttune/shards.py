"""Scatter and gather: one heavy stage split into ``shards`` jobs, gathered into the files one job
writes (config key ``shards``; ``workflow/rules/*.smk``).

A shard is named as Snakemake's scatter items are, ``"<k>-of-<n>"`` (k from 1). Shard k of n holds
a contiguous run of the stage's input rows, as even as the count allows, in units of the stage's
chunk: 1 row where every row's result depends on that row alone (greedy generation, task
synthesis, CodeFlow, the judge, scoring), the seeded chunk where sampling is seeded per chunk
(the teacher's variants: 16 tasks, seeded by their chunk's index in the whole table). Shard k then
computes the rows a single job computes for them, and gathering the shards in order through the
single job's writers gives its files byte for byte, given a backend that answers each prompt as
it would alone: an OpenAI-compatible endpoint, the hf backend (tested); vLLM's batched kernels
are not guaranteed to be batch-invariant, so its greedy outputs may differ in rare tokens, as
they may between two single runs with other batch sizes. Each shard job keeps its own resumable
state (:mod:`faulttune.resume`).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from faulttune import io

T = TypeVar("T")
_ITEM = re.compile(r"(\d+)-of-(\d+)")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (from 0) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, item: str | None) -> Shard:
        """``"2-of-4"`` -> Shard(1, 4); None (an unsharded job) -> Shard(0, 1)."""
        if item is None:
            return cls(0, 1)
        match = _ITEM.fullmatch(item)
        if not match or not 1 <= int(match[1]) <= int(match[2]):
            raise ValueError(f"not a shard name: {item!r} (expected <k>-of-<n>, 1 <= k <= n)")
        return cls(int(match[1]) - 1, int(match[2]))

    def chunks(self, n_rows: int, chunk: int) -> range:
        """The indices of this shard's chunks among the ``ceil(n_rows / chunk)`` chunks."""
        total = -(-n_rows // chunk)
        return range(self.index * total // self.count, (self.index + 1) * total // self.count)

    def take(self, rows: Sequence[T], chunk: int) -> tuple[list[T], int]:
        """This shard's rows and the index of its first chunk in the whole table."""
        mine = self.chunks(len(rows), chunk)
        return list(rows[mine.start * chunk : mine.stop * chunk]), mine.start

    def __str__(self) -> str:
        return f"{self.index + 1}-of-{self.count}"


# ---------------------------------------------------------------------------------------------
# gathering: the shards' files, in shard order, through the single job's writer


def gather_parquet(parts: Sequence[str | Path], out: str | Path,
                   schema: pa.Schema | None = None) -> list[dict[str, Any]]:
    """The rows of every part, in order, written as one file (with the single job's schema)."""
    rows = [row for part in parts for row in io.read_parquet(part)]
    io.write_parquet(rows, out, schema)
    return rows


def gather_rejected(parts: Sequence[str | Path], output: str | Path, stage: str,
                    schema: pa.Schema | None = None) -> None:
    """The ``*.rejected.parquet`` beside each part's output, as one beside ``output``."""
    rows = [{k: v for k, v in row.items() if k != "stage"}
            for part in parts for row in io.read_parquet(io.rejected_path(part))]
    io.write_rejected(rows, output, stage, schema)


def gather_lines(parts: Sequence[str | Path], out: str | Path) -> None:
    """Text files (JSONL) concatenated byte for byte, written atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as target:
        for part in parts:
            with open(part, "rb") as source:
                shutil.copyfileobj(source, target)
    tmp.replace(out)


def gather_results(parts: Sequence[str | Path], out: str | Path,
                   summary: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> dict[str, Any]:
    """RESULTS.json files (``faulttune score``'s shape) as one: the rows in order, the summary
    keys recomputed over all of them by ``summary(results)``, every other key as the first part
    with rows has it, in its key order, written as the scorers write it."""
    loaded = [json.loads(Path(p).read_text(encoding="utf-8")) for p in parts]
    results = [row for part in loaded for row in part["results"]]
    totals = summary(results)
    template = next((part for part in loaded if part["results"]), loaded[0])
    merged = {key: totals.get(key, results if key == "results" else value)
              for key, value in template.items()}
    from faulttune.evaluate.samples import write_atomically

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(merged, out)
    return merged
