"""Setting a run up: the method's recipe (resolved once), examples -> units, the model (+ LoRA,
+ the method's head), AdamW, ``accelerate.prepare`` and the reference model or log-probs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from faulttune import methods
from faulttune.batching import Batch, Unit, windowed_logits
from faulttune.training import MIN_STEPS
from faulttune.training.budget import run_budget
from faulttune.training.config import TrainConfig
from faulttune.training.data import load_rows, step_units, total_steps
from faulttune.training.reference import cached_reference, fingerprint, precompute_reference

log = logging.getLogger(__name__)


class PolicyModule(nn.Module):
    """The language model plus the method's head (a score per token) when it has one."""

    def __init__(self, lm: nn.Module, head: nn.Module | None) -> None:
        super().__init__()
        self.lm, self.head = lm, head

    def forward(self, input_ids: Tensor, attention_mask: Tensor, window_start: Tensor,
                width: int, rows: int | None = None) -> tuple[Tensor, Tensor | None]:
        """Window logits `[rows, W, V]` (see batching.Batch) and the head's scores `[R, T]`."""
        logits, hidden = windowed_logits(self.lm, input_ids, attention_mask, window_start, width,
                                         with_hidden=self.head is not None, rows=rows)
        scores = self.head(hidden) if self.head is not None else None
        return logits, scores


@dataclass
class Run:
    config: TrainConfig
    recipe: Any  # the method's faulttune.methods.recipe.Recipe
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


@dataclass
class PrepareContext:
    """What a recipe's ``prepare`` may use: the models its method requires (role -> folder)."""

    models: Mapping[str, str]
    accelerator: Any
    pad_id: int
    micro_batch_size: int

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def load_model(self, path: str) -> nn.Module:
        from faulttune.models import load_model

        return load_model(path, precision="fp32", device=str(self.device))

    def autocast(self) -> contextlib.AbstractContextManager:
        return self.accelerator.autocast()


def mixed_precision(precision: str, device: str) -> str:
    from faulttune.models import auto_dtype

    dtype = auto_dtype(precision, device)
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "no")


def build_policy(model_name: str, config: TrainConfig, recipe: Any, device: str) -> PolicyModule:
    """fp32 master weights (autocast does bf16/fp16), LoRA if asked, the method's head if any."""
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
    head = recipe.make_head(lm.config.hidden_size)
    return PolicyModule(lm, head.to(device) if head is not None else None).train()


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


def setup_run(example_paths: Sequence[str], model: str, out_dir: str, config: TrainConfig,
              models: Mapping[str, str] | None = None) -> Run:
    """``models``: the folders of the models the method requires, by role."""
    from accelerate import Accelerator, PartialState
    from accelerate.utils import set_seed

    from faulttune.mask_table import end_of_turn_id
    from faulttune.models import load_tokenizer

    recipe = methods.get(config.method).recipe(config.params)
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
    loaded = load_rows(example_paths, recipe.row_kinds, end_of_turn_id(tokenizer),
                       config.max_length, config.method, recipe.skipped_kinds)
    units = recipe.prepare(recipe.group_units(loaded.rows), PrepareContext(
        models or {}, accelerator, tokenizer.pad_token_id, config.micro_batch_size))
    steps = total_steps(len(units), config.batch_size, config.epochs, config.max_steps)
    policy = build_policy(model, config, recipe, str(accelerator.device))
    n_params = sum(p.numel() for p in policy.lm.parameters())
    ref_model = _frozen_reference(policy, config, recipe)
    optimizer = build_optimizer(policy, config)
    module, optimizer = accelerator.prepare(policy, optimizer)
    run = Run(config, recipe, model, Path(out_dir), accelerator, module, optimizer, tokenizer,
              units, steps, accum, ref_model=ref_model, flops_per_token=6.0 * n_params,
              budget=run_budget(units, recipe, config, steps, left_out_too_long=len(loaded.too_long),
                                plain_twin_too_long=len(loaded.plain)))
    run.out_dir.mkdir(parents=True, exist_ok=True)
    if recipe.reference and config.precompute_ref:
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


def _frozen_reference(policy: PolicyModule, config: TrainConfig, recipe: Any) -> nn.Module | None:
    if not recipe.reference or config.precompute_ref:
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
    drawn = drawn_units(run)

    def forward(batch: Batch) -> Tensor:
        return run.module(batch.input_ids, batch.attention_mask, batch.window_start,
                          batch.labels.shape[1])[0]

    def compute() -> Tensor:
        run.module.eval()
        try:
            return precompute_reference(forward, run.units, run.recipe, run.tokenizer.pad_token_id,
                                        cfg.micro_batch_size, acc, drawn)
        finally:
            run.module.train()

    key = fingerprint(run.units, run.recipe.fingerprint(), run.model_name, cfg.precision, drawn)
    return cached_reference(run.out_dir / "ref_logps.pt", key, compute, acc)
