"""Fault-sensitivity probe: does the model prefer the correct program to its buggy twin?

For each pair the model scores both programs as the assistant response to the same conversation,
``prompts.solve_messages(instruction)``, rendered exactly as training and generation render it
(``prompts.render_training_example`` with ``prompts.code_response(program)``). Only the response
tokens count (the pre-fill "```python\\n", the code and the closing fence, plus whatever the chat
template appends after the response, e.g. ``<|im_end|>``); the prompt never does.

Per pair, from the per-token log-probs of the two responses (``r`` = the region start, the
first response token at which the two token sequences differ; tokens before it have the same
context on both sides, so their log-probs are identical and carry no evidence)::

    logp_correct = sum_t log p(y_t | context, y_<t) over the response tokens of the correct program
    margin_sum    = logp_correct - logp_buggy                          (secondary)
    margin_mean   = logp_correct / n_tokens_correct - logp_buggy / n_tokens_buggy
    margin_region = mean_{t >= r} log p(correct_t) - mean_{t >= r} log p(buggy_t)   (HEADLINE)

Why the headline is ``margin_region``: a summed log-likelihood is a sum of negative terms, so it
favours whichever program has fewer tokens. A deletion bug ("missing logic") makes the buggy
program shorter, and the summed statistic then "prefers" the bug for reasons unrelated to
correctness. The per-token mean over the differing region compares like with like; the mean over
the whole response (``margin_mean``) is length-normalised too but diluted by the shared code before
the bug. A pair "prefers the correct program" when its margin is > 0 (ties count as not preferred).

Error bars: every fraction and mean margin comes with a percentile-bootstrap interval over the
pairs (:func:`faulttune.stats.bootstrap_interval`, seeded); two experiments probed on the same
pairs are compared with :func:`paired_difference` (a paired bootstrap over pairs).

Probe pairs a model cannot already tell apart (:func:`select_probe_pairs`): random CCT twins
are easy (the base model prefers the correct program on nearly all of them), so no method can
show an effect. The base model is probed ONCE on many candidate twins of the held-out tasks and a
fixed set of ``limit`` hard pairs is kept (:func:`make_probe_pairs`, :func:`write_probe_pairs`);
every experiment is then probed on that same file (:func:`twin_pairs`).

HumanEvalFix pairs (:func:`humanevalfix_pairs`): instruction = the HumanEval prompt (signature +
docstring), correct = ``declaration + canonical body``, incorrect = ``declaration + buggy body``.
Both programs use the docstring-free ``declaration`` so that they differ only by the bug (the
canonical ``BenchmarkTask.canonical_solution`` carries the docstring, the buggy program does not).

Mechanics: forward passes only, no generation, fp32 on CPU under ``torch.inference_mode()``.
Default: the prompt, identical for the two programs of a pair, and the common start of the two
responses (the code before the bug) run once; the KV cache is repeated for the two remaining
response suffixes, which run as one batch (on HumanEvalFix the prompt alone is ~70 % of the
tokens). Alternative (``shared_prompt=False``): all sequences sorted by
length and LEFT-padded in batches, so every response ends at the last position; ``position_ids``
come from the attention mask (identical to the unpadded forward) and only the last
``max response length + 1`` positions get logits (``logits_to_keep``). Either way only response
positions go through the vocabulary projection.

Output (``results/{run}/eval/{experiment}/bug_sensitivity.json``, :func:`write_sensitivity`)::

    {"model": str, "n_pairs": int, "batch_size": int, "seconds": float,
     "context": "solve_messages(instruction) + code_response(program)",
     "headline": "margin_region",              # the per-pair statistic behind prefer_correct
     "bootstrap": {"confidence": 0.95, "n_resamples": 10000, "seed": 0},
     "overall":      SUMMARY,                  # every pair given
     "humanevalfix": SUMMARY | null,           # pairs of family "humanevalfix"
     "twins":        SUMMARY | null,           # every other family (mutation / CCT / teacher twins)
     "by_bug_type":  {bug_type: SUMMARY},      # HumanEvalFix bug types
     "by_family":    {family: SUMMARY},
     "per_task": [{"task_id", "pair_id", "family", "bug_type", "logp_correct", "logp_buggy",
                   "n_tokens_correct", "n_tokens_buggy", "margin_sum", "margin_mean",
                   "region_start", "logp_region_correct", "logp_region_buggy",
                   "n_region_correct", "n_region_buggy", "margin_region"}, ...]}

    SUMMARY = {"n": int,
               # headline (margin_region), each with its bootstrap interval [_low, _high]
               "prefer_correct", "prefer_correct_low", "prefer_correct_high",
               "mean_margin", "mean_margin_low", "mean_margin_high",
               # secondary: summed log-likelihood (biased toward the shorter program)
               "prefer_correct_sum", "prefer_correct_sum_low", "prefer_correct_sum_high",
               "mean_margin_sum", "mean_margin_sum_low", "mean_margin_sum_high",
               # secondary: per-token mean over the whole response, no interval
               "prefer_correct_mean", "mean_margin_mean",
               # share of pairs whose buggy response has fewer tokens (what biases the sum)
               "buggy_shorter"}                   # all floats except n
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from faulttune.io import DataError, read_parquet
from faulttune.stats import (
    CONFIDENCE,
    N_RESAMPLES,
    PairedDifference,
    bootstrap_interval,
    paired_bootstrap_by_key,
)

log = logging.getLogger(__name__)

HUMANEVALFIX_FAMILY = "humanevalfix"
PAIR_FIELDS = ("task_id", "instruction", "correct", "incorrect", "family")
CONTEXT = "solve_messages(instruction) + code_response(program)"


# ------------------------------------------------------------------------------------------------
# pairs


def humanevalfix_pairs(data_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The 164 HumanEvalPack-Python tasks as probe pairs (see the module docstring).

    Rows: ``task_id, pair_id, instruction, correct, incorrect, family ("humanevalfix"), bug_type``.
    """
    from faulttune.data.benchmarks import load_benchmark

    pairs = []
    for task in load_benchmark("humanevalfix", data_dir):
        if not task.canonical_solution.startswith(task.prompt):
            raise DataError(f"humanevalfix {task.task_id}: canonical_solution does not start "
                            "with the prompt; cannot recover the canonical body")
        body = task.canonical_solution[len(task.prompt):]
        declaration = task.extra["declaration"]
        pairs.append({
            "task_id": task.task_id, "pair_id": task.task_id, "instruction": task.prompt,
            "correct": declaration + body, "incorrect": declaration + task.extra["buggy_solution"],
            "family": HUMANEVALFIX_FAMILY, "bug_type": task.extra["bug_type"],
        })
    return pairs


