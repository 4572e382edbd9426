"""One demo ``generate`` job, timed: our decode loop vs transformers' continuous batching vs
batch-1 ``generate``, and the job itself.

The workload is the demo's, read from the config (default ``config/config.yaml``): the benchmark's
first ``data.benchmark_limit`` tasks as ``prepare_benchmark`` selects them, the conversations and
per-task stop rules that ``generate_samples`` sends, ``generation.max_new_tokens`` and
``generation.batch_size``, greedy, the embedded default (or ``--model``), and the generate rule's
``--threads 2`` (our backend lowers them while other processes want the cores). Sides, on the same
prompts, one after the other and ``--repeats`` times over (the machine's load drifts):

- ``ours``: ``HFBackend.chat`` (:mod:`faulttune.generate.decode`); ``ours-fixed``: the same
  with the thread count held at ``--threads`` (no :class:`~faulttune.generate.cores.CoreShare`);
- ``generate_batch``: transformers' continuous batching (``ContinuousBatchingManager``, attention
  ``sdpa``, ``batch_size`` requests at once), streaming each request and cancelling it when its
  stop rule fires (``generate_batch`` itself has no stop strings and would decode every row to
  ``max_new_tokens``);
- ``generate_batch-plain``: ``model.generate_batch`` as shipped, every row to EOS or
  ``max_new_tokens`` (all decoded tokens counted), completions cut afterwards;
- ``batch-1``: ``model.generate`` per prompt with a stopping criterion for the same rule;
- ``stage``: ``faulttune.stages.generate`` on a bench table of the same tasks, as the Snakemake job
  runs it (tokenizer and model loading included; its tokens are recounted from the raw file).

Printed per run: tokens (new, up to the stop), seconds, tokens/s, rows/s, rows that reached
``max_new_tokens``, torch threads at the end, and for each side how many completions equal ours.

    .venv/bin/python bench/generate_throughput.py [--sides ours,generate_batch,batch-1,stage]
        [--repeats 1] [--threads 2] [--config config/config.yaml] [--model NAME]

Measured 2026-11-27 on a 2-vCPU AMD EPYC with avx512_bf16 (``precision: auto`` is bf16 here),
shared with other engineers' jobs (load average 0-6); 16 held-out tasks, 192 new tokens, batch 16.
Loop against loop, one thread (two runs each, interleaved):

    side                   bf16 tok/s         equal ours   fp32 tok/s   equal ours
    ours                   53.6  54.3  71.2       -            49.0         -
    generate_batch         37.2  44.7  48.3     11/16          32.0       16/16
    generate_batch-plain               58.7     10/16
    batch-1                 9.1  13.5          12/16          14.2       16/16

(the third bf16 run on idle cores). In fp32 all three decode the same tokens; in bf16 a row's
rounding depends on the batch's shape and a few near-ties flip. transformers' continuous batching
is 18-35 % slower than ours with the stop rules; as shipped (no stop strings) it decodes 2,205
tokens instead of 1,451 and takes 37.6 s against our 20.4 s. So ``decode_rows`` stays. The job itself (``stage``, model loading included) ran at 62.0 and 59.6
tokens/s against 54.8 and 62.8 for ``ours`` (2 threads): the bench and the demo agree.

Threads (``--threads 2``): with one more CPU-bound process on the 2 cores, 2 fixed threads took
367 s and 44 s (4.0 and 33 tok/s), the adaptive loop 30 s and 19 s, 1 fixed thread 19 s; on idle
cores 2 fixed threads took 12.7 s (115 tok/s), the adaptive loop 13.3 s, 1 thread 19.6 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from faulttune.generate import GenerationParams
from faulttune.generate.hf import HFBackend, render_and_encode
from faulttune.generate.prompts import solve_messages
from faulttune.generate.run import answer_rules, task_spec
from faulttune.generate.stops import StopRule, cut_completion, is_finished
from faulttune.models import EMBEDDED_DEFAULT, load_model, load_tokenizer


@dataclass(frozen=True)
class Workload:
    """One generate job: its tasks' prompts, stop rules and generation settings."""

    config: dict[str, Any]
    rows: list[dict[str, Any]]
    conversations: list[Any]
    rules: list[StopRule]
    params: GenerationParams
    batch_size: int


@dataclass
class Run:
    """One side's result: completions, tokens, seconds and rows that hit ``max_new_tokens``."""

    side: str
    texts: list[str]
    tokens: int
    seconds: float
    at_max: int
    threads: int

    def line(self, ours: Run | None) -> str:
        same = "" if ours is None else f", {sum(a == b for a, b in zip(self.texts, ours.texts))}"
        same += f"/{len(self.texts)} completions equal ours" if ours is not None else ""
        return (
            f"{self.side:>14}: {self.tokens:5d} tokens {self.seconds:7.1f} s "
            f"{self.tokens / self.seconds:6.1f} tok/s {len(self.texts) / self.seconds:5.2f} rows/s, "
            f"{self.at_max}/{len(self.texts)} rows at max_new_tokens, {self.threads} threads{same}"
        )


