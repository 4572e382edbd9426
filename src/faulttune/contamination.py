"""Contamination check: training rows / generated pairs against benchmark prompts and solutions.

Normalisation (:func:`code_tokens`): the text is split with Python's ``tokenize``; comments,
newlines, indentation and the encoding/end markers are dropped (so whitespace and layout never
matter), names, numbers and operators are kept verbatim, and every string literal (docstrings
included) is split into word and punctuation tokens without its prefix and quotes (``\\w+`` / single non-space characters), so
prose inside docstrings is compared word by word. Text that ``tokenize`` rejects (natural-language
instructions, broken code) falls back to that word/punctuation split of the whole text.
Identifiers are NOT anonymised: a renamed function still shares every n-gram of its body that
does not mention the name, and anonymising would make common loops (``for i in range(len(x))``)
match everywhere.

Two kinds of overlap between a row field and a benchmark item (a task's ``prompt`` or
``solution``, or the solution's ``code`` without docstrings; thresholds in :class:`CheckParams`, calibrated on HumanEval there):

* ``ngram``: the row contains at least ``min_containment`` (default half) of the item's
  ``n``-grams (13-grams of tokens). Any shared 13-gram is reported but is not a flag by itself:
  HumanEval's own sibling tasks share up to 30 % of their 13-grams (signatures, docstring
  phrasing, the same loops written by the same authors).
* ``near_duplicate``: token-level normalised Levenshtein similarity
  ``1 - distance / max(len)`` >= ``near_threshold`` (rapidfuzz, on the token lists). Only pairs
  sharing at least ``prefilter_min_shared`` shingles (5-grams) and with compatible lengths are
  compared, so the cost is the shingle lookups plus a few edit distances, not N x M of them.

Report per benchmark (:func:`contamination_report`)::

    {"params": {...},
     "benchmarks": {name: {"n_tasks": int, "n_rows_checked": int, "n_rows_flagged": int,
                           "by_kind": {"ngram": int, "near_duplicate": int},   # flagged rows
                           "overlapping_task_ids": [str, ...],                 # flagged only
                           "n_rows_any_shared_ngram": int,                     # informational
                           "top_matches": [MATCH, ...]}}}   # flagged first, then near misses

    MATCH = {"row": int, "row_id": str, "field": str, "benchmark": str, "task_id": str,
             "part": "prompt" | "instruct_prompt" | "solution" | "code", "kinds": [str],
             "flagged": bool, "shared_ngrams": int, "containment": float, "similarity": float}

:func:`decontaminate` keeps the rows without a match and rejects the others with a ``reason``
naming the benchmark, the task, the part, the field and the kind of overlap (for
``io.write_rejected``). It also rejects a row that IS a benchmark task by its id, whatever its
text (:func:`task_key`: ``mbpp/601`` of MBPP's train split is MBPP+'s ``Mbpp/601``,
HumanEvalPack's ``Python/3`` is ``HumanEval/3``).
"""

from __future__ import annotations

import io
import json
import os
import re
import tokenize
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from rapidfuzz.distance import Levenshtein

# Row fields that can carry benchmark text (training tables, pairs, codeflow pairs).
DEFAULT_FIELDS = ("instruction", "solution", "correct", "incorrect", "chosen", "rejected",
                  "prompt", "response")
SHINGLE = 5
_WORDS = re.compile(r"\w+|[^\w\s]")
_STRING_WORDS = re.compile(r"\w+|[^\w\s'\"]")  # inside a literal: no quote characters
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENCODING, tokenize.ENDMARKER}
_STRING_TYPES = {tokenize.STRING} | (
    {tokenize.FSTRING_START, tokenize.FSTRING_MIDDLE, tokenize.FSTRING_END}
    if hasattr(tokenize, "FSTRING_START") else set())


def code_tokens(text: str, docstrings: bool = True) -> list[str]:
    """Normalised tokens of ``text`` (see the module docstring). ``docstrings=False`` also drops
    every statement that is only a string literal (docstrings)."""
    out: list[str] = []
    line: list[tuple[bool, list[str]]] = []  # the current logical line: (is string, tokens)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                out.extend(_flush(line, docstrings))
                line = []
            elif tok.type in _STRING_TYPES:
                line.append((True, _STRING_WORDS.findall(tok.string.lstrip("rRbBuUfFtT"))))
            elif tok.type not in _SKIP:
                line.append((False, [tok.string]))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return _WORDS.findall(text)
    return out + _flush(line, docstrings)


def _flush(line: list[tuple[bool, list[str]]], docstrings: bool) -> list[str]:
    if not docstrings and line and all(is_string for is_string, _ in line):
        return []
    return [t for _, tokens in line for t in tokens]


def ngrams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    """The set of ``n``-grams; a text shorter than ``n`` has one n-gram, itself (if non-empty)."""
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


