"""Fault-sensitivity probe: does the model prefer the correct program to its buggy twin?

For each pair the model scores both programs as the assistant response to the same conversation,
``prompts.solve_messages(instruction)``, rendered exactly as training and generation render it
(``prompts.render_training_example`` with ``prompts.code_response(program)``). Only the response
tokens count (the pre-fill "```python\\n", the code and the closing fence, plus whatever the chat
template appends after the response, e.g. ``<|im_end|>``); the prompt never does.

Per pair::

    logp_correct = sum_t log p(y_t | context, y_<t) over the response tokens of the correct program
    mean_correct = logp_correct / n_tokens_correct          (same for the buggy program)
    margin_sum   = logp_correct - logp_buggy
    margin_mean  = mean_correct - mean_buggy

A pair "prefers the correct program" when its margin is > 0 (ties count as not preferred).

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
     "overall":      SUMMARY,                  # every pair given
     "humanevalfix": SUMMARY | null,           # pairs of family "humanevalfix"
     "twins":        SUMMARY | null,           # every other family (mutation / CCT / teacher twins)
     "by_bug_type":  {bug_type: SUMMARY},      # HumanEvalFix bug types
     "by_family":    {family: SUMMARY},
     "per_task": [{"task_id", "pair_id", "family", "bug_type", "logp_correct", "logp_buggy",
                   "n_tokens_correct", "n_tokens_buggy", "margin_sum", "margin_mean"}, ...]}

    SUMMARY = {"n": int, "prefer_correct_sum": float, "prefer_correct_mean": float,
               "mean_margin_sum": float, "mean_margin_mean": float}
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faulttune.io import DataError, read_parquet

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
    ``bug_type`` is "".
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
                      "pair_id": row.get("id") or f"{row['task_id']}#{i}", "bug_type": ""})
    return pairs


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
                ) -> list[tuple[float, int]]:
    """(sum of response log-probs, number of response tokens) for each (ids, start) sequence."""
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
    sums = per_token.sum(-1).tolist()
    counts = targets[:, -window:][:, 1:].sum(-1).long().tolist()
    return [(s, n) for s, n in zip(sums, counts)]


def score_sequences(model: Any, seqs: Sequence[tuple[list[int], int]], pad_id: int,
                    batch_size: int = 8, progress: bool = False) -> list[tuple[float, int]]:
    """:func:`score_batch` over all sequences, longest first, results in input order."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]), reverse=True)
    results: list[tuple[float, int]] = [(0.0, 0)] * len(seqs)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="sensitivity", unit="batch")
    for batch in batches:
        for index, scored in zip(batch, score_batch(model, [seqs[i] for i in batch], pad_id)):
            results[index] = scored
    return results


def score_shared_prompt(model: Any, prefix: list[int], responses: Sequence[list[int]], pad_id: int,
                        prefix_targets: int = 0) -> list[tuple[float, int]]:
    """(sum of log-probs, n tokens) of each ``prefix + response`` where the prefix is run once.

    The last ``prefix_targets`` tokens of ``prefix`` are targets too (a response start that all
    responses share); their log-probs are added to every result. The prefix's KV cache is repeated
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
        shared = token_logps(head.logits.float(), window).sum().item() if prefix_targets else 0.0
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
        sums = token_logps(logits, labels, mask).sum(-1).tolist()
    return [(shared + total, prefix_targets + len(r)) for total, r in zip(sums, responses)]


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix, at most min(len) - 1 (each suffix keeps a token)."""
    n = 0
    limit = min(len(a), len(b)) - 1
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def score_pairs(model: Any, encoded: Sequence[tuple[tuple[list[int], int], tuple[list[int], int]]],
                pad_id: int, batch_size: int = 8, progress: bool = False
                ) -> list[tuple[tuple[float, int], tuple[float, int]]]:
    """Scores of (correct, buggy) encodings. Pairs whose two prompts tokenise identically run
    the prompt and the common start of the two responses once (:func:`score_shared_prompt`); any
    others go through the padded batches of :func:`score_sequences`."""
    shared = [i for i, ((a, sa), (b, sb)) in enumerate(encoded) if sa == sb and a[:sa] == b[:sb]]
    others = sorted(set(range(len(encoded))) - set(shared))
    results: dict[int, tuple[tuple[float, int], tuple[float, int]]] = {}
    loop = shared
    if progress:
        from tqdm import tqdm

        loop = tqdm(shared, desc="sensitivity", unit="pair")
    for i in loop:
        (a, start), (b, _) = encoded[i]
        cut = max(_common_prefix(a, b), start)
        results[i] = tuple(score_shared_prompt(model, a[:cut], [a[cut:], b[cut:]], pad_id,
                                               prefix_targets=cut - start))
    flat = [seq for i in others for seq in encoded[i]]
    scored = score_sequences(model, flat, pad_id, batch_size) if flat else []
    for j, i in enumerate(others):
        results[i] = (scored[2 * j], scored[2 * j + 1])
    return [results[i] for i in range(len(encoded))]


# ------------------------------------------------------------------------------------------------
# summaries


