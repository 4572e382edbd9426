"""CCT's training behaviour (docs/methods.md §1.3): a unit is every row of one task, its sft
sample (L_lm), its comparison pairs (L_token on the head's scores, hidden states only) and their
bug-fix samples (L_seq), one forward pass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from faulttune.batching import Batch, Layout, Row, Unit, masked_labels, rows_of, target_count
from faulttune.losses import IGNORE_INDEX, CCTHead, cct_loss
from faulttune.methods.kinds import BUGFIX, PAIR, SOLUTION
from faulttune.methods.recipe import LossOut, Recipe, Reference, Scores, sides


def _valid_pair(row: Row) -> bool:
    return row.first_diff < max(len(row.chosen.ids), len(row.rejected.ids))


class CCT(Recipe):
    """Groups ``lm`` (sft rows), ``seq`` (cct_seq rows), then ``correct`` / ``buggy`` (the cct
    pairs; the LM head runs on lm and seq only: the pairs need hidden states, not logits)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lm, self.seq, self.pairs = (self.kinds_built(b) for b in (SOLUTION, BUGFIX, PAIR))

    def make_head(self, hidden_size: int) -> nn.Module:
        return CCTHead(hidden_size)

    def layout(self, units: Sequence[Unit]) -> Layout:
        first_diff = torch.tensor([r.first_diff for r in rows_of(units, self.pairs)], dtype=torch.long)
        return Layout({"lm": sides(units, self.lm), "seq": sides(units, self.seq),
                       "correct": sides(units, self.pairs), "buggy": sides(units, self.pairs, True)},
                      {"first_diff": first_diff}, logit_groups=("lm", "seq"))

    def normalisers(self, units: Sequence[Unit]) -> dict[str, float]:
        return {"lm_tokens": sum(target_count(r.chosen, False) for r in rows_of(units, self.lm)),
                "seq_tokens": sum(target_count(r.chosen, False) for r in rows_of(units, self.seq)),
                "pairs": sum(1 for r in rows_of(units, self.pairs) if _valid_pair(r))}

    def loss_tokens(self, row: Row) -> int:
        """Targets of sft and cct_seq rows; both sides of a pair from the first difference on."""
        if row.kind in self.pairs:
            return sum(max(0, len(side.ids) - row.first_diff) for side in (row.chosen, row.rejected))
        return target_count(row.chosen, False)

    def objective(self, logits: Tensor, batch: Batch, norms: Mapping[str, float],
                  scores: Scores = None, reference: Reference = None) -> LossOut:
        """A micro-batch without sft rows passes one all-ignored row as the LM input (L_lm = 0
        with a connected graph); the head always sees every row (adding 0 * scores) so that DDP
        finds a gradient for it in every micro-step."""
        labels = masked_labels(batch.labels, batch.mask)
        if batch.has("lm"):
            lm_logits, lm_labels = batch.group("lm", logits), batch.group("lm", labels)
        else:
            lm_logits, lm_labels = logits[:1], torch.full_like(labels[:1], IGNORE_INDEX)
        if scores is None:
            raise ValueError("cct needs the head scores")
        pairs = {}
        if batch.has("correct"):
            pairs = {
                "scores_correct": batch.group("correct", scores),
                "scores_buggy": batch.group("buggy", scores), "first_diff": batch.extras["first_diff"],
                "len_correct": batch.group("correct", batch.lengths),
                "len_buggy": batch.group("buggy", batch.lengths),
            }
        seq = {}
        if batch.has("seq"):
            seq = {"seq_logits": batch.group("seq", logits), "seq_labels": batch.group("seq", labels)}
        p = self.params
        loss, metrics = cct_loss(
            lm_logits, lm_labels, **pairs, **seq, alpha=p["alpha"], beta=p["beta"],
            margin=p["margin"], num_lm_tokens=norms["lm_tokens"], num_pairs=norms["pairs"],
            num_seq_tokens=norms["seq_tokens"],
        )
        return loss + 0.0 * scores.sum(), metrics
