"""The decode loop of the hf backend: continuous batching over the model's KV cache on CPU or GPU.

:func:`decode_rows` is a hand-written decode loop instead of ``model.generate``: a row that
finishes (EOS, ``max_new_tokens``, its done-check: stop string or stop rule) leaves the batch at
once (``Cache.batch_select_indices``), and waiting prompts, sorted by length, are prefilled and
merged into the running batch when enough slots are free. This removes the padding steps that
static batches spend on finished rows (CPU_NOTES: over half of the decode steps). Rows are
left-padded with an attention mask and explicit position ids, so a row's tokens do not depend on
the other rows: greedy output equals batch-1 ``model.generate(do_sample=False)`` (tested).

Sampling (temperature > 0) draws each row from its own ``torch.Generator`` seeded from
``(seed, row index)``, so samples are reproducible and independent of the batch size.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import DynamicCache

log = logging.getLogger(__name__)

# (row index, new token ids so far) -> True when the row is finished.
DoneCheck = Callable[[int, list[int]], bool]
# (logits of the running rows (B, V) float32, their row indices) -> next token per row (B,)
Picker = Callable[[torch.Tensor, list[int]], torch.Tensor]


@dataclass
class _Batch:
    """The rows being decoded together and their shared state.

    ``cache`` holds keys/values (B, heads, L, head_dim) per layer; ``mask`` (B, L) marks real
    tokens (left padding is 0); ``positions`` (B,) is the position id of the token fed next;
    ``next_tokens`` (B,) the tokens chosen but not yet fed; ``rows`` the row index of each line.
    """

    cache: Any
    mask: torch.Tensor
    positions: torch.Tensor
    next_tokens: torch.Tensor
    rows: list[int]

    @property
    def size(self) -> int:
        return len(self.rows)


def _left_pad(
    prompts: Sequence[list[int]], pad_id: int, device: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (B, L) left-padded with ``pad_id`` and the matching attention mask."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[i, width - len(prompt) :] = 1
    return ids.to(device), mask.to(device)


def _position_ids(mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over the real tokens of each row, as ``generate`` does (padding gets 1)."""
    positions = mask.cumsum(-1) - 1
    return positions.masked_fill(mask == 0, 1)


def _prefill(
    model: Any, prompts: Sequence[list[int]], rows: list[int], pad_id: int
) -> tuple[_Batch, torch.Tensor]:
    """Run the prompts through the model; the new batch and the last-position logits (B, V)."""
    ids, mask = _left_pad(prompts, pad_id, model.device)
    cache = DynamicCache(config=model.config)
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=_position_ids(mask),
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    positions = mask.sum(-1)
    empty = torch.empty(0, dtype=torch.long, device=ids.device)
    batch = _Batch(out.past_key_values, mask, positions, empty, list(rows))
    return batch, out.logits[:, -1, :].float()


def _forward(model: Any, batch: _Batch) -> torch.Tensor:
    """Feed ``batch.next_tokens``; the cache grows by one column. Returns logits (B, V)."""
    one = torch.ones((batch.size, 1), dtype=batch.mask.dtype, device=batch.mask.device)
    batch.mask = torch.cat([batch.mask, one], dim=-1)
    out = model(
        input_ids=batch.next_tokens[:, None],
        attention_mask=batch.mask,
        position_ids=batch.positions[:, None],
        past_key_values=batch.cache,
        use_cache=True,
    )
    batch.cache = out.past_key_values
    batch.positions = batch.positions + 1
    return out.logits[:, -1, :].float()


