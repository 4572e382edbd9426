"""Per-token log-probability helpers shared by every loss.

Alignment convention (used by every function in `faulttune.losses`):

* `logits` is `[B, T, V]`, the model output for the input ids `[B, T]`.
* `labels` is `[B, T]`, normally the input ids themselves; a negative label (the HF `-100`
  ignore index) marks a position that is never a target.
* A `mask` / `weights` tensor is `[B, T]` and aligned with `labels` (with the INPUT positions):
  `mask[b, t] != 0` means "token t of the input is a target". Position 0 can never be a target
  (nothing predicts it); the shift is done inside: `logits[:, t]` predicts `labels[:, t + 1]`.
* Per-token outputs are `[B, T - 1]`: entry `[b, t]` belongs to input token `t + 1`.

Preference batches are `[chosen; rejected]` on dim 0 (one forward pass), split with `chunk(2)`.
"""

from __future__ import annotations

import torch
from torch import Tensor

IGNORE_INDEX = -100

# A step-level normaliser passed in by the trainer (a count); None = use this batch's count.
Count = float | Tensor | None

# Rows of the logits processed at once by `token_logps`: bounds the transient memory of the
# log-sum-exp to `_ROWS_PER_CHUNK * T * V` elements instead of `B * T * V`.
_ROWS_PER_CHUNK = 1


def _check_aligned(logits: Tensor, labels: Tensor, mask: Tensor | None) -> None:
    if logits.dim() != 3:
        raise ValueError(f"logits must be [B, T, V], got shape {tuple(logits.shape)}")
    if labels.shape != logits.shape[:2]:
        raise ValueError(
            f"labels {tuple(labels.shape)} do not match logits {tuple(logits.shape)} on [B, T]"
        )
    if mask is not None and mask.shape != labels.shape:
        raise ValueError(
            f"mask {tuple(mask.shape)} must have the shape of labels {tuple(labels.shape)}"
        )


def _gathered_logps(logits: Tensor, targets: Tensor) -> Tensor:
    """log softmax(logits)[..., targets] in float32 (or float64), a few rows at a time.

    Equivalent to `logits.float().log_softmax(-1).gather(-1, targets[..., None])[..., 0]`, but no
    full `[B, T, V]` log-softmax is materialised: only the log-sum-exp `[B, T]` and the gathered
    logits. For float32 logits the conversion is a no-op; for bf16/fp16 logits the float32 copy
    of each row is kept for the backward pass (the price of a stable log-sum-exp).
    """
    out_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    pieces = []
    for row_logits, row_targets in zip(
        logits.split(_ROWS_PER_CHUNK), targets.split(_ROWS_PER_CHUNK), strict=True
    ):
        row_logits = row_logits.to(out_dtype)
        picked = row_logits.gather(-1, row_targets.unsqueeze(-1)).squeeze(-1)
        pieces.append(picked - torch.logsumexp(row_logits, dim=-1))
    return torch.cat(pieces, dim=0)


def token_logps(logits: Tensor, labels: Tensor, mask: Tensor | None = None) -> Tensor:
    """Per-token log-probabilities of the labels, shifted and masked: `[B, T - 1]`.

    `out[b, t] = log softmax(logits[b, t])[labels[b, t + 1]] * mask[b, t + 1]`, and 0 wherever
    `labels[b, t + 1] < 0`. `mask` (aligned to labels, see the module docstring) may hold 0/1 or
    real weights; `None` means every non-negative label is a target. float32 (float64 for float64
    logits) whatever the logits' dtype.
    """
    _check_aligned(logits, labels, mask)
    targets = labels[:, 1:]
    valid = targets >= 0
    logps = _gathered_logps(logits[:, :-1], targets.clamp(min=0))
    keep = valid.to(logps.dtype)
    if mask is not None:
        keep = keep * mask[:, 1:].to(logps.dtype)
    return logps * keep


def sequence_logps(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Sum over the selected tokens of their log-probabilities: `[B]`.

    `mask[b, t] != 0` selects input token t as a target (aligned to labels; a real-valued mask
    weights each token's log-probability). Labels < 0 are never selected.
    """
    return token_logps(logits, labels, mask).sum(dim=-1)


def preference_logps(
    logits: Tensor, labels: Tensor, chosen_mask: Tensor, rejected_mask: Tensor
) -> tuple[Tensor, Tensor]:
    """Masked sequence log-probs of a concatenated `[chosen; rejected]` batch.

    `logits` `[2B, T, V]` and `labels` `[2B, T]` hold the B chosen rows first, then the B rejected
    rows (one forward pass). `chosen_mask` / `rejected_mask` are `[B, T]`, aligned to labels; they
    decide which tokens count (DPO: all completion tokens; Target-DPO: the rejected error lines;
    Focused-DPO: real-valued weights). Returns `(chosen_logps [B], rejected_logps [B])`.
    Use the same masks for the policy and the reference model.
    """
    if logits.shape[0] % 2 or chosen_mask.shape[0] * 2 != logits.shape[0]:
        raise ValueError(
            "expected a [chosen; rejected] batch of 2B rows with B-row masks, got "
            f"{logits.shape[0]} rows of logits and {chosen_mask.shape[0]}/{rejected_mask.shape[0]} "
            "rows of masks"
        )
    mask = torch.cat([chosen_mask.to(logits.dtype), rejected_mask.to(logits.dtype)], dim=0)
    chosen, rejected = sequence_logps(logits, labels, mask).chunk(2, dim=0)
    return chosen, rejected


def count_targets(labels: Tensor, mask: Tensor | None = None) -> Tensor:
    """Number of target tokens (label >= 0 and mask != 0, position 0 excluded), as a 0-dim tensor.

    This is the count a token-mean loss divides by; the trainer sums it over the micro-batches and
    processes of one optimiser step and passes the total as `num_target_tokens`.
    """
    valid = labels[:, 1:] >= 0
    if mask is not None:
        valid = valid & (mask[:, 1:] != 0)
    return valid.sum()


def resolve_normaliser(given: Count, fallback: Tensor) -> Tensor:
    """The step-level normaliser if the trainer passed one, else this batch's count (min 1)."""
    value = fallback if given is None else torch.as_tensor(given, device=fallback.device)
    return value.to(torch.float32).clamp(min=1)
