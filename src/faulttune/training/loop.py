"""One training loop for every method (nanoGPT-style, on `accelerate`), read top to bottom:

    setup: examples -> units, model (+ LoRA, + CCT head), AdamW, accelerate.prepare, reference
    resume from the last checkpoint in out_dir/checkpoints/ if there is one
    for each step: lr_at(step) -> step normalisers over the step's units -> micro-steps
                   (forward, loss, backward) -> clip -> AdamW step -> zero_grad(set_to_none=True)
                   -> log line -> checkpoint
    save the model (LoRA merged, CCT head dropped) + tokenizer, trainer_state.json, budget.json;
    drop checkpoints

Loss scaling across micro-steps and processes: every micro-batch loss is already normalised by the
step-level count (see objectives.step_normalisers), so the gradients must be SUMMED over micro-steps
and processes. `accelerator.backward` divides by the accumulation steps and DDP / FSDP / ZeRO average
over processes; the loss is multiplied by (accumulation x world size) to undo both.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from faulttune.training import BUDGET_FILE, MIN_STEPS
from faulttune.training import checkpoint as C
from faulttune.training import objectives as O
from faulttune.training.budget import run_budget
from faulttune.training.config import TrainConfig, lr_at
from faulttune.training.data import (
    Unit,
    group_units,
    load_rows,
    process_micro_batches,
    step_units,
    total_steps,
)
from faulttune.training.reference import cached_reference, fingerprint, precompute_reference

log = logging.getLogger(__name__)
StepHook = Callable[[int], None]
# Loss terms normalised by step-level counts: their sum over micro-batches and processes is the
# step's value. Every other metric is a per-batch mean, averaged.
SUMMED_METRICS = ("loss", "L_lm", "L_token", "L_seq")
# Peak dense bf16 FLOP/s of known accelerators, for the MFU estimate.
PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


class PolicyModule(nn.Module):
    """The language model plus, for CCT, the preference head r(h) on its last hidden states."""

    def __init__(self, lm: nn.Module, head: nn.Module | None) -> None:
        super().__init__()
        self.lm, self.head = lm, head

    def forward(self, input_ids: Tensor, attention_mask: Tensor, window_start: Tensor,
                width: int, rows: int | None = None) -> tuple[Tensor, Tensor | None]:
        """Window logits `[rows, W, V]` (see objectives.Batch) and head scores `[R, T]` (CCT)."""
        logits, hidden = O.windowed_logits(self.lm, input_ids, attention_mask, window_start, width,
                                           with_hidden=self.head is not None, rows=rows)
        scores = self.head(hidden) if self.head is not None else None
        return logits, scores


@dataclass
class Run:
    config: TrainConfig
    model_name: str
    out_dir: Path
    accelerator: Any
    module: Any
    optimizer: Any
    tokenizer: Any
    units: list[Unit]
    total: int
    accum: int
    ref_logps: Tensor | None = None
    ref_model: nn.Module | None = None
    flops_per_token: float = 0.0
    budget: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def checkpoints(self) -> Path:
        return self.out_dir / "checkpoints"


# ---------------------------------------------------------------------------------------------
# setup


def mixed_precision(precision: str, device: str) -> str:
    from faulttune.models import auto_dtype

    dtype = auto_dtype(precision, device)
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "no")


def build_policy(model_name: str, config: TrainConfig, device: str) -> PolicyModule:
    """fp32 master weights (autocast does bf16/fp16), LoRA if asked, CCT head if CCT."""
    from faulttune.losses import CCTHead
    from faulttune.models import load_model

    lm = load_model(model_name, precision="fp32", device=device)
    if config.gradient_checkpointing:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.lora is not None:
        from peft import LoraConfig, get_peft_model

        lm = get_peft_model(lm, LoraConfig(task_type="CAUSAL_LM", **config.lora))
        if config.gradient_checkpointing:
            lm.enable_input_require_grads()
    torch.manual_seed(config.seed)
    head = CCTHead(lm.config.hidden_size).to(device) if config.method == "cct" else None
    return PolicyModule(lm, head).train()


def build_optimizer(module: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (nanoGPT), frozen parameters left out."""
    params = [p for p in module.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.adam_betas)


def accumulation_steps(config: TrainConfig, world: int) -> int:
    per_step = config.micro_batch_size * world
    if config.batch_size % per_step:
        raise ValueError(
            f"TrainConfig: batch_size {config.batch_size} is not a multiple of micro_batch_size "
            f"{config.micro_batch_size} x {world} processes"
        )
    return config.batch_size // per_step


