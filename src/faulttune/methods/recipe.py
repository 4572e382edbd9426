"""A method's training behaviour, resolved once when a run is set up.

:meth:`faulttune.methods.registry.Method.recipe` builds the method's :class:`Recipe` subclass with
its parameters; the trainer (:mod:`faulttune.training`) calls nothing but these methods, so it
never branches on a method's name:

    group_units      rows -> units (what the batch size counts)
    layout           units -> the groups of one forward pass (faulttune.batching.Layout)
    normalisers      the step-level counts of ALL units of an optimiser step, so accumulation
                     and the process count do not change the loss
    loss_tokens      tokens of a row that carry a loss term (budget.json)
    objective        the loss of one micro-batch
    pair_logps       reference methods: masked summed log-probs (chosen, rejected) of a batch,
                     for the policy and the reference alike
    prepare          runs once on the units before training (TIS-DPO's token weights)
    make_head        a head trained beside the model (CCT), or None
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from faulttune.batching import Batch, Layout, Row, Unit, rows_of
from faulttune.methods.kinds import TASKS

if TYPE_CHECKING:  # the registry imports the recipes (by name), never the other way round
    from faulttune.methods.registry import Method

log = logging.getLogger(__name__)
LossOut = tuple[Tensor, dict[str, Tensor]]
Scores = Tensor | None
Reference = tuple[Tensor, Tensor] | None


class Recipe:
    """The training behaviour of ``method`` with ``params`` (its own parameters, defaults filled)."""

    def __init__(self, method: Method, params: Mapping[str, Any]) -> None:
        self.method, self.params = method, dict(params)
        self.row_kinds = method.row_kinds(self.params)
        # kinds its examples hold that this run does not train (a loss term weighed 0)
        self.skipped_kinds = method.untrained_row_kinds(self.params)
        examples = method.examples_of(self.params)
        self.specs = [spec for e in examples for spec in e.rows]
        # row kinds read from the training table: a task's anchor when units are tasks
        self.task_kinds = tuple(k for e in examples if e.reads == TASKS for k in e.row_kinds())

    def kinds_built(self, build: str) -> tuple[str, ...]:
        """The row kinds this method reads that are built as ``build`` (registry.SOLUTION, ...)."""
        return tuple(dict.fromkeys(spec.kind for spec in self.specs if spec.build == build))

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def reference(self) -> bool:
        return self.method.reference

    def fingerprint(self) -> str:
        """What a cached reference depends on besides the data and the model."""
        return f"{self.name}|{json.dumps(self.params, sort_keys=True)}"

    # -- data ------------------------------------------------------------------------------

    def group_units(self, rows: Sequence[Row]) -> list[Unit]:
        """Units in order of first appearance: one row each, or every row of one source task."""
        if self.method.units == "row":
            return [Unit(row.task_id, (row,)) for row in rows]
        by_task: dict[str, list[Row]] = defaultdict(list)
        for row in rows:
            by_task[row.task_id].append(row)
        units = [Unit(task_id, tuple(group)) for task_id, group in by_task.items()]
        orphans = [u.task_id for u in units if not any(u.of(k) for k in self.task_kinds)]
        if orphans and self.task_kinds:
            log.warning("%s: %d of %d tasks have rows but no %s row (e.g. %r): they add units "
                        "that a baseline on the training table does not train on", self.name,
                        len(orphans), len(units), "/".join(self.task_kinds), orphans[0])
        return units

    def prepare(self, units: list[Unit], context: Any) -> list[Unit]:
        """Called once on the run's units before training (``context``: the run being set up)."""
        return units

    def make_head(self, hidden_size: int) -> nn.Module | None:
        return None

    # -- one step --------------------------------------------------------------------------

    def layout(self, units: Sequence[Unit]) -> Layout:
        raise NotImplementedError

    def normalisers(self, units: Sequence[Unit]) -> dict[str, float]:
        raise NotImplementedError

    def loss_tokens(self, row: Row) -> int:
        raise NotImplementedError

    def unit_loss_tokens(self, unit: Unit) -> dict[str, int]:
        """Tokens of one unit that carry a loss term, per row kind."""
        counts: dict[str, int] = {}
        for row in unit.rows:
            counts[row.kind] = counts.get(row.kind, 0) + self.loss_tokens(row)
        return counts

    def objective(self, logits: Tensor, batch: Batch, norms: Mapping[str, float],
                  scores: Scores = None, reference: Reference = None) -> LossOut:
        raise NotImplementedError

    def pair_logps(self, logits: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        raise NotImplementedError(f"{self.name} has no reference log-probs")


def sides(units: Sequence[Unit], kinds: Sequence[str], rejected: bool = False) -> list:
    """The chosen (or rejected, where present) sides of the units' rows of ``kinds``."""
    rows = rows_of(units, kinds)
    if rejected:
        return [row.rejected for row in rows if row.rejected is not None]
    return [row.chosen for row in rows]
