"""Per-method batches and losses: how the rows of a micro-batch become one forward pass and one
call of a `faulttune.losses` function.

Every micro-batch is ONE forward pass over all its sequences, right-padded to a common length and
stacked on dim 0 in named groups:

    sft          lm = the sft rows
    cct          lm = sft rows ; seq = cct_seq rows ; correct = cct chosen ; buggy = cct rejected
                 (the LM head runs on lm and seq only: the pairs need hidden states, not logits)
    fgit         correct = chosen (y_c) ; incorrect = rejected (y_i, dynamic / one_sided weighting
                 only, and only of the rows that have one: plain rows train y_c at weight 1)
    preference   chosen ; rejected  (so `chunk(2)` splits them, as `preference_logps` expects)

Normalisers are step-level (see `step_normalisers`): counted from the masks of ALL units of the
optimiser step before the micro-steps, so accumulation and the process count do not change the loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from faulttune import methods
from faulttune.losses import (
    IGNORE_INDEX,
    cct_loss,
    dpo_loss,
    fgit_loss,
    focused_dpo_loss,
    focused_preference_masks,
    needs_incorrect,
    preference_logps,
    rpo_loss,
    sft_loss,
    target_dpo_loss,
    target_rpo_loss,
)
from faulttune.training.config import TrainConfig
from faulttune.training.data import Row, Side, Unit

LossOut = tuple[Tensor, dict[str, Tensor]]


@dataclass
class Batch:
    """One padded forward pass over R sequences.

    `input_ids`, `attention_mask` `[R, T]`: the full sequences, right-padded. The LM logits are
    computed only on a per-row WINDOW of positions [window_start[r], window_start[r] + W), where
    window_start = (first response token - 1), since no earlier position predicts a target; prompt
    logits are never materialised. `labels` (ids, -100 past the row's end), `mask` (the row's
    masks-file mask) and `response` (1 on response tokens) are `[R, W]`, cut to the same windows,
    so `logits[:, j]` predicts `labels[:, j + 1]` exactly as `faulttune.losses` expects. The two
    sides of a pair share their window start. `lengths` `[R]` and `first_diff` `[pairs]` (CCT)
    are full-sequence positions (the CCT head scores every position). `paired` `[rows of
    correct]` (FGit): which y_c rows have a y_i row. `groups`: name -> rows; `units`: the global
    unit index of each example."""

    input_ids: Tensor
    attention_mask: Tensor
    window_start: Tensor
    labels: Tensor
    mask: Tensor
    response: Tensor
    lengths: Tensor
    groups: dict[str, slice]
    units: list[int]
    first_diff: Tensor | None = None
    paired: Tensor | None = None

    @property
    def logit_rows(self) -> int:
        """Rows whose logits a loss reads: all but CCT's comparison pairs (at least one row)."""
        pairs = self.groups.get("correct") if "buggy" in self.groups else None
        if pairs is None:
            return len(self.lengths)
        return max(1, len(self.lengths) - 2 * (pairs.stop - pairs.start))

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
        optional = {k: getattr(self, k).to(device) if getattr(self, k) is not None else None
                    for k in ("first_diff", "paired")}
        return Batch(**moved, groups=self.groups, units=self.units, **optional)


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


def group_layout(units: Sequence[Unit], method: str, weighting: str) -> dict[str, list[Side]]:
    """The sequences of each group, in unit order (see the module docstring)."""
    def sides(kind: str, rejected: bool = False) -> list[Side]:
        rows = [row for unit in units for row in unit.of(kind)]
        return [row.rejected for row in rows if row.rejected is not None] if rejected else [
            row.chosen for row in rows]

    if method == "sft":
        return {"lm": sides("sft")}
    if method == "cct":
        return {"lm": sides("sft"), "seq": sides("cct_seq"), "correct": sides("cct"),
                "buggy": sides("cct", True)}
    if method == "fgit":
        layout = {"correct": sides("fgit")}
        if needs_incorrect(weighting):
            layout["incorrect"] = sides("fgit", True)
        return layout
    kind = units[0].rows[0].kind
    return {"chosen": sides(kind), "rejected": sides(kind, True)}