def demo_workload(config_path: str) -> Workload:
    """The tasks and settings of one ``generate`` job of the configured run."""
    from faulttune.config import validate_config
    from faulttune.dag import Plan
    from faulttune.data.bench_table import benchmark_rows

    config = validate_config(yaml.safe_load(Path(config_path).read_text()), config_path)
    plan = Plan(config)
    source = plan.prepare_benchmark(config["data"]["benchmarks"][0])
    rows = benchmark_rows(source.name, split=source.split, data_dir=source.data_dir,
                          limit=source.limit)
    specs = [task_spec(row, i) for i, row in enumerate(rows)]
    settings = plan.generate(config["student"]["model"])  # what the generate job runs with
    params = GenerationParams(max_new_tokens=settings.max_new_tokens)
    return Workload(config, rows, [solve_messages(s.prompt) for s in specs], answer_rules(specs),
                    params, settings.backend.options["batch_size"])


def _timed(side: str, work: Callable[[], tuple[list[str], int, int]]) -> Run:
    start = time.perf_counter()
    texts, tokens, at_max = work()
    return Run(side, texts, tokens, time.perf_counter() - start, at_max, torch.get_num_threads())


def ours(model: Any, tokenizer: Any, job: Workload, share_cores: bool = True) -> Run:
    backend = HFBackend.from_loaded(model, tokenizer, batch_size=job.batch_size,
                                    share_cores=share_cores)

    def work() -> tuple[list[str], int, int]:
        texts = [s[0] for s in backend.chat(job.conversations, job.params, job.rules)]
        return texts, backend.tokens_generated, backend.rows_at_max(job.params.max_new_tokens)

    return _timed("ours" if share_cores else "ours-fixed", work)


