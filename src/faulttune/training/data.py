"""Training examples from masks parquet files, their grouping into units and the data order.

A *row* is one line of a masks file (docs/CONTRACTS.md "Training examples"); it carries its
source task (the ``task_id`` column, written by every stage from the training table on). A *unit*
is what the batch size counts: one row, except for CCT, where every row of one source task (its
``sft`` sample, its ``cct`` comparison pairs and their ``cct_seq`` bug-fix samples) forms one
unit, so that "each original sample that yields a comparison pair contributes all three terms in
the same step" (docs/methods.md §1.3, INTERPRETATION) and an epoch of CCT has as many units, and takes as
many L_lm updates, as an epoch of SFT on the same tasks.

Data order: a pure function of (seed, step), so a resumed run needs nothing but the step number.
Epoch e is a seeded permutation of the units; step s reads positions [p*B, (p+1)*B) of it
(p = s mod steps_per_epoch). The last step of an epoch takes the N - p*B units that are left, so
no unit appears twice in a step or in an epoch (with a few hundred examples and a global batch of
128, wrapping around would have put some units into a step twice).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from faulttune import methods
from faulttune.io import DataError

log = logging.getLogger(__name__)

PAIR_KINDS = ("cct", "fgit", "dpo", "target_dpo", "focused_dpo")


@dataclass(frozen=True)
class Side:
    """One token sequence of a row: ids, its mask (aligned to ids) and its response span."""

    ids: Tensor           # [T] int64
    mask: Tensor          # [T] float32, the masks file's chosen_mask / rejected_mask
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
    """What the batch size counts: every row of one source task (CCT) or one row."""

    task_id: str
    rows: tuple[Row, ...]

    def of(self, kind: str) -> list[Row]:
        return [row for row in self.rows if row.kind == kind]


def response_end(ids: Sequence[int], start: int, end_of_turn: int | None) -> int:
    """One past the last end-of-turn token (``mask_table.end_of_turn_id``: the chat
    template's, not necessarily the tokenizer's eos) at or after ``start``: the response's end as
    the masks table defines it; ``len(ids)`` when there is none."""
    if end_of_turn is not None:
        for i in range(len(ids) - 1, start - 1, -1):
            if ids[i] == end_of_turn:
                return i + 1
    return len(ids)


def _side(record: dict, prefix: str, where: str, end_of_turn: int | None, max_length: int) -> Side:
    ids, mask, start = record[f"{prefix}_ids"], record[f"{prefix}_mask"], record[f"{prefix}_start"]
    if ids is None or mask is None or start is None:
        raise DataError(f"{where}: field {prefix}_ids/_mask/_start is null for kind {record['kind']!r}")
    if len(mask) != len(ids):
        raise DataError(f"{where}: field {prefix}_mask has {len(mask)} entries for {len(ids)} ids")
    if len(ids) > max_length:
        raise DataError(f"{where}: field {prefix}_ids has {len(ids)} tokens > max_length {max_length}")
    if not 1 <= start < len(ids):
        raise DataError(f"{where}: field {prefix}_start {start} outside [1, {len(ids)})")
    end = response_end(ids, start, end_of_turn)
    return Side(torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.float32), start, end)


def _has_rejected_side(record: dict, where: str) -> bool:
    """Pair kinds have a rejected side; an fgit row may lack one (a task without a usable
    variant, trained as plain SFT inside the FGit run): then its H_c must be all zero."""
    kind = record["kind"]
    if kind == "fgit" and record["rejected_ids"] is None:
        if any(record["chosen_mask"] or ()):
            raise DataError(f"{where}: field chosen_mask is nonzero for an fgit row without a "
                            f"rejected side (a plain row trains every token at weight 1)")
        return False
    return kind in PAIR_KINDS


def parse_row(record: dict, where: str, end_of_turn: int | None, max_length: int) -> Row:
    """One masks-file record as tensors; a malformed field raises naming the file, row and field.
    ``end_of_turn`` is the end-of-turn token that closes a response."""
    kind, task_id = record["kind"], record.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise DataError(f"{where}: field task_id is {task_id!r}, expected the source task's id")
    chosen = _side(record, "chosen", where, end_of_turn, max_length)
    paired = _has_rejected_side(record, where)
    rejected = _side(record, "rejected", where, end_of_turn, max_length) if paired else None
    first_diff = record.get("first_diff")
    if kind == "cct" and first_diff is None:
        raise DataError(f"{where}: field first_diff is null for a cct row")
    return Row(kind, str(record["id"]), task_id, where, chosen, rejected, first_diff)


def _longest_side(record: dict) -> int:
    return max(len(record.get(f"{side}_ids") or ()) for side in ("chosen", "rejected"))


def _fits_as_plain(record: dict, max_length: int) -> bool:
    """An fgit pair row whose y_i is longer than ``max_length`` while y_c fits: the task
    trains as a plain row, as it would in a masks file built at that max_length."""
    return (record["kind"] == "fgit" and record["rejected_ids"] is not None
            and len(record["chosen_ids"] or ()) <= max_length)


@dataclass(frozen=True)
class LoadedRows:
    """The rows a run trains on and where the others are: ``too_long``, rows left out because a
    side is longer than the run's max_length; ``plain``, fgit pair rows whose y_i is longer,
    trained as their task's plain row (each a ``"<file> row <i> (<n> tokens)"``)."""

    rows: list[Row]
    too_long: list[str]
    plain: list[str]


