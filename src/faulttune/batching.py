"""Training examples as tensors: a row's sides, units, and one padded forward pass over them.

A *row* is one line of a masks file (docs/CONTRACTS.md "Training examples"); it carries its
source task. A *unit* is what the batch size counts: one row, or every row of one source task
(the method's registry entry says which). A micro-batch is ONE forward pass over all its
sequences, right-padded to a common length and stacked on dim 0 in the named groups of the
method's layout (:meth:`faulttune.methods.recipe.Recipe.layout`), e.g. ``chosen`` then
``rejected`` so that ``chunk(2)`` splits a preference batch.

Nothing here knows a method: the recipes of :mod:`faulttune.methods` choose the groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from faulttune.losses import IGNORE_INDEX


@dataclass(frozen=True)
class Side:
    """One token sequence of a row: ids, its mask (aligned to ids) and its response span."""

    ids: Tensor           # [T] int64
    mask: Tensor          # [T] float32, the masks file's chosen_mask / rejected_mask (or weights)
    start: int            # first response token
    end: int              # one past the response's end-of-turn token

    def response(self) -> Tensor:
        """[T] float32, 1 on the response tokens [start, end)."""
        out = torch.zeros(len(self.ids))
        out[self.start:self.end] = 1.0
        return out


@dataclass(frozen=True)
class Row:
    kind: str
    id: str
    task_id: str          # the source task (the masks file's task_id column)
    where: str            # "<file> row <i>", for error messages
    chosen: Side
    rejected: Side | None
    first_diff: int | None


@dataclass(frozen=True)
class Unit:
    """What the batch size counts: every row of one source task, or one row."""

    task_id: str
    rows: tuple[Row, ...]

    def of(self, kind: str) -> list[Row]:
        return [row for row in self.rows if row.kind == kind]


def rows_of(units: Sequence[Unit], kinds: Sequence[str] | None = None) -> list[Row]:
    """Every row of the units (of the given kinds), in unit order."""
    return [row for unit in units for row in unit.rows if kinds is None or row.kind in kinds]


def target_count(side: Side, use_response: bool) -> int:
    """Target tokens of one sequence as `losses.count_targets` counts them (position 0 never
    counts): its response tokens, or its nonzero mask."""
    marks = side.response() if use_response else side.mask
    return int((marks[1:] != 0).sum())


@dataclass
class Layout:
    """The sequences of each group of a micro-batch, in order; ``extras``: per-batch tensors a
    loss reads besides the sequences (e.g. the first differing positions of comparison pairs);
    ``logit_groups``: the groups whose logits a loss reads (None: all), laid out first."""

    groups: dict[str, list[Side]]
    extras: dict[str, Tensor] = field(default_factory=dict)
    logit_groups: tuple[str, ...] | None = None


@dataclass
class Batch:
    """One padded forward pass over R sequences.

    `input_ids`, `attention_mask` `[R, T]`: the full sequences, right-padded. The LM logits are
    computed only on a per-row WINDOW of positions [window_start[r], window_start[r] + W), where
    window_start = (first response token - 1), since no earlier position predicts a target; prompt
    logits are never materialised. `labels` (ids, -100 past the row's end), `mask` (the row's
    masks-file mask) and `response` (1 on response tokens) are `[R, W]`, cut to the same windows,
    so `logits[:, j]` predicts `labels[:, j + 1]` exactly as `faulttune.losses` expects. The two
    sides of a pair share their window start. `lengths` `[R]` are full-sequence lengths.
    `groups`: name -> rows; `units`: the global unit index of each example; `logit_rows`: the
    leading rows whose logits a loss reads; `extras`: the layout's extra tensors."""

    input_ids: Tensor
    attention_mask: Tensor
    window_start: Tensor
    labels: Tensor
    mask: Tensor
    response: Tensor
    lengths: Tensor
    groups: dict[str, slice]
    units: list[int]
    logit_rows: int
    extras: dict[str, Tensor] = field(default_factory=dict)

    def group(self, name: str, tensor: Tensor) -> Tensor:
        """The group's rows of `tensor`; the tensor itself when the group spans all of its rows,
        so that the backward pass does not scatter the logits' gradient into a fresh zero tensor
        of their full size (a slice's backward does, and for `[R, W, V]` logits that costs as
        much time as a masked loss may add)."""
        part = self.groups[name]
        if part.start == 0 and part.stop >= tensor.shape[0]:
            return tensor
        return tensor[part]

    def has(self, name: str) -> bool:
        part = self.groups.get(name)
        return part is not None and part.stop > part.start

    def to(self, device: torch.device | str) -> Batch:
        moved = {k: getattr(self, k).to(device) for k in ("input_ids", "attention_mask",
                 "window_start", "labels", "mask", "response", "lengths")}
        extras = {k: v.to(device) for k, v in self.extras.items()}
        return Batch(**moved, groups=self.groups, units=self.units, logit_rows=self.logit_rows,
                     extras=extras)


