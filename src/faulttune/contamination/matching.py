"""Benchmark texts indexed by n-grams and shingles, and the overlaps of row fields with them."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz.distance import Levenshtein

from faulttune.contamination.tokens import SHINGLE, comparable_tokens, ngrams

# Row fields that can carry benchmark text (training tables, pairs, codeflow pairs).
DEFAULT_FIELDS = ("instruction", "solution", "correct", "incorrect", "chosen", "rejected",
                  "prompt", "response")


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
        for part, tokens in (("prompt", comparable_tokens(task.prompt)),
                             ("instruct_prompt", comparable_tokens(instruct) if instruct else []),
                             ("solution", comparable_tokens(task.canonical_solution)),
                             ("code", comparable_tokens(task.canonical_solution, docstrings=False))):
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
            for i, shared, containment, similarity in _text_matches(comparable_tokens(text), index, params):
                item = index.items[i]
                kinds = (("ngram",) if containment >= params.min_containment else ()) + (
                    ("near_duplicate",) if similarity >= params.near_threshold else ())
                matches.append(Match(r, row_id, name, item.benchmark, item.task_id, item.part,
                                     kinds, shared, round(containment, 4), round(similarity, 4)))
    return matches
