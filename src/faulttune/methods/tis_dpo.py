"""TIS-DPO's training behaviour (docs/methods.md §6): before training, the two contrastive models
its registry entry requires (SFT on the correct and on the incorrect code of its pairs, trained by
the DAG first) score every response token; the token weights (``losses.tis_token_weights``)
replace the masks of the rows, and DPO runs on the weighted log-probs (policy and reference)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from faulttune.batching import Row, Side, Unit, build_batch, windowed_logits
from faulttune.losses import tis_dpo_loss, tis_token_weights, token_logps
from faulttune.methods.preference import DPO

log = logging.getLogger(__name__)
POSITIVE, NEGATIVE = "positive", "negative"  # the roles of methods.builtin's requires


class TISDPO(DPO):
    loss_fn = staticmethod(tis_dpo_loss)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.params["lower"] > self.params["upper"]:
            raise ValueError(f"tis_dpo: lower {self.params['lower']} > upper {self.params['upper']}")

    def prepare(self, units: list[Unit], context: Any) -> list[Unit]:
        """The units with token weights as masks. ``context``: ``models`` (role -> model folder),
        ``load_model(path)``, ``device``, ``pad_id``, ``micro_batch_size``, ``autocast()``."""
        missing = [r for r in (POSITIVE, NEGATIVE) if r not in context.models]
        if missing:
            raise ValueError(f"tis_dpo needs the {'/'.join(missing)} model(s): the models its "
                             f"registry entry requires")
        logps = {role: self.token_logps(units, context, context.models[role])
                 for role in (POSITIVE, NEGATIVE)}
        out = [Unit(u.task_id, tuple(self._weighted(row, logps) for row in u.rows)) for u in units]
        chosen = torch.cat([r.chosen.mask[r.chosen.mask != 0] for u in out for r in u.rows])
        rejected = torch.cat([r.rejected.mask[r.rejected.mask != 0] for u in out for r in u.rows])
        log.info("tis_dpo token weights: chosen mean %.3f (%.3f..%.3f), rejected mean %.3f "
                 "(%.3f..%.3f)", chosen.mean(), chosen.min(), chosen.max(), rejected.mean(),
                 rejected.min(), rejected.max())
        return out

    def _weighted(self, row: Row, logps: Mapping[str, dict[int, Tensor]]) -> Row:
        def weighted(side: Side, chosen: bool) -> Side:
            p = self.params
            weights = tis_token_weights(
                logps[POSITIVE][id(side)], logps[NEGATIVE][id(side)], side.mask, chosen=chosen,
                mu=p["mu"], lower=p["lower"], upper=p["upper"], scale=p["scale"])
            return Side(side.ids, weights.to(torch.float32), side.start, side.end)

        return Row(row.kind, row.id, row.task_id, row.where, weighted(row.chosen, True),
                   weighted(row.rejected, False), row.first_diff)

    @torch.no_grad()
    def token_logps(self, units: Sequence[Unit], context: Any, model_path: str) -> dict[int, Tensor]:
        """Per-token log-probs ``[T]`` of every side under the model at ``model_path``, by
        ``id(side)``: entry t is log p(ids[t] | ids[<t]), 0 at position 0 and before the
        pair's window."""
        model = context.load_model(model_path).eval()
        out: dict[int, Tensor] = {}
        size = context.micro_batch_size
        for first in range(0, len(units), size):
            chunk = list(units[first:first + size])
            layout = self.layout(chunk)
            batch = build_batch(chunk, range(first, first + len(chunk)), layout,
                                context.pad_id).to(context.device)
            with context.autocast():
                logits, _ = windowed_logits(model, batch.input_ids, batch.attention_mask,
                                            batch.window_start, batch.labels.shape[1])
            per_token = token_logps(logits, batch.labels).float().cpu()
            ordered = [side for group in layout.groups.values() for side in group]
            for r, side in enumerate(ordered):
                a, n = int(batch.window_start[r]), len(side.ids)
                full = torch.zeros(n)
                full[a + 1:n] = per_token[r, :n - a - 1]
                out[id(side)] = full
        del model
        return out
