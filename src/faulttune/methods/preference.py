"""The DPO family's training behaviour: a unit is one pair, one forward pass over ``chosen`` then
``rejected`` (so ``chunk(2)`` splits them), masked summed log-probs for the policy and the
reference alike (the masks file's masks: DPO every response token, Target-DPO the rejected D-
lines, Focused-DPO the middles, TIS-DPO token weights)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from faulttune.batching import Batch, Layout, Row, Unit, target_count
from faulttune.losses import (
    dpo_loss,
    focused_preference_masks,
    preference_logps,
    rpo_loss,
)
from faulttune.methods.recipe import LossOut, Recipe, Reference, Scores, sides


class DPO(Recipe):
    """DPO (and Target-DPO: the same loss on its masks): ``loss_fn`` of the masked log-ratios."""

    loss_fn = staticmethod(dpo_loss)

    def layout(self, units: Sequence[Unit]) -> Layout:
        kinds = tuple(self.row_kinds)
        return Layout({"chosen": sides(units, kinds), "rejected": sides(units, kinds, True)})

    def normalisers(self, units: Sequence[Unit]) -> dict[str, float]:
        """``pairs`` and ``chosen_tokens`` (RPO's NLL)."""
        rows = [unit.rows[0] for unit in units]
        return {"pairs": len(rows), "chosen_tokens": sum(target_count(r.chosen, False) for r in rows)}

    def loss_tokens(self, row: Row) -> int:
        """The masked tokens of both sides."""
        return self.chosen_tokens(row) + target_count(row.rejected, False)

    def chosen_tokens(self, row: Row) -> int:
        return target_count(row.chosen, False)

    def masks(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Chosen / rejected token masks `[B, T]`, the same for the policy and the reference."""
        return batch.group("chosen", batch.mask), batch.group("rejected", batch.mask)

    def pair_logps(self, logits: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        chosen_mask, rejected_mask = self.masks(batch)
        return preference_logps(logits, batch.labels, chosen_mask, rejected_mask)

    def objective(self, logits: Tensor, batch: Batch, norms: Mapping[str, float],
                  scores: Scores = None, reference: Reference = None) -> LossOut:
        if reference is None:
            raise ValueError(f"{self.name} needs the reference log-probs")
        chosen, rejected = self.pair_logps(logits, batch)
        args = (chosen, rejected, reference[0].to(chosen), reference[1].to(chosen))
        return self.loss(args, batch, norms)

    def loss(self, args: tuple[Tensor, ...], batch: Batch, norms: Mapping[str, float]) -> LossOut:
        return self.loss_fn(*args, beta=self.params["beta"], num_pairs=norms["pairs"])


class RPO(DPO):
    """DPO (or Target-DPO) + alpha * token-mean NLL of the chosen responses."""

    def loss(self, args: tuple[Tensor, ...], batch: Batch, norms: Mapping[str, float]) -> LossOut:
        lengths = (batch.group("chosen", batch.mask)[:, 1:] != 0).sum(dim=1)
        return rpo_loss(*args, lengths, beta=self.params["beta"], alpha=self.params["alpha"],
                        num_pairs=norms["pairs"], num_chosen_tokens=norms["chosen_tokens"])


class FocusedDPO(DPO):
    """Chosen weighted (focus_weight on the middle, 1 on the suffix), rejected middle only."""

    def masks(self, batch: Batch) -> tuple[Tensor, Tensor]:
        chosen, rejected = super().masks(batch)
        completion = batch.group("chosen", batch.response)
        return focused_preference_masks(completion, chosen, rejected, self.params["focus_weight"])

    def chosen_tokens(self, row: Row) -> int:
        """Chosen tokens with a nonzero weight, as `masks` computes them on the pair's window."""
        a = min(row.chosen.start, row.rejected.start) - 1
        parts = [row.chosen.response()[a:], row.chosen.mask[a:], row.rejected.mask[a:]]
        width = max(len(p) for p in parts)
        padded = [torch.nn.functional.pad(p, (0, width - len(p))).unsqueeze(0) for p in parts]
        weights, _ = focused_preference_masks(*padded, middle_weight=1.0)  # only nonzero-ness counts
        return int((weights[0, 1:] != 0).sum())
