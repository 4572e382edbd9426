"""What a run trains on, counted before it starts: the figures that make two methods comparable.

``budget.json`` in the model folder (written with the model, the same for a resumed run):

    method                 the trained method
    train_tasks            distinct source tasks whose rows the run draws
    train_examples         masks rows drawn over the run (a row drawn in two epochs counts twice)
    train_steps            optimiser steps
    train_tokens           tokens that carry a loss term over the run (objectives.loss_tokens)
    train_tokens_by_kind   the same per row kind (CCT: sft = L_lm, cct_seq = L_seq, cct = L_token)
    units                  units per epoch (what the batch size counts)
    steps_per_epoch, batch_size
    few_steps              train_steps < MIN_STEPS: the run hardly trains (the trainer warns)
    left_out_too_long      masks rows longer than the run's max_length, not trained on
    plain_twin_too_long    FGit: pair rows whose y_i is longer than the run's max_length (y_c
                           fits), trained as their task's plain row (training.data.load_rows)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from faulttune.training import MIN_STEPS
from faulttune.training.config import TrainConfig
from faulttune.training.data import Unit, step_units, steps_per_epoch
from faulttune.training.objectives import loss_tokens


def run_budget(units: Sequence[Unit], config: TrainConfig, total_steps: int,
               left_out_too_long: int = 0, plain_twin_too_long: int = 0) -> dict[str, Any]:
    """The budget of a run of `total_steps` steps over `units` (see the module docstring)."""
    per_unit = [loss_tokens(unit, config.method, config.weighting) for unit in units]
    tasks: set[str] = set()
    examples = 0
    tokens: Counter[str] = Counter()
    for step in range(total_steps):
        for index in step_units(step, len(units), config.batch_size, config.seed):
            tasks.add(units[index].task_id)
            examples += len(units[index].rows)
            tokens.update(per_unit[index])
    return {
        "method": config.method, "train_tasks": len(tasks), "train_examples": examples,
        "train_steps": total_steps, "train_tokens": sum(tokens.values()),
        "train_tokens_by_kind": dict(sorted(tokens.items())), "units": len(units),
        "steps_per_epoch": steps_per_epoch(len(units), config.batch_size),
        "batch_size": config.batch_size, "few_steps": total_steps < MIN_STEPS,
        "left_out_too_long": left_out_too_long, "plain_twin_too_long": plain_twin_too_long,
    }