def twin_pairs(path: str | os.PathLike[str], task_ids: Sequence[str] | None = None
               ) -> list[dict[str, Any]]:
    """Probe pairs from a pairs parquet (``bugs/pairs_{source}.parquet`` or ``codeflow/pairs``).

    Keeps the rows whose ``task_id`` is in ``task_ids`` (e.g. the held-out half of a split; None:
    all rows). ``pair_id`` is the row's ``id`` (or ``task_id#row`` when the file has none);
    ``bug_type`` is the row's ``bug_type`` when the file has one (probe pairs written by
    :func:`write_probe_pairs`), else "".
    """
    rows = read_parquet(path, required=PAIR_FIELDS)
    keep = None if task_ids is None else set(task_ids)
    pairs = []
    for i, row in enumerate(rows):
        if keep is not None and row["task_id"] not in keep:
            continue
        for field in PAIR_FIELDS:
            if not isinstance(row[field], str):
                raise DataError(f"{path} row {i}: '{field}' must be a string, got {row[field]!r}")
        pairs.append({**{f: row[f] for f in PAIR_FIELDS},
                      "pair_id": row.get("id") or f"{row['task_id']}#{i}",
                      "bug_type": row.get("bug_type") or ""})
    return pairs


# ------------------------------------------------------------------------------------------------
# probe pairs a model cannot already tell apart

PROBE_PAIR_COLUMNS = ("id", "task_id", "instruction", "correct", "incorrect", "family",
                      "bug_type", "base_margin")