def _plain_layers(cache: Any) -> list[Any] | None:
    """The cache's layers when all are plain ``DynamicLayer`` (which we may pad and trim)."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
        return None
    return list(layers)


def _keep_rows(batch: _Batch, keep: list[int]) -> _Batch | None:
    """Only the lines ``keep`` of the batch (None when empty), then drop all-padding columns."""
    if not keep:
        return None
    if len(keep) < batch.size:
        index = torch.tensor(keep, dtype=torch.long, device=batch.mask.device)
        batch.cache.batch_select_indices(index)
        batch.mask = batch.mask[index]
        batch.positions = batch.positions[index]
        batch.next_tokens = batch.next_tokens[index]
        batch.rows = [batch.rows[i] for i in keep]
    _trim_left(batch)
    return batch


def _trim_left(batch: _Batch) -> None:
    """Remove leading columns that are padding in every row (they only cost attention time)."""
    layers = _plain_layers(batch.cache)
    if layers is None:
        return
    start = int((batch.mask.sum(0) > 0).nonzero()[0]) if batch.mask.numel() else 0
    if start == 0:
        return
    batch.mask = batch.mask[:, start:]
    for layer in layers:
        layer.keys = layer.keys[:, :, start:, :]
        layer.values = layer.values[:, :, start:, :]


def _merge(old: _Batch | None, new: _Batch) -> _Batch:
    """One batch of both: the shorter side is left-padded (masked zeros) to the longer length."""
    if old is None:
        return new
    width = max(old.mask.shape[1], new.mask.shape[1])
    for part in (old, new):
        pad = width - part.mask.shape[1]
        part.mask = F.pad(part.mask, (pad, 0))
        for layer in _plain_layers(part.cache) or []:
            layer.keys = F.pad(layer.keys, (0, 0, pad, 0))
            layer.values = F.pad(layer.values, (0, 0, pad, 0))
    for mine, theirs in zip(_plain_layers(old.cache) or [], _plain_layers(new.cache) or []):
        mine.keys = torch.cat([mine.keys, theirs.keys], dim=0)
        mine.values = torch.cat([mine.values, theirs.values], dim=0)
    old.mask = torch.cat([old.mask, new.mask], dim=0)
    old.positions = torch.cat([old.positions, new.positions])
    old.next_tokens = torch.cat([old.next_tokens, new.next_tokens])
    old.rows = old.rows + new.rows
    return old


@dataclass
class _Recorder:
    """Collects the new tokens of every row and decides when a row is finished."""

    outputs: list[list[int]]
    eos_ids: frozenset[int]
    max_new_tokens: int
    is_done: DoneCheck
    progress: Any

    def take(self, batch: _Batch, tokens: torch.Tensor) -> _Batch | None:
        """Record ``tokens`` (one per line); finished rows leave, the rest feed their token next."""
        keep: list[int] = []
        for line, (row, token) in enumerate(zip(batch.rows, tokens.tolist())):
            ids = self.outputs[row]
            if token not in self.eos_ids:
                ids.append(token)
            finished = (
                token in self.eos_ids or len(ids) >= self.max_new_tokens or self.is_done(row, ids)
            )
            if finished:
                self.progress.update(1)
            else:
                keep.append(line)
        batch.next_tokens = tokens
        return _keep_rows(batch, keep)


def decode_rows(
    model: Any,
    prompts: Sequence[list[int]],
    *,
    pick: Picker,
    max_new_tokens: int,
    batch_size: int,
    pad_id: int,
    eos_ids: Sequence[int],
    is_done: DoneCheck | None = None,
    progress: bool = False,
) -> list[list[int]]:
    """New token ids for every prompt (EOS not included), in input order.

    At most ``batch_size`` rows decode at once. Prompts are admitted shortest first; a row leaves
    the batch when it emits an EOS id, reaches ``max_new_tokens`` or ``is_done(row, ids)`` is true,
    and waiting prompts are prefilled into the freed slots once a quarter of the batch is free.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    outputs: list[list[int]] = [[] for _ in prompts]
    waiting = deque(sorted(range(len(prompts)), key=lambda i: len(prompts[i])))
    bar = tqdm(total=len(prompts), desc="generate", unit="sample", disable=not progress)
    recorder = _Recorder(
        outputs, frozenset(eos_ids), max_new_tokens, is_done or (lambda r, i: False), bar
    )
    refill_at = max(1, batch_size // 4)
    # Sliding-window caches cannot be padded and merged: those models decode static batches.
    mergeable = _plain_layers(DynamicCache(config=model.config)) is not None
    batch: _Batch | None = None
    with torch.inference_mode(), bar:
        while waiting or batch is not None:
            free = batch_size - (batch.size if batch else 0)
            admit = batch is None or (mergeable and free >= refill_at)
            if waiting and admit:
                rows = [waiting.popleft() for _ in range(min(free, len(waiting)))]
                for group in _prefill_groups(rows, mergeable):
                    fresh, logits = _prefill(model, [prompts[r] for r in group], group, pad_id)
                    fresh_kept = recorder.take(fresh, pick(logits, fresh.rows))
                    if fresh_kept is not None:
                        batch = _merge(batch, fresh_kept)
            if batch is None:
                continue
            logits = _forward(model, batch)
            batch = recorder.take(batch, pick(logits, batch.rows))
    return outputs


# Prompts prefilled in one forward. Prefill is compute-bound, so small groups of similar length
# (the queue is sorted) cost no speed and avoid computing the padding of one long prompt in all.
PREFILL_GROUP = 4


def _prefill_groups(rows: list[int], mergeable: bool) -> list[list[int]]:
    """Admitted rows split for prefill (one group when caches cannot be merged)."""
    if not mergeable:
        return [rows]
    return [rows[i : i + PREFILL_GROUP] for i in range(0, len(rows), PREFILL_GROUP)]
