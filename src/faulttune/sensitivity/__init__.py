"""Fault-sensitivity probe: does the model prefer the correct program to its buggy twin?

For each pair the model scores both programs as the assistant response to the same conversation,
``prompts.solve_messages(instruction)`` (:mod:`.scoring`); only the response tokens count (the
pre-fill "```python\\n", the code, the closing fence and what the chat template appends after the
response, e.g. ``<|im_end|>``). The headline compares the mean log-prob of the tokens where the two
responses differ (:mod:`.regions`, :mod:`.statistics`); the held-out NLL of the correct program
comes with it. The pairs (:mod:`.pairs`) are a seeded random sample of held-out verified twins,
chosen by no model and the same for every experiment, plus HumanEvalFix's pairs when a benchmark
folder is set.

Modules: :mod:`.pairs` (where pairs come from, the probe sample), :mod:`.scoring` (forward passes),
:mod:`.regions` (where two token sequences differ), :mod:`.statistics` (per-pair statistics and
summaries). This module runs them: :func:`probe_loaded`, :func:`probe`, :func:`write_sensitivity`.

Output (``results/{run}/eval/{experiment}/bug_sensitivity.json``)::

    {"model": str, "n_pairs": int, "batch_size": int, "seconds": float,
     "context": "solve_messages(instruction) + code_response(program)",
     "headline": "margin_diff",                # the per-pair statistic behind prefer_correct
     "bootstrap": {"confidence": 0.95, "n_resamples": 10000, "seed": 0},
     "overall":      SUMMARY,                  # every pair given
     "humanevalfix": SUMMARY | null,           # pairs of family "humanevalfix"
     "twins":        SUMMARY | null,           # every other family (mutation / CCT twins)
     "by_bug_type":  {bug_type: SUMMARY},      # HumanEvalFix bug types
     "by_family":    {family: SUMMARY},
     "per_task": [{"task_id", "pair_id", "family", "bug_type", "logp_correct", "logp_buggy",
                   "n_tokens_correct", "n_tokens_buggy", "diff_start", "n_diff_correct",
                   "n_diff_buggy", "logp_diff_correct", "logp_diff_buggy", "margin_diff",
                   "margin_diff_sum", "nll_correct", "margin_sum", "margin_mean",
                   "region_start", "margin_region"}, ...]}     # one row per pair

    SUMMARY = {"n": pairs, "n_tasks": tasks,
               # task-weighted means; with an interval that resamples tasks ([_low, _high]):
               "prefer_correct", "mean_margin",       # headline: margin_diff > 0, its mean
               "nll",                                 # per-token NLL of the correct program
               # secondary, point estimates:
               "mean_margin_diff_sum",                # summed over the differing tokens
               "prefer_correct_sum", "mean_margin_sum",        # whole response, summed
               "prefer_correct_region", "mean_margin_region",  # previous headline
               "prefer_correct_mean", "mean_margin_mean",      # whole response, per token
               "buggy_shorter"}                       # share of pairs whose buggy one is shorter
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faulttune.sensitivity.pairs import (
    HUMANEVALFIX_FAMILY,
    check_pairs,
    humanevalfix_pairs,
    sample_probe_pairs,
    twin_pairs,
    write_probe_pairs,
)
from faulttune.sensitivity.scoring import encode_response, score_pairs, score_sequences
from faulttune.sensitivity.statistics import (
    BINARY_KEYS,
    DEFAULT_BOOTSTRAP,
    HEADLINE,
    PER_PAIR,
    Bootstrap,
    pair_row,
    report,
    summarise,
    task_values,
)

__all__ = ["BINARY_KEYS", "HEADLINE", "HUMANEVALFIX_FAMILY", "PER_PAIR", "Bootstrap",
           "encode_response", "humanevalfix_pairs", "pair_row", "probe", "probe_loaded", "report",
           "sample_probe_pairs", "summarise", "task_values", "twin_pairs", "write_probe_pairs",
           "write_sensitivity"]

log = logging.getLogger(__name__)
CONTEXT = "solve_messages(instruction) + code_response(program)"


def probe_loaded(model: Any, tokenizer: Any, pairs: Sequence[dict[str, Any]],
                 batch_size: int = 8, progress: bool = False, shared_prompt: bool = True,
                 bootstrap: Bootstrap = DEFAULT_BOOTSTRAP) -> dict[str, Any]:
    """The probe on an already loaded model/tokenizer: ``report(...)`` plus ``per_task``.

    ``shared_prompt`` (default): each pair's prompt runs once (:func:`.scoring.score_pairs`);
    otherwise all sequences run in length-sorted padded batches of ``batch_size``.
    """
    check_pairs(pairs)
    encoded = [(encode_response(tokenizer, p["instruction"], p["correct"]),
                encode_response(tokenizer, p["instruction"], p["incorrect"])) for p in pairs]
    pad = tokenizer.pad_token_id
    if shared_prompt:
        scores = score_pairs(model, encoded, pad, batch_size, progress)
    else:
        flat = score_sequences(model, [s for pair in encoded for s in pair], pad, batch_size, progress)
        scores = [(flat[2 * i], flat[2 * i + 1]) for i in range(len(pairs))]
    per_task = [pair_row(p, *scores[i], correct[start_c:], buggy[start_b:])
                for i, (p, ((correct, start_c), (buggy, start_b))) in enumerate(zip(pairs, encoded))]
    return {**report(per_task, bootstrap), "per_task": per_task}


def probe(model_name_or_path: str, pairs: Sequence[dict[str, Any]], batch_size: int = 8,
          *, device: str = "cpu", progress: bool = True, bootstrap: Bootstrap = DEFAULT_BOOTSTRAP
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