def select_probe_pairs(candidates: Sequence[dict[str, Any]], base: dict[str, Any], limit: int
                       ) -> list[dict[str, Any]]:
    """The ``limit`` candidate pairs on which the base model's headline margin is lowest, at most
    one per task (its lowest), lowest first; ties break by pair id.

    ``candidates``: probe pairs (:func:`twin_pairs`); ``base``: the base model's probe result on
    these candidates (:func:`probe`), computed once so every experiment is then probed on the same
    pairs. Rows: the pair fields plus ``base_margin``.

    Caveat (regression to the mean): the base model is at its worst on these pairs by
    construction, so any perturbation of it, even an uninformative fine-tune, tends to score
    higher. Compare fault-aware methods with a control trained the same way (``sft``) on these
    pairs, with :func:`paired_difference`, rather than with ``base``. Choosing the pair by another
    twin of the same task (a cross-fit) removes that bias but does not make the set hard: on the
    embedded default, a task's other twins are as easy as random ones.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    margins = _base_margins(candidates, base)
    weakest: dict[str, dict[str, Any]] = {}
    for pair in sorted(candidates, key=lambda p: (margins[p["pair_id"]], p["pair_id"])):
        weakest.setdefault(pair["task_id"], pair)
    picked = list(weakest.values())[:limit]
    return [{"id": p["pair_id"], **{f: p[f] for f in PAIR_FIELDS},
             "bug_type": p.get("bug_type", ""), "base_margin": margins[p["pair_id"]]}
            for p in picked]


def make_probe_pairs(model_name_or_path: str, candidates: Sequence[dict[str, Any]], limit: int,
                     *, batch_size: int = 8, device: str = "cpu"
                     ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Probe the base model once on every candidate and select (:func:`select_probe_pairs`).

    Returns the selected rows (write them with :func:`write_probe_pairs`) and the base model's
    probe result on all candidates (worth keeping as the record of the choice).
    """
    base = probe(model_name_or_path, candidates, batch_size, device=device)
    selected = select_probe_pairs(candidates, base, limit)
    log.info("probe pairs: %d of %d candidates; the base model prefers the correct program on %d",
             len(selected), len(candidates), sum(r["base_margin"] > 0 for r in selected))
    return selected, base


def write_probe_pairs(rows: Sequence[dict[str, Any]], out: str | os.PathLike[str]) -> Path:
    """Write selected probe pairs (:data:`PROBE_PAIR_COLUMNS`); :func:`twin_pairs` reads them."""
    import pyarrow as pa

    from faulttune.io import write_parquet

    schema = pa.schema([(c, pa.float64() if c == "base_margin" else pa.string())
                        for c in PROBE_PAIR_COLUMNS])
    write_parquet(rows, out, schema)
    return Path(out)


def _base_margins(candidates: Sequence[dict[str, Any]], base: dict[str, Any]) -> dict[str, float]:
    margins = {row["pair_id"]: row[HEADLINE] for row in base["per_task"]}
    for i, pair in enumerate(candidates):
        if pair["pair_id"] not in margins:
            raise DataError(f"candidate {i} ({pair['pair_id']!r}) has no base-model score: probe "
                            "the base model on exactly the candidates first")
    return margins


# ------------------------------------------------------------------------------------------------
# encoding and batched scoring


def encode_response(tokenizer: Any, instruction: str, program: str) -> tuple[list[int], int]:
    """Token ids of ``solve_messages(instruction)`` + ``code_response(program)`` and the index of
    the first response token."""
    from faulttune.generate.prompts import code_response, render_training_example, solve_messages

    return render_training_example(tokenizer, solve_messages(instruction), code_response(program))


