"""FGit: Fault-Guided Fine-Tuning (Fan et al., arXiv 2503.16913), METHODS.md section 2.

Weighted NLL on the correct code y_c (paper Eq. 2); tokens of the error-sensitive segments
(H_c > 0) get a per-sample weight w_n, all other targets weight 1. The incorrect code y_i only
feeds the dynamic weight (Eqs. 3-7); it has no NLL term of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from faulttune.losses.common import Count, count_targets, resolve_normaliser, token_logps

WeightFn = Callable[[Tensor, Tensor, float], Tensor]
Granularity = Literal["line", "token", "hybrid"]


def fgit_weights(p_c: Tensor, p_i: Tensor, lam: float) -> Tensor:
    """Dynamic FGit weight, RECONSTRUCTION of the paper's Eq. 7 (METHODS section 2.3).

    With the Bradley-Terry win probability P_BT = p_c / (p_c + p_i):
        w = 1 + (lam - 1) * 2 * min(P_BT, 1 - P_BT)
          = 1 + (lam - 1) * (1 - |p_c - p_i| / (p_c + p_i))
    so w = lam when p_c == p_i (the model cannot tell the codes apart) and w -> 1 as one side
    dominates; w lies in (1, lam] for lam > 1. Differentiable, no stop-gradient. At p_c == p_i the
    kink of |x| gets torch's subgradient sign(0) = 0, so the gradient there is exactly 0 (w is at
    its maximum). Both p == 0 (underflow) gives w = lam. `p_c`, `p_i`: `[B]`; returns `[B]`.
    """
    total = (p_c + p_i).clamp(min=torch.finfo(p_c.dtype).tiny)
    return 1.0 + (lam - 1.0) * (1.0 - (p_c - p_i).abs() / total)


def segment_mean_prob(token_probs: Tensor, hybrid_mask: Tensor) -> Tensor:
    """H-weighted mean segment probability per row: `sum_t P[b,t] H[b,t] / sum_t H[b,t]`.

    `token_probs` and `hybrid_mask` have the same shape `[B, L]` and are aligned element-wise
    (e.g. `token_logps(...).exp()` with `H[:, 1:]`). An edited token (H = 2) counts twice as much
    as an unedited token of an edited line (H = 1), the recommended reading of METHODS 2.3.
    A row without segment tokens (sum H == 0) gets 0; callers decide what that means.
    """
    if token_probs.shape != hybrid_mask.shape:
        raise ValueError(
            f"token_probs {tuple(token_probs.shape)} and hybrid_mask "
            f"{tuple(hybrid_mask.shape)} differ in shape"
        )
    h = hybrid_mask.to(token_probs.dtype)
    mass = h.sum(dim=-1)
    mean = (token_probs * h).sum(dim=-1) / mass.clamp(min=torch.finfo(h.dtype).tiny)
    return torch.where(mass > 0, mean, torch.zeros_like(mean))


def select_granularity(hybrid_mask: Tensor, granularity: Granularity) -> Tensor:
    """The paper's mask ablations from the stored hybrid mask H = M_line + M_token in {0, 1, 2}.

    `hybrid` keeps H; `line` gives 1 on every token of an edited line (H >= 1); `token` gives 1
    on the edited tokens only (H == 2), which assumes, as METHODS 2.2 does, that every edited
    token lies on an edited line.
    """
    if granularity == "hybrid":
        return hybrid_mask
    if granularity == "line":
        return (hybrid_mask >= 1).to(hybrid_mask.dtype)
    if granularity == "token":
        return (hybrid_mask >= 2).to(hybrid_mask.dtype)
    raise ValueError(
        f"unknown FGit granularity {granularity!r}; expected 'line', 'token' or 'hybrid'"
    )


def dynamic_sample_weights(
    logps_c: Tensor, seg_c: Tensor, logps_i: Tensor, seg_i: Tensor, lam: float, weight_fn: WeightFn
) -> tuple[Tensor, Tensor, Tensor]:
    """`(w [B], p_c [B], p_i [B])` from shifted per-token log-probs and shifted segment masks.

    Edge cases (METHODS 2.8): H_i all zero (a pure deletion in y_i) -> p_i := p_c, so w = lam.
    """
    p_c = segment_mean_prob(logps_c.exp(), seg_c)
    p_i = segment_mean_prob(logps_i.exp(), seg_i)
    p_i = torch.where(seg_i.sum(dim=-1) > 0, p_i, p_c)
    return weight_fn(p_c, p_i, lam), p_c, p_i


def fgit_loss(
    logits_c: Tensor,
    labels_c: Tensor,
    hybrid_c: Tensor,
    logits_i: Tensor | None,
    labels_i: Tensor | None,
    hybrid_i: Tensor | None,
    lam: float = 2.0,
    weighting: Literal["dynamic", "fixed"] = "dynamic",
    fixed_weight: float = 2.0,
    num_target_tokens: Count = None,
    weight_fn: WeightFn = fgit_weights,
) -> tuple[Tensor, dict[str, Tensor]]:
    """FGit loss (paper Eq. 2): `L = -sum_{b,t} w[b,t] log P(y_c[b,t] | ...) / N`.

    `w[b,t] = w_b` on segment tokens of y_c (H_c > 0), 1 on other targets (labels_c >= 0), where
    w_b = `weight_fn(p_c, p_i, lam)` (`weighting="dynamic"`, gradients flow through w_b and into
    the y_i forward pass) or `fixed_weight` (`"fixed"`; 1 is plain SFT). A row without any segment
    token is plain SFT. Granularity (line/token/hybrid) is chosen upstream: pass
    `select_granularity(H, ...)` as the masks.

    Shapes: logits `[B, T, V]`, labels `[B, T]` (-100 off-target), hybrid masks `[B, T]` aligned to
    the labels; y_i tensors may be None for `"fixed"`. Normaliser N: the step's number of target
    tokens of y_c (`num_target_tokens`, as in `sft_loss`; default this batch's count), counted
    without weights, so lam = 1 or a fixed weight of 1 gives exactly `sft_loss`.

    Returns `(loss, metrics)`, metrics detached: `nll`, `mean_weight` (over rows with a segment),
    `p_c`, `p_i` (dynamic only), `segment_rows`, `target_tokens`.
    """
    logps_c = token_logps(logits_c, labels_c)
    seg_c = hybrid_c[:, 1:].to(logps_c.dtype) * (labels_c[:, 1:] >= 0).to(logps_c.dtype)
    has_segment = seg_c.sum(dim=-1) > 0
    metrics: dict[str, Tensor] = {}
    if weighting == "dynamic":
        if logits_i is None or labels_i is None or hybrid_i is None:
            raise ValueError("fgit_loss: weighting='dynamic' needs logits_i, labels_i and hybrid_i")
        logps_i = token_logps(logits_i, labels_i)
        seg_i = hybrid_i[:, 1:].to(logps_i.dtype) * (labels_i[:, 1:] >= 0).to(logps_i.dtype)
        sample_w, p_c, p_i = dynamic_sample_weights(logps_c, seg_c, logps_i, seg_i, lam, weight_fn)
        metrics.update(p_c=_masked_mean(p_c, has_segment), p_i=_masked_mean(p_i, has_segment))
    elif weighting == "fixed":
        sample_w = torch.full_like(logps_c[:, 0], float(fixed_weight))
    else:
        raise ValueError(f"unknown FGit weighting {weighting!r}; expected 'dynamic' or 'fixed'")
    token_w = torch.where(seg_c > 0, sample_w.unsqueeze(1), torch.ones_like(logps_c))
    local_count = count_targets(labels_c)
    loss = -(token_w * logps_c).sum() / resolve_normaliser(num_target_tokens, local_count)
    metrics.update(
        nll=(-logps_c.sum() / local_count.clamp(min=1)).detach(),
        mean_weight=_masked_mean(sample_w, has_segment),
        segment_rows=has_segment.sum().to(torch.float32),
        target_tokens=local_count.to(torch.float32),
    )
    return loss, metrics


def _masked_mean(values: Tensor, keep: Tensor) -> Tensor:
    """Detached mean of `values[keep]` (0 when nothing is kept)."""
    kept = keep.to(values.dtype)
    return ((values * kept).sum() / kept.sum().clamp(min=1)).detach()