@dataclass(frozen=True)
class Item:
    """One benchmark text: a task's prompt or solution, tokenised."""

    benchmark: str
    task_id: str
    part: str
    tokens: tuple[str, ...]


@dataclass
class BenchmarkIndex:
    """Inverted indexes from n-grams and shingles to benchmark items."""

    items: list[Item]
    n: int
    by_ngram: dict[tuple[str, ...], list[int]] = field(default_factory=dict)
    by_shingle: dict[tuple[str, ...], list[int]] = field(default_factory=dict)
    tasks_per_benchmark: dict[str, int] = field(default_factory=dict)


def benchmark_items(name: str, tasks: Iterable[Any]) -> list[Item]:
    """Items of ``tasks`` (``BenchmarkTask``-like: task_id, prompt, canonical_solution): the
    ``prompt``, the ``solution`` and its ``code`` (the solution without docstrings or comments,
    which is what a training row that copies the code but not the docstring shares with it), and
    the ``instruct_prompt`` of a BigCodeBench subset (``extra["instruct_prompt"]``: its tasks
    are asked with either prompt)."""
    items = []
    for task in tasks:
        instruct = (getattr(task, "extra", None) or {}).get("instruct_prompt")
        for part, tokens in (("prompt", code_tokens(task.prompt)),
                             ("instruct_prompt", code_tokens(instruct) if instruct else []),
                             ("solution", code_tokens(task.canonical_solution)),
                             ("code", code_tokens(task.canonical_solution, docstrings=False))):
            if tokens:
                items.append(Item(name, task.task_id, part, tuple(tokens)))
    return items


def build_index(benchmarks: Mapping[str, Sequence[Any]], n: int = 13) -> BenchmarkIndex:
    """Index every benchmark's tasks (name -> list of ``BenchmarkTask``)."""
    items = [item for name, tasks in benchmarks.items() for item in benchmark_items(name, tasks)]
    index = BenchmarkIndex(items=items, n=n,
                           tasks_per_benchmark={k: len(v) for k, v in benchmarks.items()})
    by_ngram: dict[tuple[str, ...], list[int]] = defaultdict(list)
    by_shingle: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        for gram in ngrams(item.tokens, n):
            by_ngram[gram].append(i)
        for gram in ngrams(item.tokens, SHINGLE):
            by_shingle[gram].append(i)
    index.by_ngram, index.by_shingle = dict(by_ngram), dict(by_shingle)
    return index


@dataclass(frozen=True)
class Match:
    """One (row field, benchmark item) pair that shares n-grams or is similar enough to report."""

    row: int
    row_id: str
    field: str
    benchmark: str
    task_id: str
    part: str
    kinds: tuple[str, ...]  # the criteria it meets: "ngram", "near_duplicate" (empty: near miss)
    shared_ngrams: int
    containment: float  # shared n-grams / n-grams of the benchmark item
    similarity: float  # 0.0 below ``CheckParams.report_floor`` or when prefiltered out

    @property
    def flagged(self) -> bool:
        return bool(self.kinds)

    def reason(self, n: int) -> str:
        what = {"ngram": f"{self.shared_ngrams} shared {n}-grams "
                         f"({self.containment:.0%} of the {self.part})",
                "near_duplicate": f"near-duplicate (token edit similarity {self.similarity:.2f})"}
        return (f"contamination: {self.benchmark} {self.task_id} {self.part} in field "
                f"'{self.field}': " + " and ".join(what[k] for k in self.kinds))