def _window_starts(units: Sequence[Unit], layout: dict[str, list[Side]]) -> list[int]:
    """start - 1 per sequence; both sides of a pair use the smaller of their two starts."""
    pair_start = {}
    for unit in units:
        for row in unit.rows:
            if row.rejected is not None:
                first = min(row.chosen.start, row.rejected.start) - 1
                pair_start[id(row.chosen)] = pair_start[id(row.rejected)] = first
    return [pair_start.get(id(side), side.start - 1) for group in layout.values() for side in group]


def build_batch(
    units: Sequence[Unit], unit_ids: Sequence[int], method: str, weighting: str, pad_id: int
) -> Batch:
    layout = group_layout(units, method, weighting)
    groups, ordered, start = {}, [], 0
    for name, sides in layout.items():
        groups[name] = slice(start, start + len(sides))
        ordered.extend(sides)
        start += len(sides)
    first_diff = paired = None
    if method == "cct":
        first_diff = torch.tensor([r.first_diff for u in units for r in u.of("cct")], dtype=torch.long)
    if method == "fgit":
        paired = torch.tensor([r.rejected is not None for u in units for r in u.of("fgit")])
    padded = _pad(ordered, _window_starts(units, layout), pad_id)
    return Batch(**padded, groups=groups, units=list(unit_ids), first_diff=first_diff, paired=paired)


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


def _targets(side: Side, use_response: bool) -> int:
    """Target tokens of one sequence as `count_targets` counts them (position 0 never counts)."""
    marks = side.response() if use_response else side.mask
    return int((marks[1:] != 0).sum())


def _valid_cct_pair(row: Row) -> bool:
    return row.first_diff < max(len(row.chosen.ids), len(row.rejected.ids))


def _rows(units: Sequence[Unit], kind: str) -> list[Row]:
    return [row for unit in units for row in unit.of(kind)]


def step_normalisers(units: Sequence[Unit], method: str) -> dict[str, float]:
    """Counts over ALL units of one optimiser step (every process, every micro-batch):
    `lm_tokens` (sft rows' targets; FGit: y_c response tokens), `seq_tokens` (cct_seq targets),
    `pairs` (CCT: valid comparison pairs; preference: pairs), `chosen_tokens` (RPO's NLL)."""
    if method in ("sft", "cct"):
        out = {"lm_tokens": sum(_targets(r.chosen, False) for r in _rows(units, "sft"))}
        if method == "cct":
            out["seq_tokens"] = sum(_targets(r.chosen, False) for r in _rows(units, "cct_seq"))
            out["pairs"] = sum(1 for r in _rows(units, "cct") if _valid_cct_pair(r))
        return out
    if method == "fgit":
        return {"lm_tokens": sum(_targets(r.chosen, True) for r in _rows(units, "fgit"))}
    rows = [unit.rows[0] for unit in units]
    return {"pairs": len(rows), "chosen_tokens": sum(_targets(r.chosen, False) for r in rows)}


def loss_tokens(unit: Unit, method: str, weighting: str) -> dict[str, int]:
    """Tokens of one unit that carry a loss term, per row kind (position 0 of a sequence never
    does): NLL targets (sft, cct_seq; FGit: every y_c response token, plus y_i's H_i tokens
    under the dynamic weightings, which feed the weight), both sides of a CCT pair from the
    first difference on (the compared positions), the masked tokens of both preference sides
    (Focused-DPO: the chosen middle and suffix)."""
    counts: dict[str, int] = {}
    for row in unit.rows:
        counts[row.kind] = counts.get(row.kind, 0) + _row_loss_tokens(row, method, weighting)
    return counts


