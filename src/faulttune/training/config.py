"""The training configuration (one dataclass) and the LR schedule.

The method and its parameters come from the registry (:mod:`faulttune.methods`): ``params`` holds
ALL of them by their user names (``lambda``, ``alpha``, ...), so the saved ``trainer_state.json``
shows the names the config uses. The defaults are filled once, where an experiment is expanded
(:func:`faulttune.methods.with_defaults`); a config that lacks one is an error, never filled here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from faulttune import methods

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Fields that change nothing about the trained weights (a resumed run may differ in them).
LOGGING_FIELDS = ("log_every", "save_every", "keep_last_checkpoint")


def _help(text: str, default: Any = None, **kwargs: Any) -> Any:
    return field(default=default, metadata={"help": text}, **kwargs)


@dataclass
class TrainConfig:
    """Everything one training run needs besides the data and the model name."""

    # --- method -----------------------------------------------------------------------------
    method: str = field(metadata={"help": "a trained method of the registry (`faulttune methods` lists them)"})
    params: dict[str, Any] = _help("every parameter of the method by its user name (faulttune.methods.with_defaults fills them from the registry)", None)  # noqa: RUF009
    # --- optimisation -----------------------------------------------------------------------
    lr: float = _help("peak learning rate of AdamW", 5e-6)
    epochs: float = _help("passes over the examples (fractional allowed); ignored if max_steps is set", 1.0)
    max_steps: int | None = _help("optimiser steps in total; overrides epochs", None)
    batch_size: int = _help("units (a row, or every row of a task: the method's registry entry) per optimiser step, all processes together", 8)
    micro_batch_size: int = _help("examples per forward pass and process; accumulation = batch_size / micro_batch_size / world_size", 8)
    max_length: int = _help("longest allowed sequence in tokens; a longer row is an error (rows are never truncated)", 1024)
    warmup_ratio: float = _help("fraction of the steps with a linear warm-up", 0.03)
    min_lr_ratio: float = _help("cosine floor as a fraction of lr", 0.0)
    weight_decay: float = _help("AdamW weight decay on matrices (biases and norms get none)", 0.0)
    adam_betas: tuple[float, float] = _help("AdamW betas", (0.9, 0.999))
    max_grad_norm: float | None = _help("clip the global gradient norm to this (None: no clipping)", 1.0)
    seed: int = _help("seed of the initial RNG state, the method's head and the data order", 0)
    # --- model ------------------------------------------------------------------------------
    lora: dict[str, Any] | None = _help("peft LoraConfig keyword arguments (r, lora_alpha, lora_dropout, target_modules) or None for full fine-tuning", None)  # noqa: RUF009
    precision: str = _help("auto | fp32 | bf16 | fp16; bf16/fp16 = autocast with fp32 master weights", "auto")
    gradient_checkpointing: bool = _help("recompute activations in the backward pass", False)
    # --- bookkeeping ------------------------------------------------------------------------
    log_every: int = _help("write a train_log.jsonl line every this many steps", 1)
    save_every: int | None = _help("checkpoint every this many steps (None: no checkpoints)", None)
    keep_last_checkpoint: bool = _help("keep the last checkpoint after the final save", False)
    precompute_ref: bool = _help("methods with a reference model: its log-probs computed once before training (else a frozen copy runs every step)", True)

    def __post_init__(self) -> None:
        self.params = dict(self.params or {})
        self.adam_betas = tuple(self.adam_betas)  # YAML gives a list
        for problem in self.problems():
            raise ValueError(f"TrainConfig: {problem}")

    def problems(self) -> list[str]:
        """Every bad value or combination, as messages that name the fields."""
        out = []
        trained = methods.trained_methods()
        if self.method not in trained:
            out.append(f"method {self.method!r} is not one of {trained}")
        else:
            out += methods.param_problems(self.method, self.params)
        if self.precision not in PRECISIONS:
            out.append(f"precision {self.precision!r} is not one of {PRECISIONS}")
        positive = {"lr": self.lr, "epochs": self.epochs, "batch_size": self.batch_size,
                    "micro_batch_size": self.micro_batch_size, "log_every": self.log_every}
        out += [f"{name} must be > 0, got {value}" for name, value in positive.items() if not value > 0]
        for name in ("max_steps", "save_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                out.append(f"{name} must be None or an integer >= 1, got {value!r}")
        if self.micro_batch_size > 0 and self.batch_size % self.micro_batch_size:
            out.append(f"batch_size {self.batch_size} is not a multiple of micro_batch_size {self.micro_batch_size}")
        if self.max_length < 2:
            out.append(f"max_length must be >= 2, got {self.max_length}")
        if not 0 <= self.warmup_ratio <= 1 or not 0 <= self.min_lr_ratio <= 1:
            out.append(f"warmup_ratio {self.warmup_ratio} and min_lr_ratio {self.min_lr_ratio} must lie in [0, 1]")
        if self.weight_decay < 0:
            out.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            out.append(f"max_grad_norm must be None or > 0, got {self.max_grad_norm}")
        if self.lora is not None and not isinstance(self.lora, Mapping):
            out.append(f"lora must be None or a mapping of LoraConfig arguments, got {self.lora!r}")
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from :meth:`to_dict`'s keys; an unknown key is an error."""
        values = dict(values)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["adam_betas"] = list(self.adam_betas)
        return values


def warmup_steps(config: TrainConfig, total_steps: int) -> int:
    return math.ceil(config.warmup_ratio * total_steps)


def lr_at(step: int, config: TrainConfig, total_steps: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based): a pure function of the step.

    Linear warm-up over the first W = ceil(warmup_ratio * total) steps, lr * (step + 1) / (W + 1)
    (never 0, so the first step already learns), then cosine decay from lr to min_lr_ratio * lr
    over the remaining steps: lr_min + (lr - lr_min) * (1 + cos(pi * (step - W) / (total - W))) / 2.
    """
    warmup = warmup_steps(config, total_steps)
    if step < warmup:
        return config.lr * (step + 1) / (warmup + 1)
    floor = config.lr * config.min_lr_ratio
    progress = (step - warmup) / max(1, total_steps - warmup)
    return floor + 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))) * (config.lr - floor)