def setup_run(example_paths: Sequence[str], model: str, out_dir: str, config: TrainConfig) -> Run:
    from accelerate import Accelerator, PartialState
    from accelerate.utils import set_seed

    from faulttune.mask_table import end_of_turn_id
    from faulttune.models import load_tokenizer

    cpu = not torch.cuda.is_available()  # several CPU processes (gloo) need cpu=True to form a group
    state = PartialState(cpu=cpu)
    accum = accumulation_steps(config, state.num_processes)
    accelerator = Accelerator(cpu=cpu, gradient_accumulation_steps=accum,
                              mixed_precision=mixed_precision(config.precision, state.device.type))
    if accelerator.gradient_accumulation_steps != accum:
        raise ValueError(f"the accelerate config forces gradient_accumulation_steps="
                         f"{accelerator.gradient_accumulation_steps}; remove it (need {accum})")
    set_seed(config.seed)
    tokenizer = load_tokenizer(model)
    loaded = load_rows(example_paths, config.method, end_of_turn_id(tokenizer), config.max_length,
                       config.params)
    units = group_units(loaded.rows, config.method)
    steps = total_steps(len(units), config.batch_size, config.epochs, config.max_steps)
    policy = build_policy(model, config, str(accelerator.device))
    n_params = sum(p.numel() for p in policy.lm.parameters())
    ref_model = _frozen_reference(policy, config)
    optimizer = build_optimizer(policy, config)
    module, optimizer = accelerator.prepare(policy, optimizer)
    run = Run(config, model, Path(out_dir), accelerator, module, optimizer, tokenizer, units,
              steps, accum, ref_model=ref_model, flops_per_token=6.0 * n_params,
              budget=run_budget(units, config, steps, left_out_too_long=len(loaded.too_long),
                                plain_twin_too_long=len(loaded.plain)))
    run.out_dir.mkdir(parents=True, exist_ok=True)
    if O.is_preference(config.method) and config.precompute_ref:
        run.ref_logps = _precomputed_reference(run)
    log.info("%s on %s: %d rows, %d units, %d steps, accumulation %d x %d processes",
             config.method, model, len(loaded.rows), len(units), steps, accum, accelerator.num_processes)
    _log_budget(run.budget)
    return run


def _log_budget(budget: dict[str, Any]) -> None:
    log.info("budget: %d tasks, %d examples, %d optimiser steps, %d loss tokens %s",
             budget["train_tasks"], budget["train_examples"], budget["train_steps"],
             budget["train_tokens"], budget["train_tokens_by_kind"])
    if budget["few_steps"]:
        log.warning("%s trains for only %d optimiser steps (< %d): %d units at batch_size %d make "
                    "%d steps per epoch; lower batch_size or add data/epochs before comparing "
                    "methods", budget["method"], budget["train_steps"], MIN_STEPS, budget["units"],
                    budget["batch_size"], budget["steps_per_epoch"])


def _frozen_reference(policy: PolicyModule, config: TrainConfig) -> nn.Module | None:
    if not O.is_preference(config.method) or config.precompute_ref:
        return None
    import copy

    ref = copy.deepcopy(policy.lm).eval()
    return ref.requires_grad_(False)


def drawn_units(run: Run) -> list[int]:
    """Every unit some optimiser step of the run draws (all of them once it runs an epoch)."""
    cfg = run.config
    return sorted({i for step in range(run.total)
                   for i in step_units(step, len(run.units), cfg.batch_size, cfg.seed)})


def _precomputed_reference(run: Run) -> Tensor:
    cfg, acc = run.config, run.accelerator

    def forward(batch: O.Batch) -> Tensor:
        return run.module(batch.input_ids, batch.attention_mask, batch.window_start,
                          batch.labels.shape[1])[0]

    drawn = drawn_units(run)

    def compute() -> Tensor:
        run.module.eval()
        try:
            return precompute_reference(forward, run.units, cfg.method, cfg.focus_weight,
                                        run.tokenizer.pad_token_id, cfg.micro_batch_size, acc,
                                        drawn)
        finally:
            run.module.train()

    key = fingerprint(run.units, cfg.method, cfg.focus_weight, run.model_name, cfg.precision,
                      drawn)
    return cached_reference(run.out_dir / "ref_logps.pt", key, compute, acc)


# ---------------------------------------------------------------------------------------------
# one optimiser step


def _reference_for(run: Run, batch: O.Batch) -> tuple[Tensor, Tensor]:
    if run.ref_logps is not None:
        values = run.ref_logps[batch.units].to(batch.input_ids.device)
        return values[:, 0], values[:, 1]
    with torch.no_grad(), run.accelerator.autocast():
        logits, _ = O.windowed_logits(run.ref_model, batch.input_ids, batch.attention_mask,
                                      batch.window_start, batch.labels.shape[1])
    return O.pair_logps(logits, batch, run.config.method, run.config.focus_weight)


