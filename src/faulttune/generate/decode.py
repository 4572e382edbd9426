"""The decode loop of the hf backend: continuous batching over the model's KV cache on CPU or GPU.

:func:`decode_rows` is a hand-written decode loop instead of ``model.generate``: a row that
finishes (EOS, ``max_new_tokens``, its done-check: stop string or stop rule) leaves the batch at
once (``Cache.batch_select_indices``), and waiting prompts, sorted by length, are prefilled and
merged into the running batch when enough slots are free. This removes the padding steps that
static batches spend on finished rows (docs/cpu_notes.md: over half of the decode steps). Rows are
left-padded with an attention mask and explicit position ids, so a row's tokens do not depend on
the other rows: greedy output equals batch-1 ``model.generate(do_sample=False)`` (tested).

Two costs that grow with the prompt are cut (measured on the demo teacher job: 32 prompts of
~450 tokens x 3 samples). Identical prompts (the ``n`` samples of one conversation) are admitted
together, prefilled once and their cache rows repeated: prefill 78 s -> 28 s. Keys and values are
appended in place into spare room (:class:`GrowingLayer`) instead of ``DynamicLayer``'s
``torch.cat`` of the whole cache at every step: decode 122 s -> 112 s, same tokens.

Sampling (temperature > 0) draws each row from its own ``torch.Generator`` seeded from
``(seed, row index)``, so samples are reproducible and independent of the batch size.

``transformers``' own continuous batching (``model.generate_batch``) was measured against this
loop in ``bench/generate_throughput.py``; the figures and the decision are in that bench's doc.
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
from transformers.cache_utils import DynamicLayer

from faulttune.generate.cores import CoreShare

log = logging.getLogger(__name__)

# (row index, new token ids so far) -> True when the row is finished.
DoneCheck = Callable[[int, list[int]], bool]
# (logits of the running rows (B, V) float32, their row indices) -> next token per row (B,)
Picker = Callable[[torch.Tensor, list[int]], torch.Tensor]


# Tokens of spare room a cache layer allocates each time it runs out.
CACHE_ROOM = 128


class GrowingLayer(DynamicLayer):
    """A ``DynamicLayer`` that appends new keys/values in place into spare room.

    ``keys``/``values`` stay plain (B, heads, L, head_dim) tensors, views of a buffer with
    ``CACHE_ROOM`` more tokens. Code that replaces them (row selection, merging, trimming) simply
    makes the next ``update`` copy them into a fresh buffer.
    """

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.keys, self._key_room = _append(self.keys, getattr(self, "_key_room", None), key_states)
        self.values, self._value_room = _append(
            self.values, getattr(self, "_value_room", None), value_states
        )
        return self.keys, self.values


def _append(
    cached: torch.Tensor, room: torch.Tensor | None, new: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``cached`` + ``new`` along the sequence (dim 2) as a view of ``room``, reallocated when
    ``cached`` is no longer a view of it or it is full."""
    length = cached.shape[2] if cached.numel() else 0
    total = length + new.shape[2]
    owned = (
        room is not None
        and length > 0
        and cached.data_ptr() == room.data_ptr()
        and cached.stride() == room.stride()
        and cached.shape[:2] == room.shape[:2]
    )
    if not owned or room.shape[2] < total:
        batch, heads, _, dim = new.shape
        room = new.new_empty(batch, heads, total + CACHE_ROOM, dim)
        if length:
            room[:, :, :length] = cached
    room[:, :, length:total] = new
    return room[:, :, :total], room