def _left_padded(seqs: Sequence[tuple[list[int], int]], pad_id: int) -> tuple[Any, Any, Any, int]:
    """ids, attention mask and target mask [B, T] (left padded) and the response window K+1."""
    import torch

    width = max(len(ids) for ids, _ in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    targets = torch.zeros((len(seqs), width), dtype=torch.float32)
    for row, (seq, start) in enumerate(seqs):
        offset = width - len(seq)
        ids[row, offset:] = torch.tensor(seq, dtype=torch.long)
        attention[row, offset:] = 1
        targets[row, offset + start:] = 1.0
    window = max(len(seq) - start for seq, start in seqs) + 1
    return ids, attention, targets, min(window, width)


def score_batch(model: Any, seqs: Sequence[tuple[list[int], int]], pad_id: int
                ) -> list[list[float]]:
    """The log-prob of every response token (ids[start:]) of each (ids, start) sequence."""
    import torch

    from faulttune.losses import token_logps

    ids, attention, targets, window = _left_padded(seqs, pad_id)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model(input_ids=ids.to(device), attention_mask=attention.to(device),
                    position_ids=positions.to(device), logits_to_keep=window, use_cache=False)
        # padded positions inside the window may carry garbage; they are never targets
        logits = torch.nan_to_num(out.logits.float())
        per_token = token_logps(logits, ids[:, -window:].to(device), targets[:, -window:].to(device))
    # left padding: every response ends at the last position
    return [per_token[row, per_token.shape[1] - (len(seq) - start):].tolist()
            for row, (seq, start) in enumerate(seqs)]


def score_sequences(model: Any, seqs: Sequence[tuple[list[int], int]], pad_id: int,
                    batch_size: int = 8, progress: bool = False) -> list[list[float]]:
    """:func:`score_batch` over all sequences, longest first, results in input order."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]), reverse=True)
    results: list[list[float]] = [[] for _ in seqs]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="sensitivity", unit="batch")
    for batch in batches:
        for index, scored in zip(batch, score_batch(model, [seqs[i] for i in batch], pad_id)):
            results[index] = scored
    return results


def score_shared_prompt(model: Any, prefix: list[int], responses: Sequence[list[int]], pad_id: int,
                        prefix_targets: int = 0) -> list[list[float]]:
    """Per-token log-probs of each ``prefix + response`` where the prefix is run once.

    The last ``prefix_targets`` tokens of ``prefix`` are targets too (a response start that all
    responses share); their log-probs open every result. The prefix's KV cache is repeated
    for the responses, which run as one right-padded batch with positions continuing the prefix's;
    the prefix's last logits predict each first response token.
    """
    import torch

    from faulttune.losses import token_logps

    device = next(model.parameters()).device
    k, width, p = len(responses), max(len(r) for r in responses), len(prefix)
    with torch.inference_mode():
        head = model(input_ids=torch.tensor([prefix], device=device), use_cache=True,
                     logits_to_keep=prefix_targets + 1)
        window = torch.tensor([prefix[p - prefix_targets - 1:]], device=device)
        shared = token_logps(head.logits.float(), window)[0].tolist() if prefix_targets else []
        cache = head.past_key_values
        cache.batch_repeat_interleave(k)
        ids = torch.full((k, width), pad_id, dtype=torch.long, device=device)
        attention = torch.zeros((k, p + width), dtype=torch.long, device=device)
        attention[:, :p] = 1
        for row, response in enumerate(responses):
            ids[row, :len(response)] = torch.tensor(response, dtype=torch.long)
            attention[row, p:p + len(response)] = 1
        positions = (p + torch.arange(width, device=device)).expand(k, width)
        tail = model(input_ids=ids, attention_mask=attention, position_ids=positions,
                     past_key_values=cache, use_cache=False)
        # labels [k, 1 + width]: the last prefix token, then the response; logits aligned to them
        logits = torch.cat([head.logits[:, -1:].float().expand(k, -1, -1), tail.logits.float()], 1)
        labels = torch.cat([torch.full((k, 1), prefix[-1], device=device), ids], dim=1)
        mask = torch.cat([torch.zeros((k, 1), device=device), attention[:, p:]], dim=1)
        per_token = token_logps(logits, labels, mask)
    return [shared + per_token[row, :len(r)].tolist() for row, r in enumerate(responses)]


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix, at most min(len) - 1 (each suffix keeps a token)."""
    n = 0
    limit = min(len(a), len(b)) - 1
    while n < limit and a[n] == b[n]:
        n += 1
    return n


Encoded = tuple[list[int], int]  # (ids, index of the first response token)


def region_start(correct: Encoded, buggy: Encoded) -> int:
    """The first response token at which the two responses differ (see the module docstring),
    at most min(response lengths) - 1 so that both regions keep a token."""
    (a, start_a), (b, start_b) = correct, buggy
    return _common_prefix(a[start_a:], b[start_b:])


def score_pairs(model: Any, encoded: Sequence[tuple[Encoded, Encoded]], pad_id: int,
                batch_size: int = 8, progress: bool = False
                ) -> list[tuple[list[float], list[float]]]:
    """Per-token response log-probs of (correct, buggy) encodings. Pairs whose two prompts
    tokenise identically run the prompt and the common start of the two responses once
    (:func:`score_shared_prompt`); any others go through the padded batches of
    :func:`score_sequences`."""
    shared = [i for i, ((a, sa), (b, sb)) in enumerate(encoded) if sa == sb and a[:sa] == b[:sb]]
    others = sorted(set(range(len(encoded))) - set(shared))
    results: dict[int, tuple[list[float], list[float]]] = {}
    loop = shared
    if progress:
        from tqdm import tqdm

        loop = tqdm(shared, desc="sensitivity", unit="pair")
    for i in loop:
        (a, start), (b, _) = encoded[i]
        cut = max(_common_prefix(a, b), start)
        correct, buggy = score_shared_prompt(model, a[:cut], [a[cut:], b[cut:]], pad_id,
                                             prefix_targets=cut - start)
        results[i] = (correct, buggy)
    flat = [seq for i in others for seq in encoded[i]]
    scored = score_sequences(model, flat, pad_id, batch_size) if flat else []
    for j, i in enumerate(others):
        results[i] = (scored[2 * j], scored[2 * j + 1])
    return [results[i] for i in range(len(encoded))]


# ------------------------------------------------------------------------------------------------
# per-pair statistics and summaries


def _mean(values: Sequence[float]) -> float:
    return sum(values) / max(len(values), 1)


def pair_row(pair: dict[str, Any], correct: Sequence[float], buggy: Sequence[float],
             region: int) -> dict[str, Any]:
    """One ``per_task`` row from the per-token log-probs of the two responses and the region
    start (:func:`region_start`)."""
    return {"task_id": pair["task_id"], "pair_id": pair.get("pair_id", pair["task_id"]),
            "family": pair["family"], "bug_type": pair.get("bug_type", ""),
            "logp_correct": sum(correct), "logp_buggy": sum(buggy),
            "n_tokens_correct": len(correct), "n_tokens_buggy": len(buggy),
            "margin_sum": sum(correct) - sum(buggy),
            "margin_mean": _mean(correct) - _mean(buggy),
            "region_start": region,
            "logp_region_correct": sum(correct[region:]), "logp_region_buggy": sum(buggy[region:]),
            "n_region_correct": len(correct) - region, "n_region_buggy": len(buggy) - region,
            "margin_region": _mean(correct[region:]) - _mean(buggy[region:])}


HEADLINE = "margin_region"
# SUMMARY key -> the per-pair value behind it (a 0/1 preference or a margin)
PER_PAIR: dict[str, Callable[[dict[str, Any]], float]] = {
    "prefer_correct": lambda r: float(r[HEADLINE] > 0),
    "mean_margin": lambda r: r[HEADLINE],
    "prefer_correct_sum": lambda r: float(r["margin_sum"] > 0),
    "mean_margin_sum": lambda r: r["margin_sum"],
}


@dataclass(frozen=True)
class Bootstrap:
    """How the intervals are drawn (:mod:`faulttune.stats`)."""

    confidence: float = CONFIDENCE
    n_resamples: int = N_RESAMPLES
    seed: int = 0


def summarise(rows: Sequence[dict[str, Any]], bootstrap: Bootstrap = Bootstrap()
              ) -> dict[str, Any] | None:
    """SUMMARY of ``per_task`` rows (see the module docstring); None for no rows."""
    if not rows:
        return None
    out: dict[str, Any] = {"n": len(rows)}
    for key, value in PER_PAIR.items():
        interval = bootstrap_interval([value(r) for r in rows], confidence=bootstrap.confidence,
                                      n_resamples=bootstrap.n_resamples, seed=bootstrap.seed)
        out.update({key: interval.estimate, f"{key}_low": interval.low,
                    f"{key}_high": interval.high})
    out["prefer_correct_mean"] = _mean([float(r["margin_mean"] > 0) for r in rows])
    out["mean_margin_mean"] = _mean([r["margin_mean"] for r in rows])
    out["buggy_shorter"] = _mean([float(r["n_tokens_buggy"] < r["n_tokens_correct"])
                                  for r in rows])
    return out


def _grouped(rows: Sequence[dict[str, Any]], key: str, bootstrap: Bootstrap) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row[key]:
            groups[row[key]].append(row)
    return {name: summarise(group, bootstrap) for name, group in sorted(groups.items())}


def report(per_task: Sequence[dict[str, Any]], bootstrap: Bootstrap = Bootstrap()
           ) -> dict[str, Any]:
    """The summary part of the result from its ``per_task`` rows."""
    fix = [r for r in per_task if r["family"] == HUMANEVALFIX_FAMILY]
    twins = [r for r in per_task if r["family"] != HUMANEVALFIX_FAMILY]
    return {"headline": HEADLINE, "bootstrap": asdict(bootstrap),
            "overall": summarise(per_task, bootstrap), "humanevalfix": summarise(fix, bootstrap),
            "twins": summarise(twins, bootstrap),
            "by_bug_type": _grouped(fix, "bug_type", bootstrap),
            "by_family": _grouped(per_task, "family", bootstrap)}


def paired_difference(a: dict[str, Any], b: dict[str, Any], key: str = "prefer_correct", *,
                      families: Collection[str] | None = None, bootstrap: Bootstrap = Bootstrap()
                      ) -> PairedDifference:
    """Experiment ``a`` minus experiment ``b`` on the pairs both probed, matched by ``pair_id``.

    ``a``/``b``: probe results (their ``per_task`` rows); ``key``: a SUMMARY key of
    :data:`PER_PAIR` (``prefer_correct``: the difference in preference fraction, ``mean_margin``:
    in mean headline margin; ``_sum`` variants: the summed statistic); ``families``: only pairs of
    these families (e.g. ``{"humanevalfix"}``). Raises ``ValueError`` when the two results were
    not probed on the same pairs.
    """
    if key not in PER_PAIR:
        raise ValueError(f"key must be one of {sorted(PER_PAIR)}, got {key!r}")
    values = [_per_pair_values(result, key, families, name) for result, name in ((a, "a"), (b, "b"))]
    return paired_bootstrap_by_key(*values, confidence=bootstrap.confidence,
                                   n_resamples=bootstrap.n_resamples, seed=bootstrap.seed)


def _per_pair_values(result: dict[str, Any], key: str, families: Collection[str] | None,
                     name: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for i, row in enumerate(result["per_task"]):
        if families is not None and row["family"] not in families:
            continue
        if row["pair_id"] in values:
            raise DataError(f"probe result {name}, per_task row {i}: pair_id {row['pair_id']!r} "
                            "appears twice")
        values[row["pair_id"]] = PER_PAIR[key](row)
    return values


# ------------------------------------------------------------------------------------------------
# entry points


def _check_pairs(pairs: Sequence[dict[str, Any]]) -> None:
    for i, pair in enumerate(pairs):
        for field in PAIR_FIELDS:
            if not isinstance(pair.get(field), str):
                raise DataError(f"pair {i} ({pair.get('task_id')!r}): '{field}' must be a string")


def probe_loaded(model: Any, tokenizer: Any, pairs: Sequence[dict[str, Any]],
                 batch_size: int = 8, progress: bool = False, shared_prompt: bool = True,
                 bootstrap: Bootstrap = Bootstrap()) -> dict[str, Any]:
    """The probe on an already loaded model/tokenizer: ``report(...)`` plus ``per_task``.

    ``shared_prompt`` (default): each pair's prompt runs once (:func:`score_pairs`); otherwise all
    sequences run in length-sorted padded batches of ``batch_size`` (:func:`score_sequences`).
    """
    _check_pairs(pairs)
    encoded = [(encode_response(tokenizer, p["instruction"], p["correct"]),
                encode_response(tokenizer, p["instruction"], p["incorrect"])) for p in pairs]
    pad = tokenizer.pad_token_id
    if shared_prompt:
        scores = score_pairs(model, encoded, pad, batch_size, progress)
    else:
        flat = score_sequences(model, [s for pair in encoded for s in pair], pad, batch_size, progress)
        scores = [(flat[2 * i], flat[2 * i + 1]) for i in range(len(pairs))]
    per_task = [pair_row(p, *scores[i], region_start(*encoded[i])) for i, p in enumerate(pairs)]
    return {**report(per_task, bootstrap), "per_task": per_task}


def probe(model_name_or_path: str, pairs: Sequence[dict[str, Any]], batch_size: int = 8,
          *, device: str = "cpu", progress: bool = True, bootstrap: Bootstrap = Bootstrap()
          ) -> dict[str, Any]:
    """Load the model (fp32) and run the probe on ``pairs``; the result of the module docstring."""
    from faulttune.models import load_model, load_tokenizer

    started = time.perf_counter()
    tokenizer = load_tokenizer(model_name_or_path)
    model = load_model(model_name_or_path, precision="fp32", device=device)
    result = probe_loaded(model, tokenizer, pairs, batch_size, progress, bootstrap=bootstrap)
    seconds = time.perf_counter() - started
    log.info("sensitivity: %d pairs in %.1f s", len(pairs), seconds)
    return {"model": model_name_or_path, "n_pairs": len(pairs), "batch_size": batch_size,
            "seconds": round(seconds, 2), "context": CONTEXT, **result}


def write_sensitivity(result: dict[str, Any], out_json: str | os.PathLike[str]) -> Path:
    """Write the probe result (schema in the module docstring) as indented JSON."""
    missing = [k for k in ("overall", "by_bug_type", "by_family", "per_task") if k not in result]
    if missing:
        raise ValueError(f"not a sensitivity result: missing {missing}")
    path = Path(out_json)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    return path