def _row_loss_tokens(row: Row, method: str, weighting: str) -> int:
    if row.kind == "cct":
        return sum(max(0, len(side.ids) - row.first_diff) for side in (row.chosen, row.rejected))
    if row.kind == "fgit":
        incorrect = row.rejected is not None and needs_incorrect(weighting)
        return _targets(row.chosen, True) + (_targets(row.rejected, False) if incorrect else 0)
    if row.rejected is None:
        return _targets(row.chosen, False)
    chosen = _focused_chosen_tokens(row) if method == "focused_dpo" else _targets(row.chosen, False)
    return chosen + _targets(row.rejected, False)


def _focused_chosen_tokens(row: Row) -> int:
    """Chosen tokens with a nonzero Focused-DPO weight, as `preference_masks` computes them on
    the pair's shared window."""
    a = min(row.chosen.start, row.rejected.start) - 1
    parts = [row.chosen.response()[a:], row.chosen.mask[a:], row.rejected.mask[a:]]
    width = max(len(p) for p in parts)
    padded = [torch.nn.functional.pad(p, (0, width - len(p))).unsqueeze(0) for p in parts]
    weights, _ = focused_preference_masks(*padded, middle_weight=1.0)  # only nonzero-ness counts
    return int((weights[0, 1:] != 0).sum())


def _masked_labels(labels: Tensor, marks: Tensor) -> Tensor:
    return labels.masked_fill(marks == 0, IGNORE_INDEX)


def preference_masks(batch: Batch, method: str, focus_weight: float) -> tuple[Tensor, Tensor]:
    """Chosen / rejected token masks `[B, T]`: the masks-file masks (dpo: all response tokens;
    target_dpo: chosen all, rejected D- lines); focused_dpo: chosen weighted (focus_weight on the
    middle, 1 on the suffix), rejected middle only. Policy and reference use the same ones."""
    chosen, rejected = batch.group("chosen", batch.mask), batch.group("rejected", batch.mask)
    if method == "focused_dpo":
        completion = batch.group("chosen", batch.response)
        return focused_preference_masks(completion, chosen, rejected, focus_weight)
    return chosen, rejected


def pair_logps(logits: Tensor, batch: Batch, method: str, focus_weight: float) -> tuple[Tensor, Tensor]:
    """Masked summed log-probs `(chosen [B], rejected [B])` of a preference batch."""
    chosen_mask, rejected_mask = preference_masks(batch, method, focus_weight)
    return preference_logps(logits, batch.labels, chosen_mask, rejected_mask)


# Every objective takes (logits, batch, config, norms, scores, reference): the method registry
# (faulttune.methods) names each method's objective and `objective` calls it.
Scores = Tensor | None
Reference = tuple[Tensor, Tensor] | None


def sft_objective(logits: Tensor, batch: Batch, config: TrainConfig, norms: dict[str, float],
                  scores: Scores = None, reference: Reference = None) -> LossOut:
    labels = _masked_labels(batch.labels, batch.mask)
    loss, metrics = sft_loss(logits, labels, num_target_tokens=norms["lm_tokens"])
    return loss, {"L_lm": loss.detach(), **metrics}


def cct_objective(logits: Tensor, batch: Batch, config: TrainConfig, norms: dict[str, float],
                  scores: Scores = None, reference: Reference = None) -> LossOut:
    """CCT loss of one micro-batch. A micro-batch without sft rows passes one all-ignored row as
    the LM input (L_lm = 0 with a connected graph); the head always sees every row (adding
    0 * scores) so that DDP finds a gradient for it in every micro-step."""
    labels = _masked_labels(batch.labels, batch.mask)
    if batch.has("lm"):
        lm_logits, lm_labels = batch.group("lm", logits), batch.group("lm", labels)
    else:
        lm_logits, lm_labels = logits[:1], torch.full_like(labels[:1], IGNORE_INDEX)
    pairs = {}
    if scores is None:
        raise ValueError("cct needs the head scores")
    if batch.has("correct"):
        pairs = {
            "scores_correct": batch.group("correct", scores), "scores_buggy": batch.group("buggy", scores),
            "first_diff": batch.first_diff, "len_correct": batch.group("correct", batch.lengths),
            "len_buggy": batch.group("buggy", batch.lengths),
        }
    seq = {}
    if batch.has("seq"):
        seq = {"seq_logits": batch.group("seq", logits), "seq_labels": batch.group("seq", labels)}
    loss, metrics = cct_loss(
        lm_logits, lm_labels, **pairs, **seq, alpha=config.params["alpha"],
        beta=config.params["beta"], margin=config.params["margin"],
        num_lm_tokens=norms["lm_tokens"], num_pairs=norms["pairs"], num_seq_tokens=norms["seq_tokens"],
    )
    return loss + 0.0 * scores.sum(), metrics