def micro_loss(run: Run, batch: O.Batch, norms: dict[str, float]) -> O.LossOut:
    """Forward pass of one micro-batch and its method's loss (normalised by the step's counts)."""
    logits, scores = run.module(batch.input_ids, batch.attention_mask, batch.window_start,
                                batch.labels.shape[1], batch.logit_rows)
    reference = _reference_for(run, batch) if O.is_preference(run.config.method) else None
    return O.objective(logits, scores, batch, run.config, norms, reference)


def accumulate_gradients(run: Run, step: int) -> tuple[dict[str, list[float]], int]:
    """Micro-steps of optimiser step `step`: forward, loss, backward; afterwards the parameters'
    `.grad` hold the step's gradient. Returns the micro-batch metrics (lists, one entry per
    micro-batch; NaN: no value) and the number of tokens this process processed.

    Every process runs `accum` micro-steps. On a short last step of an epoch a micro-batch past
    this process's share is a FILLER: the step's first unit with its loss multiplied by 0, so
    the gradient sync and the accumulation boundary come where every backend expects them."""
    cfg, acc = run.config, run.accelerator
    unit_ids = step_units(step, len(run.units), cfg.batch_size, cfg.seed)
    norms = O.step_normalisers([run.units[i] for i in unit_ids], cfg.method)
    metrics: dict[str, list[float]] = defaultdict(list)
    tokens = 0
    pad_id = run.tokenizer.pad_token_id
    shares = process_micro_batches(unit_ids, acc.process_index, acc.num_processes,
                                   cfg.micro_batch_size, run.accum)
    for ids in shares:
        filler = not ids
        ids = ids or unit_ids[:1]
        batch = O.build_batch([run.units[i] for i in ids], ids, cfg.method, cfg.weighting, pad_id)
        batch = batch.to(acc.device)
        with acc.accumulate(run.module):  # DDP syncs (ZeRO: steps) on the last micro-step only
            loss, terms = micro_loss(run, batch, norms)
            loss = loss * 0.0 if filler else loss
            acc.backward(loss * run.accum * acc.num_processes)
        for name, value in {"loss": loss, **terms}.items():
            metrics[name].append(_metric_value(name, value, filler))
        tokens += 0 if filler else int(batch.attention_mask.sum())
    return metrics, tokens


def _metric_value(name: str, value: Tensor, filler: bool) -> float:
    """A filler adds 0 to the summed loss terms and nothing to the averaged metrics."""
    if filler:
        return 0.0 if name in SUMMED_METRICS else math.nan
    return float(value.detach())


def apply_gradients(run: Run) -> float:
    """Clip, AdamW step, zero_grad(set_to_none=True); returns the gradient norm before clipping."""
    grad_norm = _clip(run)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    return grad_norm


def _clip(run: Run) -> float:
    params = [p for p in run.module.parameters() if p.requires_grad]
    if run.config.max_grad_norm is None:
        norms = [p.grad.detach().norm() for p in params if p.grad is not None]
        return float(torch.stack(norms).norm()) if norms else 0.0
    norm = run.accelerator.clip_grad_norm_(params, run.config.max_grad_norm)
    return float(norm) if norm is not None else float("nan")


def step_record(run: Run, step: int, lr: float, metrics: dict[str, list[float]], tokens: int,
                seconds: float) -> dict[str, float | None]:
    """One train_log.jsonl line: loss terms summed over micro-batches and processes, other
    metrics averaged over the micro-batches that have a value (None when none has); throughput
    (and MFU on a GPU). Every process must hold the same metric names."""
    acc = run.accelerator
    names = sorted(metrics)
    known = [[v for v in metrics[n] if not math.isnan(v)] for n in names]
    local = torch.tensor([sum(v) for v in known] + [len(v) for v in known] + [float(tokens)],
                         dtype=torch.float64, device=acc.device)
    total = acc.reduce(local, reduction="sum").tolist()
    sums, counts, tokens_all = total[:len(names)], total[len(names):-1], total[-1]
    values = {n: s if n in SUMMED_METRICS else (s / c if c else None)
              for n, s, c in zip(names, sums, counts)}
    per_epoch = -(-len(run.units) // run.config.batch_size)
    record = {"step": step + 1, "epoch": (step + 1) / per_epoch, "lr": lr, **values,
              "tokens_per_s": tokens_all / max(seconds, 1e-9)}
    mfu = _mfu(run, tokens_all, seconds)
    if mfu is not None:
        record["mfu"] = mfu
    return record


def _mfu(run: Run, tokens: float, seconds: float) -> float | None:
    if run.accelerator.device.type != "cuda":
        return None
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_FLOPS.items() if k in name), None)
    if peak is None:
        return None
    return run.flops_per_token * tokens / seconds / (peak * run.accelerator.num_processes)