def _pad(sides: Sequence[Side], starts: Sequence[int], pad_id: int) -> dict[str, Tensor]:
    rows, full = len(sides), max(len(s.ids) for s in sides)
    width = max(len(s.ids) - a for s, a in zip(sides, starts))
    ids = torch.full((rows, full), pad_id, dtype=torch.long)
    attention = torch.zeros((rows, full), dtype=torch.long)
    labels = torch.full((rows, width), IGNORE_INDEX, dtype=torch.long)
    mask, response = torch.zeros((rows, width)), torch.zeros((rows, width))
    for r, (side, a) in enumerate(zip(sides, starts)):
        n = len(side.ids)
        ids[r, :n], attention[r, :n] = side.ids, 1
        labels[r, :n - a], mask[r, :n - a], response[r, :n - a] = side.ids[a:], side.mask[a:], side.response()[a:]
    return {"input_ids": ids, "attention_mask": attention, "window_start": torch.tensor(starts),
            "labels": labels, "mask": mask, "response": response,
            "lengths": torch.tensor([len(s.ids) for s in sides])}


def _window_starts(units: Sequence[Unit], groups: Mapping[str, list[Side]]) -> list[int]:
    """start - 1 per sequence; both sides of a pair use the smaller of their two starts."""
    pair_start = {}
    for unit in units:
        for row in unit.rows:
            if row.rejected is not None:
                first = min(row.chosen.start, row.rejected.start) - 1
                pair_start[id(row.chosen)] = pair_start[id(row.rejected)] = first
    return [pair_start.get(id(side), side.start - 1) for group in groups.values() for side in group]


def build_batch(units: Sequence[Unit], unit_ids: Sequence[int], layout: Layout, pad_id: int) -> Batch:
    """The padded forward pass of a micro-batch laid out by its method (``layout``)."""
    names = list(layout.groups)
    if layout.logit_groups is not None:
        names = [*layout.logit_groups, *(n for n in names if n not in layout.logit_groups)]
    ordered_groups = {name: layout.groups[name] for name in names}
    groups, ordered, start, logit_rows = {}, [], 0, 0
    for name, sides in ordered_groups.items():
        groups[name] = slice(start, start + len(sides))
        ordered.extend(sides)
        start += len(sides)
        if layout.logit_groups is None or name in layout.logit_groups:
            logit_rows += len(sides)
    padded = _pad(ordered, _window_starts(units, ordered_groups), pad_id)
    return Batch(**padded, groups=groups, units=list(unit_ids), logit_rows=max(1, logit_rows),
                 extras=dict(layout.extras))


def windowed_logits(lm, input_ids: Tensor, attention_mask: Tensor, window_start: Tensor,
                    width: int, with_hidden: bool = False, rows: int | None = None,
                    ) -> tuple[Tensor, Tensor | None]:
    """`lm`'s logits on the windows of the first `rows` rows only (`[rows, W, V]`), and the final
    hidden states `[R, T, d]` when asked: the decoder runs on the full sequences, the LM head on
    rows x W positions."""
    hidden = lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask,
                              use_cache=False).last_hidden_state
    rows = hidden.shape[0] if rows is None else rows
    positions = window_start[:rows].unsqueeze(1) + torch.arange(width, device=hidden.device)
    positions = positions.clamp(max=hidden.shape[1] - 1)
    picked = hidden[:rows].gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
    return lm.get_output_embeddings()(picked), (hidden if with_hidden else None)


def masked_labels(labels: Tensor, marks: Tensor) -> Tensor:
    return labels.masked_fill(marks == 0, IGNORE_INDEX)