def load_rows(paths: Sequence[str], method: str, end_of_turn: int | None, max_length: int,
              params: Mapping[str, Any] | None = None) -> LoadedRows:
    """Every row of the masks files that fits the run's ``max_length``, in file order.

    Masks files are shared by experiments and keep what the longest ``max_length`` of the run
    admits; rows are never truncated. A row with a side longer than ``max_length`` is left out
    and counted, except an fgit pair row whose correct code fits: FGit trains every task that
    the SFT baseline trains at the same max_length, so that task trains as a plain row (its
    chosen side is the task's solution in the same prompt, exactly the plain row
    ``mask_table.build_fgit_rows`` writes at that max_length). A kind the method does not use is
    an error; a kind whose loss term the run's ``params`` weigh 0 is skipped
    (:meth:`faulttune.methods.Method.trained_row_kinds`)."""
    from faulttune.mask_table import plain_fgit_row, read_masks

    allowed = methods.get(method).row_kinds
    trained = methods.get(method).trained_row_kinds(params or {})
    rows, too_long, plain = [], [], []
    for path in paths:
        table, _ = read_masks(path)
        for index, record in enumerate(table.to_pylist()):
            where = f"{path} row {index}"
            if record["kind"] not in allowed:
                raise DataError(
                    f"{where}: field kind {record['kind']!r} is not used by method {method!r} "
                    f"(expected one of {allowed})"
                )
            if record["kind"] not in trained:
                continue
            longest = _longest_side(record)
            if longest > max_length and _fits_as_plain(record, max_length):
                plain.append(f"{where} ({longest} tokens)")
                record = plain_fgit_row(record)
            elif longest > max_length:
                too_long.append(f"{where} ({longest} tokens)")
                continue
            rows.append(parse_row(record, where, end_of_turn, max_length))
    if too_long:
        log.warning("left out %d rows longer than max_length %d, e.g. %s", len(too_long),
                    max_length, too_long[0])
    if plain:
        log.warning("%d fgit rows have a y_i longer than max_length %d: their tasks train as "
                    "plain rows, e.g. %s", len(plain), max_length, plain[0])
    if not rows:
        raise DataError(f"no training examples of at most {max_length} tokens in {list(paths)}")
    return LoadedRows(rows, too_long, plain)


def group_units(rows: Sequence[Row], method: str) -> list[Unit]:
    """Units in order of first appearance. CCT: all rows of one source task; every other
    method: one row per unit."""
    if method != "cct":
        return [Unit(row.task_id, (row,)) for row in rows]
    by_task: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_task[row.task_id].append(row)
    units = [Unit(task_id, tuple(group)) for task_id, group in by_task.items()]
    orphans = [u.task_id for u in units if not u.of("sft")]
    if orphans:
        log.warning("cct: %d of %d tasks have comparison rows but no sft row (e.g. %r): they add "
                    "units that the SFT baseline does not train on", len(orphans), len(units),
                    orphans[0])
    return units


def steps_per_epoch(n_units: int, batch_size: int) -> int:
    return math.ceil(n_units / batch_size)


def total_steps(n_units: int, batch_size: int, epochs: float, max_steps: int | None) -> int:
    if max_steps is not None:
        return max_steps
    return max(1, math.ceil(epochs * steps_per_epoch(n_units, batch_size)))


def step_units(step: int, n_units: int, batch_size: int, seed: int) -> list[int]:
    """Indices of the units of optimiser step ``step`` (all processes together): B distinct
    units, fewer on the last step of an epoch."""
    per_epoch = steps_per_epoch(n_units, batch_size)
    epoch, position = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n_units, generator=generator).tolist()
    return order[position * batch_size:(position + 1) * batch_size]


def process_micro_batches(
    units: Sequence[int], process_index: int, num_processes: int, micro_batch_size: int,
    micro_steps: int,
) -> list[list[int]]:
    """This process's contiguous share of a step's units, cut into exactly ``micro_steps``
    micro-batches of at most ``micro_batch_size`` units. A full step (B = micro_steps x
    micro_batch_size x processes units) fills every micro-batch; on a short last step the shares
    differ by at most one unit and the micro-batches past a process's share are EMPTY: the
    trainer still runs them (as zero-loss passes), because every process must run the same
    number of micro-steps (DDP's gradient sync, ZeRO's accumulation boundary)."""
    n = len(units)
    mine = list(units[n * process_index // num_processes:n * (process_index + 1) // num_processes])
    batches = [mine[i:i + micro_batch_size] for i in range(0, len(mine), micro_batch_size)]
    if len(batches) > micro_steps:
        raise ValueError(f"{len(mine)} units do not fit {micro_steps} micro-batches of "
                         f"{micro_batch_size}")
    return batches + [[] for _ in range(micro_steps - len(batches))]