def pair_row(pair: dict[str, Any], correct: tuple[float, int], buggy: tuple[float, int]
             ) -> dict[str, Any]:
    """One ``per_task`` row from the two (sum, n_tokens) scores."""
    (lc, nc), (lb, nb) = correct, buggy
    return {"task_id": pair["task_id"], "pair_id": pair.get("pair_id", pair["task_id"]),
            "family": pair["family"], "bug_type": pair.get("bug_type", ""),
            "logp_correct": lc, "logp_buggy": lb, "n_tokens_correct": nc, "n_tokens_buggy": nb,
            "margin_sum": lc - lb, "margin_mean": lc / max(nc, 1) - lb / max(nb, 1)}


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """SUMMARY of ``per_task`` rows (see the module docstring); None for no rows."""
    if not rows:
        return None
    n = len(rows)
    return {"n": n,
            "prefer_correct_sum": sum(r["margin_sum"] > 0 for r in rows) / n,
            "prefer_correct_mean": sum(r["margin_mean"] > 0 for r in rows) / n,
            "mean_margin_sum": sum(r["margin_sum"] for r in rows) / n,
            "mean_margin_mean": sum(r["margin_mean"] for r in rows) / n}


def _grouped(rows: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row[key]:
            groups[row[key]].append(row)
    return {name: summarise(group) for name, group in sorted(groups.items())}


def report(per_task: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The summary part of the result from its ``per_task`` rows."""
    fix = [r for r in per_task if r["family"] == HUMANEVALFIX_FAMILY]
    twins = [r for r in per_task if r["family"] != HUMANEVALFIX_FAMILY]
    return {"overall": summarise(per_task), "humanevalfix": summarise(fix),
            "twins": summarise(twins), "by_bug_type": _grouped(fix, "bug_type"),
            "by_family": _grouped(per_task, "family")}


# ------------------------------------------------------------------------------------------------
# entry points


def _check_pairs(pairs: Sequence[dict[str, Any]]) -> None:
    for i, pair in enumerate(pairs):
        for field in PAIR_FIELDS:
            if not isinstance(pair.get(field), str):
                raise DataError(f"pair {i} ({pair.get('task_id')!r}): '{field}' must be a string")


def probe_loaded(model: Any, tokenizer: Any, pairs: Sequence[dict[str, Any]],
                 batch_size: int = 8, progress: bool = False, shared_prompt: bool = True
                 ) -> dict[str, Any]:
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
    per_task = [pair_row(p, *scores[i]) for i, p in enumerate(pairs)]
    return {**report(per_task), "per_task": per_task}


def probe(model_name_or_path: str, pairs: Sequence[dict[str, Any]], batch_size: int = 8,
          *, device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Load the model (fp32) and run the probe on ``pairs``; the result of the module docstring."""
    from faulttune.models import load_model, load_tokenizer

    started = time.perf_counter()
    tokenizer = load_tokenizer(model_name_or_path)
    model = load_model(model_name_or_path, precision="fp32", device=device)
    result = probe_loaded(model, tokenizer, pairs, batch_size, progress)
    seconds = time.perf_counter() - started
    log.info("sensitivity: %d pairs in %.1f s", len(pairs), seconds)
    return {"model": model_name_or_path, "n_pairs": len(pairs), "batch_size": batch_size,
            "seconds": round(seconds, 2), "context": CONTEXT, **result}


def run_sensitivity(model_name_or_path: str, data_dir: str | os.PathLike[str] | None = None,
                    twins_path: str | os.PathLike[str] | None = None,
                    twin_task_ids: Sequence[str] | None = None, batch_size: int = 8,
                    out_json: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """HumanEvalFix pairs plus (optionally) the twins of ``twin_task_ids`` from ``twins_path``,
    probed in one pass; written to ``out_json`` when given."""
    pairs = humanevalfix_pairs(data_dir)
    if twins_path is not None:
        pairs += twin_pairs(twins_path, twin_task_ids)
    result = probe(model_name_or_path, pairs, batch_size)
    if out_json is not None:
        write_sensitivity(result, out_json)
    return result


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


def plot_by_bug_type(results: dict[str, dict[str, Any]], out_png: str | os.PathLike[str]) -> Path:
    """Bar chart: fraction of HumanEvalFix tasks preferring the canonical program (by sum), per
    bug type, one bar per experiment (``results``: experiment name -> probe result)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = sorted({t for r in results.values() for t in r["by_bug_type"]})
    if not types:
        raise ValueError("no HumanEvalFix bug types in the results to plot")
    width = 0.8 / max(len(results), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(types)), 3.5))
    for k, (name, result) in enumerate(results.items()):
        values = [(result["by_bug_type"].get(t) or {}).get("prefer_correct_sum", 0.0) for t in types]
        ax.bar([i + k * width for i in range(len(types))], values, width, label=name)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks([i + width * (len(results) - 1) / 2 for i in range(len(types))], types,
                  rotation=20, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("P(logp correct > logp buggy)")
    ax.set_title("Fault sensitivity on HumanEvalFix, by bug type")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(out_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