def _token_counts(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    return [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]


def _at_max(lengths: Sequence[int], job: Workload) -> int:
    return sum(n >= job.params.max_new_tokens for n in lengths)


def batch1_generate(model: Any, tokenizer: Any, job: Workload) -> Run:
    from transformers import StoppingCriteria

    class RuleStop(StoppingCriteria):
        def __init__(self, prompt_length: int, rule: StopRule) -> None:
            self.prompt_length, self.rule = prompt_length, rule

        def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
            text = _decode(tokenizer, input_ids[0, self.prompt_length :].tolist())
            return torch.tensor([is_finished(text, job.params.stop, self.rule)])

    def work() -> tuple[list[str], int, int]:
        texts, tokens, at_max = [], 0, 0
        for ids, rule in zip(_prompt_ids(tokenizer, job), job.rules):
            out = model.generate(
                torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                do_sample=False, max_new_tokens=job.params.max_new_tokens,
                stopping_criteria=[RuleStop(len(ids), rule)], pad_token_id=tokenizer.pad_token_id,
            )
            new = [t for t in out[0, len(ids) :].tolist() if t != tokenizer.eos_token_id]
            tokens, at_max = tokens + len(new), at_max + (len(new) >= job.params.max_new_tokens)
            texts.append(cut_completion(_decode(tokenizer, new), job.params.stop, rule))
        return texts, tokens, at_max

    return _timed("batch-1", work)


def _cb_settings(tokenizer: Any, job: Workload) -> tuple[Any, Any, list[list[int]]]:
    """Greedy generation config, continuous-batching config and prompt ids for the job."""
    from transformers import GenerationConfig
    from transformers.generation import ContinuousBatchingConfig

    generation = GenerationConfig(max_new_tokens=job.params.max_new_tokens, do_sample=False,
                                  eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id)
    prompts = _prompt_ids(tokenizer, job)
    # The KV cache is sized for every row at full length; 256-token pages.
    pages = len(prompts) * (max(map(len, prompts)) + job.params.max_new_tokens) // 256 + 8
    cb_config = ContinuousBatchingConfig(max_requests_per_batch=job.batch_size, num_blocks=pages,
                                         max_batch_tokens=512)
    return generation, cb_config, prompts


def generate_batch_plain(model: Any, tokenizer: Any, job: Workload) -> Run:
    """``model.generate_batch`` as it is: every row runs to EOS or ``max_new_tokens``; the
    completions are cut by the stop rules afterwards, the tokens counted are all decoded ones."""
    generation, cb_config, prompts = _cb_settings(tokenizer, job)

    def work() -> tuple[list[str], int, int]:
        results = model.generate_batch(prompts, generation_config=generation,
                                       continuous_batching_config=cb_config, warmup=False)
        new_ids = [_no_eos(list(r.generated_tokens), tokenizer) for r in results.values()]
        texts = [cut_completion(_decode(tokenizer, ids), job.params.stop, rule)
                 for ids, rule in zip(new_ids, job.rules)]
        at_max = sum(len(ids) >= job.params.max_new_tokens for ids in new_ids)
        return texts, sum(map(len, new_ids)), at_max

    return _timed("generate_batch-plain", work)


def continuous_batching(model: Any, tokenizer: Any, job: Workload) -> Run:
    """transformers' ContinuousBatchingManager; a request is cancelled once its rule fires."""
    generation, cb_config, prompts = _cb_settings(tokenizer, job)

    def work() -> tuple[list[str], int, int]:
        new_ids: list[list[int]] = [[] for _ in prompts]
        with model.continuous_batching_context_manager(
            generation_config=generation, continuous_batching_config=cb_config, block=True,
            timeout=10, warmup=False,
        ) as manager:
            request_ids = manager.add_requests(prompts, streaming=True)
            _collect(manager, request_ids, new_ids, tokenizer, job)
        texts = [cut_completion(_decode(tokenizer, _no_eos(ids, tokenizer)), job.params.stop, rule)
                 for ids, rule in zip(new_ids, job.rules)]
        tokens = sum(len(_no_eos(ids, tokenizer)) for ids in new_ids)
        return texts, tokens, sum(len(ids) >= job.params.max_new_tokens for ids in new_ids)

    return _timed("generate_batch", work)


def _collect(manager: Any, request_ids: list[str], new_ids: list[list[int]], tokenizer: Any,
             job: Workload) -> None:
    """Streamed tokens of every request until it finishes or its stop rule fires (then cancel)."""
    row_of = {request_id: row for row, request_id in enumerate(request_ids)}
    pending = set(request_ids)
    while pending:
        result = manager.get_result(timeout=1)
        if result is None:
            if not manager.is_running():
                raise RuntimeError("the continuous batching loop stopped early")
            continue
        if result.request_id not in pending:
            continue
        row = row_of[result.request_id]
        new_ids[row] = list(result.generated_tokens)
        text = _decode(tokenizer, _no_eos(new_ids[row], tokenizer))
        if result.is_finished() or is_finished(text, job.params.stop, job.rules[row]):
            pending.discard(result.request_id)
            if not result.is_finished():
                manager.cancel_request(result.request_id)


def stage(model_name: str, tokenizer: Any, job: Workload, threads: int) -> Run:
    """``faulttune.stages.generate`` as the Snakemake job runs it, model loading included."""
    from faulttune import io
    from faulttune.dag import Plan
    from faulttune.data.bench_table import BENCH_SCHEMA
    from faulttune.generate.run import raw_path
    from faulttune.stages.eval import generate

    settings = Plan(job.config).generate(model_name)
    with tempfile.TemporaryDirectory() as folder:
        bench, out = Path(folder) / "bench.parquet", Path(folder) / "samples.jsonl"
        io.write_parquet(job.rows, bench, BENCH_SCHEMA)

        def work() -> tuple[list[str], int, int]:
            generate(settings, str(bench), str(out), threads=threads)
            texts = [r["raw"] for r in io.read_jsonl(raw_path(out))]
            lengths = _token_counts(tokenizer, texts)
            return texts, sum(lengths), _at_max(lengths, job)

        return _timed("stage", work)


def _prompt_ids(tokenizer: Any, job: Workload) -> list[list[int]]:
    return render_and_encode(tokenizer, job.conversations, job.params.prefill)


def _no_eos(ids: list[int], tokenizer: Any) -> list[int]:
    return [t for t in ids if t != tokenizer.eos_token_id]


def _decode(tokenizer: Any, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--model", default=EMBEDDED_DEFAULT)
    parser.add_argument("--precision", help="default: the config's student.precision")
    parser.add_argument("--threads", type=int, default=2, help="the generate rule's threads")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--sides", default="ours,generate_batch,batch-1,stage")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    job = demo_workload(args.config)
    tokenizer = load_tokenizer(args.model)
    precision = args.precision or job.config["student"].get("precision", "auto")
    model = load_model(args.model, precision=precision)
    sides: dict[str, Callable[[], Run]] = {
        "ours": lambda: ours(model, tokenizer, job),
        "ours-fixed": lambda: ours(model, tokenizer, job, share_cores=False),
        "generate_batch": lambda: continuous_batching(model, tokenizer, job),
        "generate_batch-plain": lambda: generate_batch_plain(model, tokenizer, job),
        "batch-1": lambda: batch1_generate(model, tokenizer, job),
        "stage": lambda: stage(args.model, tokenizer, job, args.threads),
    }
    print(f"{len(job.rows)} tasks, max_new_tokens {job.params.max_new_tokens}, batch "
          f"{job.batch_size}, {args.threads} threads, {model.dtype}, load average "
          f"{os.getloadavg()}")
    runs: dict[str, list[Run]] = {}
    for _ in range(args.repeats):
        for side in args.sides.split(","):
            torch.set_num_threads(args.threads)
            run = sides[side]()
            runs.setdefault(side, []).append(run)
            print(run.line(runs.get("ours", [None])[0] if side != "ours" else None), flush=True)
    for side, side_runs in runs.items():
        rate = statistics.median(r.tokens / r.seconds for r in side_runs)
        print(f"median {side}: {rate:.1f} tok/s over {len(side_runs)} run(s)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
