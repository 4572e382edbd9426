"""SFT's training behaviour: every row's response, token-mean NLL (``losses.sft_loss``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor

from faulttune.batching import Batch, Layout, Row, Unit, masked_labels, rows_of, target_count
from faulttune.losses import sft_loss
from faulttune.methods.recipe import LossOut, Recipe, Reference, Scores, sides


class SFT(Recipe):
    """One group ``lm`` of every row (the training table's solutions, or one side of the pairs)."""

    def layout(self, units: Sequence[Unit]) -> Layout:
        return Layout({"lm": sides(units, tuple(self.row_kinds))})

    def normalisers(self, units: Sequence[Unit]) -> dict[str, float]:
        rows = rows_of(units, tuple(self.row_kinds))
        return {"lm_tokens": sum(target_count(r.chosen, False) for r in rows)}

    def loss_tokens(self, row: Row) -> int:
        return target_count(row.chosen, False)

    def objective(self, logits: Tensor, batch: Batch, norms: Mapping[str, float],
                  scores: Scores = None, reference: Reference = None) -> LossOut:
        labels = masked_labels(batch.labels, batch.mask)
        loss, metrics = sft_loss(logits, labels, num_target_tokens=norms["lm_tokens"])
        return loss, {"L_lm": loss.detach(), **metrics}