def _new_cache(model: Any) -> Any:
    """An empty cache for ``model`` whose plain layers grow in place (sliding ones stay as they are)."""
    cache = DynamicCache(config=model.config)
    cache.layers = [GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


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
    """Run the prompts through the model; the new batch and the last-position logits (B, V).

    Identical prompts are run once; their cache rows, mask and logits are then repeated."""
    unique: dict[tuple[int, ...], int] = {}
    for prompt in prompts:
        unique.setdefault(tuple(prompt), len(unique))
    ids, mask = _left_pad([list(p) for p in unique], pad_id, model.device)
    cache = _new_cache(model)  # filled in place by the forward
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=_position_ids(mask),
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    logits = out.logits[:, -1, :].float()
    if len(unique) < len(prompts):
        index = torch.tensor([unique[tuple(p)] for p in prompts], device=mask.device)
        cache.batch_select_indices(index)
        mask, logits = mask[index], logits[index]
    empty = torch.empty(0, dtype=torch.long, device=mask.device)
    return _Batch(cache, mask, mask.sum(-1), empty, list(rows)), logits


def _forward(model: Any, batch: _Batch) -> torch.Tensor:
    """Feed ``batch.next_tokens``; the cache grows by one column in place. Returns logits (B, V)."""
    one = torch.ones((batch.size, 1), dtype=batch.mask.dtype, device=batch.mask.device)
    batch.mask = torch.cat([batch.mask, one], dim=-1)
    out = model(
        input_ids=batch.next_tokens[:, None],
        attention_mask=batch.mask,
        position_ids=batch.positions[:, None],
        cache=batch.cache,
        use_cache=True,
    )
    batch.positions = batch.positions + 1
    return out.logits[:, -1, :].float()


def _plain_layers(cache: Any) -> list[Any] | None:
    """The cache's layers when none is a sliding window (those we may pad and trim)."""
    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) not in (DynamicLayer, GrowingLayer) for layer in layers):
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
    cores: CoreShare | None = None,
) -> list[list[int]]:
    """New token ids for every prompt (EOS not included), in input order.

    At most ``batch_size`` rows decode at once. Prompts are admitted shortest first; a row leaves
    the batch when it emits an EOS id, reaches ``max_new_tokens`` or ``is_done(row, ids)`` is true,
    and waiting prompts are prefilled into the freed slots once a quarter of the batch is free.
    ``cores`` (CPU) sets the torch threads from the load of other processes as decoding goes.
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
    mergeable = _plain_layers(_new_cache(model)) is not None
    batch: _Batch | None = None
    with torch.inference_mode(), bar:
        while waiting or batch is not None:
            free = batch_size - (batch.size if batch else 0)
            if waiting and (batch is None or (mergeable and free >= refill_at)):
                if cores:
                    cores.check()
                rows = _take_whole_groups(waiting, free, prompts)
                batch = _admit(model, batch, rows, prompts, pick, recorder, pad_id, mergeable)
            if batch is None:
                continue
            if cores:
                cores.tick()
            logits = _forward(model, batch)
            batch = recorder.take(batch, pick(logits, batch.rows))
    if cores:
        cores.restore()
    return outputs


def _take_whole_groups(waiting: deque[int], free: int, prompts: Sequence[list[int]]) -> list[int]:
    """Up to ``free`` rows from the front of the queue. Rows with the same prompt wait in a run
    (the sort is stable); a run that would be split is left for the next admission when other
    rows were taken, so that its prompt is prefilled once."""
    rows = [waiting.popleft() for _ in range(min(free, len(waiting)))]
    if waiting and prompts[waiting[0]] == prompts[rows[-1]]:
        split = len(rows)
        while split > 0 and prompts[rows[split - 1]] == prompts[rows[-1]]:
            split -= 1
        if split > 0:
            waiting.extendleft(reversed(rows[split:]))
            rows = rows[:split]
    return rows


def _admit(
    model: Any,
    batch: _Batch | None,
    rows: list[int],
    prompts: Sequence[list[int]],
    pick: Picker,
    recorder: _Recorder,
    pad_id: int,
    mergeable: bool,
) -> _Batch | None:
    """Prefill ``rows`` in groups, record their first tokens, merge the unfinished into ``batch``."""
    for group in _prefill_groups(rows, prompts, mergeable):
        fresh, logits = _prefill(model, [prompts[r] for r in group], group, pad_id)
        fresh_kept = recorder.take(fresh, pick(logits, fresh.rows))
        if fresh_kept is not None:
            batch = _merge(batch, fresh_kept)
    return batch


# Distinct prompts prefilled in one forward. Prefill is compute-bound, so small groups of similar length
# (the queue is sorted) cost no speed and avoid computing the padding of one long prompt in all.
PREFILL_GROUP = 4


def _prefill_groups(
    rows: list[int], prompts: Sequence[list[int]], mergeable: bool
) -> list[list[int]]:
    """Admitted rows split for prefill, ``PREFILL_GROUP`` distinct prompts a group (rows with the
    same prompt are adjacent: the queue is sorted stably); one group when caches cannot merge."""
    if not mergeable:
        return [rows]
    groups: list[list[int]] = []
    distinct: set[tuple[int, ...]] = set()
    for row in rows:
        prompt = tuple(prompts[row])
        if not groups or (prompt not in distinct and len(distinct) == PREFILL_GROUP):
            groups.append([])
            distinct = set()
        distinct.add(prompt)
        groups[-1].append(row)
    return groups
