"""Token-weighted negative log-likelihood (plain SFT and the base of FGit / CCT's L_lm)."""

from __future__ import annotations

import torch
from torch import Tensor

from faulttune.losses.common import Count, count_targets, resolve_normaliser, token_logps


def weighted_nll_sum(
    logits: Tensor, labels: Tensor, weights: Tensor | None
) -> tuple[Tensor, Tensor]:
    """`(sum_t w_t * nll_t, sum_t nll_t)` over the target tokens of the batch (see sft_loss)."""
    logps = token_logps(logits, labels)
    if weights is None:
        nll_sum = -logps.sum()
        return nll_sum, nll_sum.detach()
    w = weights[:, 1:].to(logps.dtype)
    targets = (w != 0).to(logps.dtype)
    return -(w * logps).sum(), -(targets * logps).sum().detach()


def sft_loss(
    logits: Tensor,
    labels: Tensor,
    weights: Tensor | None = None,
    num_target_tokens: Count = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Token-weighted NLL: `L = -sum_{b,t} w[b,t] * log p(labels[b,t] | labels[b,<t]) / N`.

    Standard SFT (FGit paper Eq. 1, CCT's L_lm) with `weights=None`; FGit's Eq. 2 with weights.

    Args:
        logits: `[B, T, V]` model output for the input ids.
        labels: `[B, T]` input ids; negative (-100) where the token is not a target (prompt, pad).
        weights: `[B, T]` per-token weights aligned to labels, or None (all 1). A weight of 0 means
            "not a target" (it is neither trained nor counted).
        num_target_tokens: the normaliser N = number of target tokens of the WHOLE optimiser step
            (label >= 0 and weight != 0; summed by the trainer over all micro-batches and
            processes). Defaults to this batch's count. Dividing every micro-batch by the step's
            count makes the summed micro-batch gradients equal the full-batch gradient, so gradient
            accumulation and the number of processes do not change the loss (the trainer must sum
            micro-batch losses without dividing by the accumulation steps, and multiply by the world
            size when DDP averages gradients over processes). N counts tokens, not sum(w), so a
            weighting of all ones is exactly SFT.

    Returns:
        `(loss, metrics)`; metrics are detached 0-dim tensors: `nll` (unweighted token-mean NLL of
        this batch) and `target_tokens` (this batch's count).
    """
    weighted, plain = weighted_nll_sum(logits, labels, weights)
    local_count = count_targets(labels, weights)
    loss = weighted / resolve_normaliser(num_target_tokens, local_count)
    metrics = {
        "nll": plain / local_count.clamp(min=1),
        "target_tokens": local_count.detach().to(torch.float32),
    }
    return loss, metrics