@dataclass(frozen=True)
class CheckParams:
    """Thresholds of the check; the defaults are calibrated on HumanEval against itself.

    Rows = each task's prompt and solution, items = every other task's prompt, solution, code:
    the largest 13-gram containments are 0.76 and 0.58 (/108 count_nums and /145 order_by_points
    define the same ``digits_sum`` helper, a genuine shared piece of code, flagged; see
    :func:`self_overlaps`), then <= 0.30; the largest similarity is 0.899 (the prompts of /40
    triples_sum_to_zero and /43 pairs_sum_to_zero), and sibling tasks such as /7 vs /29 reach
    0.82-0.86. Only code-only texts of /56 and /61 (``correct_bracketing`` with "<>" or "()")
    are closer: 0.975, so a row holding /61's bare code is flagged against /56. A copy renamed and
    reformatted (function renamed, comments, layout) keeps >= 0.6 containment of the ``code``
    part and > 0.95 similarity to the ``solution`` when the docstring is kept. Renaming the
    variables throughout a body breaks most 13-grams: this check finds copies, not paraphrases.
    """

    n: int = 13
    min_containment: float = 0.5
    near_threshold: float = 0.95
    prefilter_min_shared: int = 3  # shingles (5-grams) a pair must share to get an edit distance
    report_floor: float = 0.5  # similarities below this are not computed (reported as 0.0)
    fields: tuple[str, ...] = DEFAULT_FIELDS

    def __post_init__(self) -> None:
        if self.n < 1 or self.prefilter_min_shared < 1:
            raise ValueError(f"n and prefilter_min_shared must be >= 1: {self}")
        for name in ("min_containment", "near_threshold", "report_floor"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.report_floor > self.near_threshold:
            raise ValueError("report_floor must not exceed near_threshold")


def _length_compatible(a: int, b: int, threshold: float) -> bool:
    # 1 - dist/max(a, b) >= t needs dist <= (1-t)max, and dist >= |a - b|
    return abs(a - b) <= (1.0 - threshold) * max(a, b)


def _text_matches(tokens: Sequence[str], index: BenchmarkIndex, params: CheckParams
                  ) -> list[tuple[int, int, float, float]]:
    """(item, shared n-grams, containment, similarity) for every item sharing an n-gram or with a
    similarity >= ``report_floor``."""
    shared = Counter(i for gram in ngrams(tokens, index.n) for i in index.by_ngram.get(gram, ()))
    shingles = Counter(i for gram in ngrams(tokens, SHINGLE) for i in index.by_shingle.get(gram, ()))
    found = []
    for i in set(shared) | {i for i, c in shingles.items() if c >= params.prefilter_min_shared}:
        item = index.items[i]
        similarity = 0.0
        if shingles[i] >= params.prefilter_min_shared and _length_compatible(
                len(tokens), len(item.tokens), params.report_floor):
            similarity = Levenshtein.normalized_similarity(
                list(tokens), list(item.tokens), score_cutoff=params.report_floor)
        if shared[i] or similarity:
            containment = shared[i] / max(len(ngrams(item.tokens, index.n)), 1)
            found.append((i, shared[i], containment, similarity))
    return found


def find_matches(rows: Sequence[Mapping[str, Any]], index: BenchmarkIndex,
                 params: CheckParams = CheckParams()) -> list[Match]:
    """Every (row, field, benchmark item) overlap, flagged or near miss, in row order."""
    matches = []
    for r, row in enumerate(rows):
        row_id = str(row.get("id", row.get("task_id", r)))
        for name in params.fields:
            text = row.get(name)
            if not isinstance(text, str) or not text.strip():
                continue
            for i, shared, containment, similarity in _text_matches(code_tokens(text), index, params):
                item = index.items[i]
                kinds = (("ngram",) if containment >= params.min_containment else ()) + (
                    ("near_duplicate",) if similarity >= params.near_threshold else ())
                matches.append(Match(r, row_id, name, item.benchmark, item.task_id, item.part,
                                     kinds, shared, round(containment, 4), round(similarity, 4)))
    return matches


def _benchmark_summary(matches: Sequence[Match], n_rows: int, n_tasks: int, top: int
                       ) -> dict[str, Any]:
    flagged = [m for m in matches if m.flagged]
    by_kind = {kind: len({m.row for m in flagged if kind in m.kinds})
               for kind in ("ngram", "near_duplicate")}
    best = sorted(matches, key=lambda m: (not m.flagged, -max(m.similarity, m.containment), m.row))
    return {"n_tasks": n_tasks, "n_rows_checked": n_rows,
            "n_rows_flagged": len({m.row for m in flagged}), "by_kind": by_kind,
            "overlapping_task_ids": sorted({m.task_id for m in flagged}, key=_task_order),
            "n_rows_any_shared_ngram": len({m.row for m in matches if m.shared_ngrams}),
            "top_matches": [{**asdict(m), "kinds": list(m.kinds), "flagged": m.flagged}
                            for m in best[:top]]}


def _task_order(task_id: str) -> tuple[str, int]:
    head, _, tail = task_id.rpartition("/")
    return (head, int(tail)) if tail.isdigit() else (task_id, -1)


def contamination_report(rows: Sequence[Mapping[str, Any]], benchmarks: Mapping[str, Sequence[Any]],
                         params: CheckParams = CheckParams(), top: int = 10) -> dict[str, Any]:
    """The per-benchmark report of the module docstring."""
    index = build_index(benchmarks, params.n)
    matches = find_matches(rows, index, params)
    per = {name: _benchmark_summary([m for m in matches if m.benchmark == name], len(rows),
                                    index.tasks_per_benchmark[name], top)
           for name in benchmarks}
    return {"params": {**asdict(params), "fields": list(params.fields), "shingle": SHINGLE},
            "benchmarks": per}


_TASK_FAMILIES = {"humaneval": "humaneval", "python": "humaneval", "mbpp": "mbpp"}


def task_key(task_id: Any) -> tuple[str, str] | None:
    """The benchmark task an id names, across the spellings of its sources: (family, number) for
    ``HumanEval/N``, ``Python/N`` (HumanEvalPack), ``Mbpp/N`` and ``mbpp/N`` (MBPP's train split);
    None for any other id."""
    family, _, number = str(task_id).partition("/")
    family = _TASK_FAMILIES.get(family.lower())
    return (family, number) if family and number.isdigit() else None


def same_task_ids(rows: Sequence[Mapping[str, Any]], benchmarks: Mapping[str, Sequence[Any]]
                  ) -> dict[int, str]:
    """row index -> reason, for every row whose ``task_id`` is a task of an evaluated benchmark."""
    owners: dict[tuple[str, str], str] = {}
    for name, tasks in benchmarks.items():
        for task in tasks:
            key = task_key(task.task_id)
            if key is not None:
                owners.setdefault(key, f"same task as {name} {task.task_id}")
    out = {}
    for r, row in enumerate(rows):
        key = task_key(row.get("task_id"))
        if key in owners:
            out[r] = owners[key]
    return out


def decontaminate(rows: Sequence[Mapping[str, Any]], benchmarks: Mapping[str, Sequence[Any]],
                  params: CheckParams = CheckParams()
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept rows, rejected rows with ``reason``): a row that is a benchmark task by its id
    (:func:`same_task_ids`), else one whose text overlaps one; the reason names the strongest
    flagged match (most similar, then most contained) and how many other benchmark tasks
    matched."""
    index = build_index(benchmarks, params.n)
    per_row: dict[int, list[Match]] = defaultdict(list)
    for m in find_matches(rows, index, params):
        if m.flagged:
            per_row[m.row].append(m)
    by_id = same_task_ids(rows, benchmarks)
    kept, rejected = [], []
    for r, row in enumerate(rows):
        if r in by_id:
            rejected.append({**row, "reason": by_id[r]})
            continue
        found = per_row.get(r)
        if not found:
            kept.append(dict(row))
            continue
        best = max(found, key=lambda m: (m.similarity, m.containment))
        others = len({(m.benchmark, m.task_id) for m in found}) - 1
        extra = f" (+{others} more benchmark task(s))" if others else ""
        rejected.append({**row, "reason": best.reason(params.n) + extra})
    return kept, rejected


def self_overlaps(name: str, tasks: Sequence[Any], params: CheckParams = CheckParams()
                  ) -> list[tuple[str, str]]:
    """Sorted (task, other task) pairs of one benchmark that the check flags against each other.

    HumanEval at the defaults: [("HumanEval/108", "HumanEval/145"), ("HumanEval/145",
    "HumanEval/108")]: both solutions define the same ``digits_sum`` helper. A split that puts
    such siblings on different sides leaks one into the other; keep them on one side.
    """
    rows = [{"id": t.task_id, "prompt": t.prompt, "solution": t.canonical_solution} for t in tasks]
    index = build_index({name: list(tasks)}, params.n)
    found = {(m.row_id, m.task_id) for m in find_matches(rows, index, params)
             if m.flagged and m.row_id != m.task_id}
    return sorted(found, key=lambda pair: (_task_order(pair[0]), _task_order(pair[1])))


def load_benchmarks(names: Sequence[str], data_dir: Any = None,
                    task_ids: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[Any]]:
    """name -> tasks via ``load_benchmark``; ``task_ids[name]`` restricts a benchmark to those ids
    (e.g. the held-out half of the demo split: only that half must stay unseen)."""
    from faulttune.data.benchmarks import load_benchmark

    out = {}
    for name in names:
        tasks = load_benchmark(name, data_dir)
        if task_ids and name in task_ids:
            keep = set(task_ids[name])
            tasks = [t for t in tasks if t.task_id in keep]
        out[name] = tasks
    return out


def decontaminate_table(in_parquet: str | os.PathLike[str], out_parquet: str | os.PathLike[str],
                        benchmarks: Mapping[str, Sequence[Any]],
                        params: CheckParams = CheckParams()) -> tuple[int, int]:
    """Read a training / pairs parquet, write the kept rows to ``out_parquet`` (same schema) and
    the flagged ones beside it (``io.write_rejected``, stage "decontaminate"); (kept, rejected)."""
    import pyarrow.parquet as pq

    from faulttune.io import write_rejected

    table = pq.read_table(in_parquet)
    kept, rejected = decontaminate(table.to_pylist(), benchmarks, params)
    Path(out_parquet).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(kept, schema=table.schema), out_parquet)
    write_rejected(rejected, out_parquet, stage="decontaminate")
    return len(kept), len(rejected)


def write_report(report: Mapping[str, Any], out_json: str | os.PathLike[str]) -> Path:
    """Write a :func:`contamination_report` as indented JSON."""
    path = Path(out_json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    return path