# ---------------------------------------------------------------------------------------------
# the run


def train_experiment(
    example_paths: Sequence[str], model: str, out_dir: str, config: TrainConfig,
    *, on_step_end: StepHook | None = None, should_stop: Callable[[], bool] | None = None,
) -> None:
    """Train `model` on the masks parquet files `example_paths` and write `out_dir`:
    the model folder (safetensors + tokenizer), train_log.jsonl, trainer_state.json, budget.json
    (`training.budget`). Resumes from out_dir/checkpoints/ when a previous run left one.
    `on_step_end(step)` is called after every optimiser step (tests use it to stop a run);
    when `should_stop()` turns true in any process (SIGTERM at a time limit), the run saves a
    checkpoint after the current step and raises `resume.Preempted`."""
    run = setup_run(example_paths, model, out_dir, config)
    log_path = run.out_dir / C.LOG_FILE
    start = C.resume(run.accelerator, run.checkpoints, config, log_path)
    if start == 0 and run.accelerator.is_main_process:
        log_path.unlink(missing_ok=True)
    began = time.perf_counter()
    for step in range(start, run.total):
        record = train_step(run, step)
        if run.accelerator.is_main_process and ((step + 1) % config.log_every == 0 or step + 1 == run.total):
            _append_log(log_path, record)
        if config.save_every and (step + 1) % config.save_every == 0 and step + 1 < run.total:
            C.save_checkpoint(run.accelerator, run.checkpoints, step + 1, config, run.total)
        if on_step_end is not None:
            on_step_end(step)
        if step + 1 < run.total and _stop_agreed(run, should_stop):
            _checkpoint_and_stop(run, step + 1)
    if config.keep_last_checkpoint:
        C.save_checkpoint(run.accelerator, run.checkpoints, run.total, config, run.total)
    C.save_final_model(run.accelerator, run.module, run.tokenizer, run.out_dir, config.lora is not None)
    _write_state(run, start, time.perf_counter() - began, example_paths)
    C.finish(run.accelerator, run.checkpoints, config.keep_last_checkpoint)


def _stop_agreed(run: Run, should_stop: Callable[[], bool] | None) -> bool:
    """Whether any process was asked to stop: every process must checkpoint at the same step."""
    if should_stop is None:
        return False
    flag = torch.tensor([1.0 if should_stop() else 0.0], device=run.accelerator.device)
    return bool(run.accelerator.reduce(flag, reduction="sum").item() > 0)


def _checkpoint_and_stop(run: Run, steps_done: int) -> None:
    from faulttune.resume import Preempted

    if latest_step(run.checkpoints) != steps_done:
        C.save_checkpoint(run.accelerator, run.checkpoints, steps_done, run.config, run.total)
    raise Preempted(f"training stopped on request after step {steps_done} of {run.total}; "
                    f"checkpoint in {run.checkpoints}")


def latest_step(folder: Path) -> int | None:
    last = C.latest_checkpoint(folder)
    return int(last.name.split("-")[1]) if last is not None else None


def train_step(run: Run, step: int) -> dict[str, float]:
    """One optimiser step at lr_at(step); returns its log record."""
    lr = lr_at(step, run.config, run.total)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    began = time.perf_counter()
    metrics, tokens = accumulate_gradients(run, step)
    metrics["grad_norm"] = [apply_gradients(run)]
    record = step_record(run, step, lr, metrics, tokens, time.perf_counter() - began)
    run.history.append(record)
    log.info("step %d/%d loss %.4f lr %.3g %.0f tok/s", step + 1, run.total, record["loss"], lr,
             record["tokens_per_s"])
    return record


def _append_log(path: Path, record: dict[str, float]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def _write_state(run: Run, start: int, seconds: float, example_paths: Sequence[str]) -> None:
    if not run.accelerator.is_main_process:
        return
    state = {
        "global_step": run.total, "total_steps": run.total, "resumed_from_step": start,
        "units": len(run.units), "model": run.model_name, "examples": list(example_paths),
        "num_processes": run.accelerator.num_processes, "accumulation": run.accum,
        "train_runtime_s": seconds, "final_loss": run.history[-1]["loss"] if run.history else None,
        "config": run.config.to_dict(),
    }
    (run.out_dir / C.STATE_FILE).write_text(json.dumps(state, indent=1))
    (run.out_dir / BUDGET_FILE).write_text(json.dumps(run.budget, indent=1))
