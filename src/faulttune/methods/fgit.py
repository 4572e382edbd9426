"""FGit's training behaviour (docs/methods.md §2.3): weighted NLL on y_c; y_i's forward pass
(with gradient) only feeds the dynamic weight, and only for the rows that have a y_i."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from faulttune.batching import Batch, Layout, Row, Unit, masked_labels, rows_of, target_count
from faulttune.losses import fgit_loss, needs_incorrect
from faulttune.methods.recipe import LossOut, Recipe, Reference, Scores, sides


class FGit(Recipe):
    """Groups ``correct`` (y_c of every row) and, under the dynamic weightings, ``incorrect``
    (y_i of the rows that have one: plain rows train y_c at weight 1); extra ``paired`` marks
    which y_c rows have a y_i row."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kinds = tuple(self.row_kinds)
        self.incorrect = needs_incorrect(self.params["weighting"])

    def layout(self, units: Sequence[Unit]) -> Layout:
        groups = {"correct": sides(units, self.kinds)}
        if self.incorrect:
            groups["incorrect"] = sides(units, self.kinds, True)
        paired = torch.tensor([r.rejected is not None for r in rows_of(units, self.kinds)])
        return Layout(groups, {"paired": paired})

    def normalisers(self, units: Sequence[Unit]) -> dict[str, float]:
        """y_c's response tokens."""
        return {"lm_tokens": sum(target_count(r.chosen, True) for r in rows_of(units, self.kinds))}

    def loss_tokens(self, row: Row) -> int:
        """Every y_c response token, plus y_i's H_i tokens under the dynamic weightings."""
        incorrect = row.rejected is not None and self.incorrect
        return target_count(row.chosen, True) + (target_count(row.rejected, False) if incorrect else 0)

    def objective(self, logits: Tensor, batch: Batch, norms: Mapping[str, float],
                  scores: Scores = None, reference: Reference = None) -> LossOut:
        labels = masked_labels(batch.labels, batch.response)
        incorrect = (None, None, None)
        if batch.has("incorrect"):
            incorrect = (batch.group("incorrect", logits), batch.group("incorrect", labels),
                         batch.group("incorrect", batch.mask))
        p = self.params
        loss, metrics = fgit_loss(
            batch.group("correct", logits), batch.group("correct", labels),
            batch.group("correct", batch.mask), *incorrect, lam=p["lambda"],
            weighting=p["weighting"], fixed_weight=p["fixed_weight"],
            num_target_tokens=norms["lm_tokens"], paired=batch.extras["paired"],
        )
        metrics["fgit_weight"] = metrics.pop("mean_weight")
        return loss, metrics
