"""CCT: Code Comparison Tuning (Jiang et al., arXiv 2403.19121), docs/methods.md §1.

L = L_lm + alpha * L_token + beta * L_seq, alpha = 2.0, beta = 0.5 (section 1.3).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from faulttune.losses.common import Count
from faulttune.losses.sft import sft_loss


class CCTHead(nn.Module):
    """The preference head r_theta: R^d -> R of CCT section 1.2, one scalar per token.

    The trainer owns it, optimises it jointly with the model and drops it when saving.
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.score = nn.Linear(hidden_size, 1)

    def forward(self, hidden_states: Tensor) -> Tensor:
        """`[B, T, d]` last-layer hidden states -> `[B, T]` scores r(h)."""
        return self.score(hidden_states).squeeze(-1)


def _pad_with_last(scores: Tensor, lengths: Tensor, positions: Tensor) -> Tensor:
    """scores[b, min(p, len_b - 1)] for each position p: past the end repeats the last real one."""
    index = torch.minimum(positions.unsqueeze(0), (lengths - 1).unsqueeze(1))
    return scores.gather(1, index)


def token_hinge_terms(
    scores_correct: Tensor,
    scores_buggy: Tensor,
    first_diff: Tensor,
    len_correct: Tensor,
    len_buggy: Tensor,
    margin: float,
) -> tuple[Tensor, Tensor]:
    """Per-pair CCT token loss (section 1.2, Eq. 2 with the sign typo fixed) and its validity.

    For pair b with I = first_diff[b] and M = max(len_correct[b], len_buggy[b]):
        l_b = 1/(M - I) * sum_{i=I}^{M-1} max(0, margin - r(h_correct,i) + r(h_buggy,i)),
    where a position past the end of the shorter sequence uses that sequence's last real score.
    Scores are `[B, T_c]` / `[B, T_b]` (positions of the full input, padding after `len`);
    `first_diff`, `len_*` are `[B]` integer tensors. Returns `(l [B], valid [B] bool)`; a pair with
    I == M (no difference) is invalid and its l_b is 0.
    """
    longest = torch.maximum(len_correct, len_buggy)
    if bool((len_correct < 1).any() | (len_buggy < 1).any()):
        raise ValueError("CCT pairs need len_correct >= 1 and len_buggy >= 1")
    if bool(((first_diff < 0) | (first_diff > longest)).any()):
        raise ValueError("CCT first_diff must lie in [0, max(len_correct, len_buggy)]")
    positions = torch.arange(int(longest.max()), device=scores_correct.device)
    correct = _pad_with_last(scores_correct, len_correct, positions)
    buggy = _pad_with_last(scores_buggy, len_buggy, positions)
    in_range = (positions.unsqueeze(0) >= first_diff.unsqueeze(1)) & (
        positions.unsqueeze(0) < longest.unsqueeze(1)
    )
    hinge = torch.relu(margin - correct + buggy) * in_range.to(correct.dtype)
    count = (longest - first_diff).clamp(min=1).to(correct.dtype)
    return hinge.sum(dim=1) / count, longest > first_diff


def cct_loss(
    lm_logits: Tensor,
    lm_labels: Tensor,
    *,
    scores_correct: Tensor | None = None,
    scores_buggy: Tensor | None = None,
    first_diff: Tensor | None = None,
    len_correct: Tensor | None = None,
    len_buggy: Tensor | None = None,
    seq_logits: Tensor | None = None,
    seq_labels: Tensor | None = None,
    alpha: float,
    beta: float,
    margin: float,
    num_lm_tokens: Count = None,
    num_pairs: Count = None,
    num_seq_tokens: Count = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """CCT objective L = L_lm + alpha * L_token + beta * L_seq (docs/methods.md §1.3).

    * L_lm: token-mean NLL of the original samples (`lm_logits` `[B, T, V]`, `lm_labels` with -100
      off-target), normalised by `num_lm_tokens` (the optimiser step's target-token count; default
      this batch's), exactly `sft_loss`.
    * L_token: `token_hinge_terms` on the head scores r(h) of the correct and the buggy sequences,
      summed over the valid pairs and divided by `num_pairs` (the step's number of valid pairs;
      default this batch's), i.e. the mean over pairs. Omitted (0) when no scores are given.
    * L_seq: token-mean NLL of the bug-fix samples (buggy code -> fixed code), normaliser
      `num_seq_tokens`; omitted (0) when `seq_logits` is None.
    With alpha = beta = 0 this is plain SFT. Gradients reach the LM through all three terms and
    the head through L_token.

    Returns `(loss, metrics)`, metrics detached: `L_lm`, `L_token`, `L_seq`, `token_pairs`.
    """
    l_lm, _ = sft_loss(lm_logits, lm_labels, num_target_tokens=num_lm_tokens)
    zero = l_lm.new_zeros(())
    l_token, pairs = zero, zero
    if scores_correct is not None:
        if scores_buggy is None or first_diff is None or len_correct is None or len_buggy is None:
            raise ValueError(
                "cct_loss: scores_correct needs scores_buggy, first_diff and both lengths"
            )
        per_pair, valid = token_hinge_terms(
            scores_correct, scores_buggy, first_diff, len_correct, len_buggy, margin
        )
        pairs = valid.sum().to(l_lm.dtype)
        normaliser = (pairs if num_pairs is None else torch.as_tensor(num_pairs)).clamp(min=1)
        l_token = (per_pair * valid.to(per_pair.dtype)).sum() / normaliser.to(per_pair.device)
    l_seq = zero
    if seq_logits is not None:
        if seq_labels is None:
            raise ValueError("cct_loss: seq_logits given without seq_labels")
        l_seq, _ = sft_loss(seq_logits, seq_labels, num_target_tokens=num_seq_tokens)
    loss = l_lm + alpha * l_token + beta * l_seq
    metrics = {"L_lm": l_lm.detach(), "L_token": l_token.detach(), "L_seq": l_seq.detach()}
    metrics["token_pairs"] = pairs.detach()
    return loss, metrics
