"""Checkpoints (out_dir/checkpoints/step-N/), resume, the final model folder and trainer_state.json.

A checkpoint is `accelerator.save_state` (model incl. the method's head, optimizer, RNG states of every
process; sharded under FSDP / ZeRO-3) plus `trainer_state.json` (step, resolved config), written
last, so a folder without it is incomplete and ignored. The LR schedule and the data order are
pure functions of the step, so the step number restores them.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from faulttune.training.config import LOGGING_FIELDS, TrainConfig

log = logging.getLogger(__name__)
STATE_FILE = "trainer_state.json"
LOG_FILE = "train_log.jsonl"


def _weights_config(config: TrainConfig) -> dict[str, Any]:
    values = config.to_dict()
    for name in LOGGING_FIELDS:
        values.pop(name)
    return values


def latest_checkpoint(folder: Path) -> Path | None:
    """The complete checkpoint with the highest step, or None."""
    done = [p for p in folder.glob("step-*") if (p / STATE_FILE).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def save_checkpoint(accelerator: Any, folder: Path, steps_done: int, config: TrainConfig, total: int) -> None:
    target = folder / f"step-{steps_done}"
    accelerator.save_state(str(target))
    if accelerator.is_main_process:
        state = {"global_step": steps_done, "total_steps": total, "config": config.to_dict()}
        (target / STATE_FILE).write_text(json.dumps(state, indent=1))
    accelerator.wait_for_everyone()
    log.info("checkpoint %s", target)


def resume(accelerator: Any, folder: Path, config: TrainConfig, log_path: Path) -> int:
    """Load the last checkpoint if any; returns the number of steps already done (0 if none).
    A checkpoint of a different configuration is an error; log lines past it are dropped."""
    last = latest_checkpoint(folder)
    if last is None:
        return 0
    state = json.loads((last / STATE_FILE).read_text())
    stored = TrainConfig.from_dict(state["config"])
    if _weights_config(stored) != _weights_config(config):
        raise ValueError(f"{last} was written with another training configuration; delete "
                         f"{folder} to start over (stored {state['config']})")
    accelerator.load_state(str(last))
    steps = int(state["global_step"])
    if accelerator.is_main_process:
        truncate_log(log_path, steps)
    accelerator.wait_for_everyone()
    log.info("resumed from %s (step %d)", last, steps)
    return steps


def truncate_log(path: Path, steps_done: int) -> None:
    """Keep the log lines of steps <= steps_done (a killed run may have logged past its checkpoint)."""
    if not path.is_file():
        return
    lines = [l for l in path.read_text().splitlines() if l and json.loads(l)["step"] <= steps_done]
    path.write_text("".join(l + "\n" for l in lines))


def save_final_model(accelerator: Any, module: Any, tokenizer: Any, out_dir: Path, lora: bool) -> None:
    """The LM alone (the method's head dropped, LoRA merged) as safetensors + the tokenizer: a folder that
    `AutoModelForCausalLM.from_pretrained(out_dir)` loads."""
    accelerator.wait_for_everyone()
    state = accelerator.get_state_dict(module)  # gathers FSDP / ZeRO-3 shards
    lm = accelerator.unwrap_model(module).lm
    if lora:
        lm = lm.merge_and_unload()
        state = None  # the merged module holds the full weights (single process / DDP)
    else:
        state = {k[len("lm."):]: v for k, v in state.items() if k.startswith("lm.")}
    if accelerator.is_main_process:
        lm.save_pretrained(out_dir, state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(out_dir)
    accelerator.wait_for_everyone()


def finish(accelerator: Any, folder: Path, keep_last: bool) -> None:
    """Delete the checkpoints after the final save (all, or all but the last)."""
    if not accelerator.is_main_process or not folder.is_dir():
        return
    last = latest_checkpoint(folder) if keep_last else None
    for path in folder.iterdir():
        if path != last:
            shutil.rmtree(path, ignore_errors=True)
    if last is None:
        shutil.rmtree(folder, ignore_errors=True)