def fgit_objective(logits: Tensor, batch: Batch, config: TrainConfig, norms: dict[str, float],
                   scores: Scores = None, reference: Reference = None) -> LossOut:
    """FGit on y_c with the weight from P_c and P_i (y_i's forward pass WITH gradient)."""
    labels = _masked_labels(batch.labels, batch.response)
    incorrect = (None, None, None)
    if batch.has("incorrect"):
        incorrect = (batch.group("incorrect", logits), batch.group("incorrect", labels),
                     batch.group("incorrect", batch.mask))
    loss, metrics = fgit_loss(
        batch.group("correct", logits), batch.group("correct", labels), batch.group("correct", batch.mask),
        *incorrect, lam=config.params["lambda"], weighting=config.params["weighting"],
        fixed_weight=config.params["fixed_weight"],
        num_target_tokens=norms["lm_tokens"], paired=batch.paired,
    )
    metrics["fgit_weight"] = metrics.pop("mean_weight")
    return loss, metrics


def _preference_objective(loss_fn, with_nll: bool = False):
    """The objective of a DPO-family loss on summed masked log-probs; ``with_nll`` adds RPO's
    alpha * token-mean NLL of the chosen responses."""
    def objective_fn(logits: Tensor, batch: Batch, config: TrainConfig, norms: dict[str, float],
                     scores: Scores = None, reference: Reference = None) -> LossOut:
        if reference is None:
            raise ValueError(f"{config.method} needs the reference log-probs")
        p = config.params
        chosen, rejected = pair_logps(logits, batch, config.method, config.focus_weight)
        args = (chosen, rejected, reference[0].to(chosen), reference[1].to(chosen))
        if with_nll:
            lengths = (batch.group("chosen", batch.mask)[:, 1:] != 0).sum(dim=1)
            return loss_fn(*args, lengths, beta=p["beta"], alpha=p["alpha"],
                           num_pairs=norms["pairs"], num_chosen_tokens=norms["chosen_tokens"])
        return loss_fn(*args, beta=p["beta"], num_pairs=norms["pairs"])
    return objective_fn


dpo_objective = _preference_objective(dpo_loss)
rpo_objective = _preference_objective(rpo_loss, with_nll=True)
target_dpo_objective = _preference_objective(target_dpo_loss)
target_rpo_objective = _preference_objective(target_rpo_loss, with_nll=True)
focused_dpo_objective = _preference_objective(focused_dpo_loss)


def objective(
    logits: Tensor, scores: Tensor | None, batch: Batch, config: TrainConfig,
    norms: dict[str, float], reference: tuple[Tensor, Tensor] | None = None,
) -> LossOut:
    """The loss of one micro-batch: the registry's objective of `config.method`, the trainer's
    one dispatch. `logits`: window logits of the batch's first `batch.logit_rows` rows; `scores`:
    the CCT head's `[R, T]` (CCT only); `reference`: the reference (chosen, rejected) log-probs
    (preference methods)."""
    fn = methods.get(config.method).load_objective()
    return fn(logits, batch, config, norms, scores=scores, reference=reference)


def is_preference(method: str) -> bool:
    return methods.get(method).preference
