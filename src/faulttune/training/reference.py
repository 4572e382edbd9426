"""The reference model of the preference methods: log-probs precomputed once, or a frozen copy.

Both go through `objectives.pair_logps` with the same masks as the policy (Target-DPO: the
reference rejected log-prob sums over the same D- mask), in eval mode, without gradient.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from faulttune.training.data import Unit
from faulttune.training.objectives import build_batch, pair_logps

log = logging.getLogger(__name__)
ForwardFn = Callable[[Any], Tensor]  # objectives.Batch -> window logits


def fingerprint(units: Sequence[Unit], method: str, focus_weight: float, model: str, precision: str,
                drawn: Sequence[int] | None = None) -> str:
    """Hash of everything the reference log-probs depend on (model, masks, ids, method, and
    which units were computed)."""
    digest = hashlib.sha256(f"{model}|{method}|{focus_weight}|{precision}".encode())
    if drawn is not None:
        digest.update(",".join(map(str, drawn)).encode())
    for unit in units:
        for row in unit.rows:
            for side in (s for s in (row.chosen, row.rejected) if s is not None):
                digest.update(side.ids.numpy().tobytes())
                digest.update(side.mask.numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def reference_logps_of(
    forward: ForwardFn, units: Sequence[Unit], unit_ids: Sequence[int], method: str,
    focus_weight: float, pad_id: int, device: torch.device,
) -> Tensor:
    """`[len(unit_ids), 2]` (chosen, rejected) summed masked log-probs under `forward`."""
    batch = build_batch([units[i] for i in unit_ids], unit_ids, method, "dynamic", pad_id).to(device)
    logits = forward(batch)
    chosen, rejected = pair_logps(logits, batch, method, focus_weight)
    return torch.stack([chosen, rejected], dim=1).float()


def precompute_reference(
    forward: ForwardFn, units: Sequence[Unit], method: str, focus_weight: float, pad_id: int,
    micro_batch_size: int, accelerator, drawn: Sequence[int] | None = None,
) -> Tensor:
    """`[N, 2]` reference log-probs of the units ``drawn`` (default: all; a run that draws only
    some of its units in its steps needs only theirs), computed once; the rows of units never
    drawn are NaN. Each process computes a contiguous shard of the drawn units (the last padded by
    wrapping around, so all run the same number of forward passes, which FSDP / ZeRO-3 need) and
    the shards are gathered."""
    todo = list(range(len(units))) if drawn is None else sorted(set(drawn))
    n, world, rank = len(todo), accelerator.num_processes, accelerator.process_index
    per = math.ceil(n / world)
    mine = [todo[(rank * per + k) % n] for k in range(per)]
    pieces = [
        reference_logps_of(forward, units, mine[i:i + micro_batch_size], method, focus_weight,
                           pad_id, accelerator.device)
        for i in range(0, per, micro_batch_size)
    ]
    gathered = accelerator.gather(torch.cat(pieces))  # [world * per, 2]; row j is todo[j] (j < n)
    values = torch.full((len(units), 2), float("nan"))
    values[todo] = gathered[:n].cpu()
    return values


def cached_reference(
    path: Path, key: str, compute: Callable[[], Tensor], accelerator
) -> Tensor:
    """The reference log-probs from `path` if it holds the same fingerprint, else computed and
    saved there (main process)."""
    if path.is_file():
        stored = torch.load(path, map_location="cpu")
        if stored.get("fingerprint") == key:
            log.info("reference log-probs from %s", path)
            return stored["logps"]
        log.info("%s was computed for other data or another model: recomputing", path)
    values = compute()
    if accelerator.is_main_process:
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"fingerprint": key, "logps": values}, tmp)
        tmp.replace(path)
    accelerator.wait_for_everyone()
    return values
