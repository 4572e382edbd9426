"""Speed of the fault-sensitivity probe: all 164 HumanEvalFix pairs on the embedded default.

Goal (issue "Beyond pass@1"): <= 5 min on 2 cores, fp32 on CPU. Also times, on the first
``--compare`` pairs, the naive way (one unpadded forward per sequence, logits for every position)
against the padded batches and the shared-prompt probe (the default), side by side, and
checks they agree.

    OMP_NUM_THREADS=1 python bench/sensitivity_speed.py [--model smollm2-135m-instruct]
        [--batch-size 8] [--compare 8] [--data-dir ../shared/data] [--out bug_sensitivity.json]

``--pairs results/study/bugs/probe_pairs.parquet`` times the probe on a run's probe pairs
instead of HumanEvalFix's (what one ``sensitivity`` job of that run costs, model loading aside).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from faulttune.models import EMBEDDED_DEFAULT, load_model, load_tokenizer
from faulttune.sensitivity import (
    encode_response,
    humanevalfix_pairs,
    probe_loaded,
    twin_pairs,
    write_sensitivity,
)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def naive_scores(model, tokenizer, pairs) -> list[float]:
    """One forward per sequence with logits everywhere; sum of response log-probs."""
    sums = []
    for pair in pairs:
        for key in ("correct", "incorrect"):
            ids, start = encode_response(tokenizer, pair["instruction"], pair[key])
            with torch.inference_mode():
                logps = model(torch.tensor([ids])).logits[0].log_softmax(-1)
            targets = torch.tensor(ids[start:])
            sums.append(logps[start - 1:len(ids) - 1].gather(-1, targets[:, None]).sum().item())
    return sums


def _timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def _flat(rows) -> list[float]:
    return [v for r in rows for v in (r["logp_correct"], r["logp_buggy"])]


def compare(model, tokenizer, pairs, batch_size: int) -> None:
    """Naive, padded batches and shared prompt on the same pairs, one after the other."""
    naive, naive_s = _timed(lambda: naive_scores(model, tokenizer, pairs))
    padded, padded_s = _timed(lambda: probe_loaded(model, tokenizer, pairs, batch_size,
                                                   shared_prompt=False))
    shared, shared_s = _timed(lambda: probe_loaded(model, tokenizer, pairs, batch_size))
    for name, result, seconds in (("padded batches", padded, padded_s),
                                  ("shared prompt", shared, shared_s)):
        worst = max(abs(a - b) for a, b in zip(naive, _flat(result["per_task"])))
        print(f"{len(pairs)} pairs: naive per-sequence {naive_s:.1f} s, {name} {seconds:.1f} s, "
              f"speed-up x{naive_s / seconds:.2f}, max |diff| {worst:.2e} nats")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=EMBEDDED_DEFAULT)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--compare", type=int, default=8, help="pairs for the side-by-side (0: skip)")
    parser.add_argument("--data-dir", default=os.environ.get("FAULTTUNE_DATA_DIR") or DEFAULT_DATA)
    parser.add_argument("--out", default=None, help="also write the probe result here")
    parser.add_argument("--pairs", default=None, help="a probe pairs parquet instead of HumanEvalFix")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    started = time.perf_counter()
    tokenizer = load_tokenizer(args.model)
    model = load_model(args.model, precision="fp32", device="cpu")
    pairs = twin_pairs(args.pairs) if args.pairs else humanevalfix_pairs(args.data_dir)
    print(f"load: {time.perf_counter() - started:.1f} s")
    if args.compare:
        compare(model, tokenizer, pairs[:args.compare], args.batch_size)
    started = time.perf_counter()
    result = probe_loaded(model, tokenizer, pairs, args.batch_size, progress=True)
    seconds = time.perf_counter() - started
    print(f"all {len(pairs)} pairs, batch {args.batch_size}: {seconds:.1f} s "
          f"({seconds / len(pairs):.2f} s a pair)")
    print(json.dumps({k: result[k] for k in ("overall", "by_bug_type")}, indent=1))
    if args.out:
        write_sensitivity({"model": args.model, "seconds": round(seconds, 2), **result}, args.out)


if __name__ == "__main__":
    main()
