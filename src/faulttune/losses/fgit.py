"""FGit: Fault-Guided Fine-Tuning (Fan et al., arXiv 2503.16913), docs/methods.md §2.

Weighted NLL on the correct code y_c (paper Eq. 2); tokens of the error-sensitive segments
(H_c > 0) get a per-sample weight w_n, all other targets weight 1. The incorrect code y_i only
feeds the dynamic weight (Eqs. 3-7); it has no NLL term of its own.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from faulttune.losses.common import Count, count_targets, resolve_normaliser, token_logps

WeightFn = Callable[[Tensor, Tensor, float], Tensor]


def fgit_weights(p_c: Tensor, p_i: Tensor, lam: float) -> Tensor:
    """Dynamic FGit weight (``weighting="dynamic"``), the symmetric RECONSTRUCTION of the paper's
    Eq. 7 (docs/methods.md §2.3).

    With the Bradley-Terry win probability P_BT = p_c / (p_c + p_i):
        w = 1 + (lam - 1) * 2 * min(P_BT, 1 - P_BT)
          = 1 + (lam - 1) * (1 - |p_c - p_i| / (p_c + p_i))
    so w = lam when p_c == p_i (the model cannot tell the codes apart) and w -> 1 as one side
    dominates; w lies in (1, lam] for lam > 1. Differentiable, no stop-gradient. At p_c == p_i the
    kink of |x| gets torch's subgradient sign(0) = 0, so the gradient there is exactly 0 (w is at
    its maximum). Both p == 0 (underflow) gives w = lam. `p_c`, `p_i`: `[B]`; returns `[B]`.

    Gradient, s = p_c + p_i: where p_c > p_i, dw/dp_c = -(lam-1) 2 p_i / s^2 < 0 and
    dw/dp_i = +(lam-1) 2 p_c / s^2 > 0, so minimising w * NLL pushes p_i down, as the paper
    argues. Where the model prefers the wrong twin (p_c < p_i) the signs flip: dw/dp_c =
    +(lam-1) 2 p_i / s^2 and dw/dp_i = -(lam-1) 2 p_c / s^2 (p_c = 0.3, p_i = 0.6, lam = 2:
    +1.48 and -0.74), so the loss then REWARDS raising p_i. See `fgit_one_sided_weights`.
    """
    total = (p_c + p_i).clamp(min=torch.finfo(p_c.dtype).tiny)
    return 1.0 + (lam - 1.0) * (1.0 - (p_c - p_i).abs() / total)


def fgit_one_sided_weights(p_c: Tensor, p_i: Tensor, lam: float) -> Tensor:
    """One-sided FGit weight (``weighting="one_sided"``), docs/methods.md §2.3's alternative:

        w = 1 + (lam - 1) * min(1, 2 * (1 - P_BT)),   P_BT = p_c / (p_c + p_i)
          = 1 + (lam - 1) * 2 p_i / (p_c + p_i)   where p_c > p_i   (the symmetric weight)
          = lam                                   where p_c <= p_i  (constant: no gradient)

    Where the model already prefers y_c it equals `fgit_weights` (same value, same gradient:
    dw/dp_c < 0 < dw/dp_i). Where it prefers the wrong twin or cannot tell them apart the weight
    sits at its maximum lam with zero gradient, so the loss never rewards raising p_i.
    w lies in (1, lam]; both p == 0 gives lam. `p_c`, `p_i`: `[B]`; returns `[B]`.
    """
    total = (p_c + p_i).clamp(min=torch.finfo(p_c.dtype).tiny)
    below_tie = 1.0 + (lam - 1.0) * 2.0 * p_i / total
    return torch.where(p_c > p_i, below_tie, torch.full_like(below_tie, float(lam)))


# weighting -> weight function of (p_c, p_i, lam); these need the y_i forward pass.
DYNAMIC_WEIGHTINGS: dict[str, WeightFn] = {"dynamic": fgit_weights, "one_sided": fgit_one_sided_weights}
WEIGHTINGS = (*DYNAMIC_WEIGHTINGS, "fixed")


def needs_incorrect(weighting: str) -> bool:
    """Whether `weighting` reads y_i (a second forward pass with gradient)."""
    return weighting in DYNAMIC_WEIGHTINGS


def segment_mean_prob(token_probs: Tensor, hybrid_mask: Tensor) -> Tensor:
    """H-weighted mean segment probability per row: `sum_t P[b,t] H[b,t] / sum_t H[b,t]`.

    `token_probs` and `hybrid_mask` have the same shape `[B, L]` and are aligned element-wise
    (e.g. `token_logps(...).exp()` with `H[:, 1:]`). An edited token (H = 2) counts twice as much
    as an unedited token of an edited line (H = 1), the recommended reading of docs/methods.md §2.3.
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


def dynamic_sample_weights(
    logps_c: Tensor, seg_c: Tensor, logps_i: Tensor, seg_i: Tensor, lam: float, weight_fn: WeightFn
) -> tuple[Tensor, Tensor, Tensor]:
    """`(w [B], p_c [B], p_i [B])` from shifted per-token log-probs and shifted segment masks.

    Edge cases (docs/methods.md §2.8): H_i all zero (a pure deletion in y_i) -> p_i := p_c, so w = lam.
    """
    p_c = segment_mean_prob(logps_c.exp(), seg_c)
    p_i = segment_mean_prob(logps_i.exp(), seg_i)
    p_i = torch.where(seg_i.sum(dim=-1) > 0, p_i, p_c)
    return weight_fn(p_c, p_i, lam), p_c, p_i


def _shifted_segment(logits: Tensor, labels: Tensor, hybrid: Tensor) -> tuple[Tensor, Tensor]:
    """Per-token log-probs `[B, T-1]` and the segment mask H on the same (target) positions."""
    logps = token_logps(logits, labels)
    return logps, hybrid[:, 1:].to(logps.dtype) * (labels[:, 1:] >= 0).to(logps.dtype)


def _paired_rows(paired: Tensor | None, rows: int, incorrect: Tensor | None) -> Tensor:
    """Indices of the y_c rows that have a y_i row (all rows when `paired` is None)."""
    if paired is None:
        index = torch.arange(rows)
    else:
        if paired.shape != (rows,):
            raise ValueError(f"fgit_loss: paired has shape {tuple(paired.shape)}, expected ({rows},)")
        index = paired.nonzero().squeeze(1)
    found = 0 if incorrect is None else incorrect.shape[0]
    if found != len(index):
        raise ValueError(f"fgit_loss: {len(index)} rows of y_c are paired but y_i has {found} rows "
                         f"(weightings {tuple(DYNAMIC_WEIGHTINGS)} need one y_i row per paired y_c)")
    return index


def fgit_loss(
    logits_c: Tensor,
    labels_c: Tensor,
    hybrid_c: Tensor,
    logits_i: Tensor | None,
    labels_i: Tensor | None,
    hybrid_i: Tensor | None,
    *,
    lam: float,
    weighting: str,
    fixed_weight: float,
    num_target_tokens: Count = None,
    paired: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """FGit loss (paper Eq. 2): `L = -sum_{b,t} w[b,t] log P(y_c[b,t] | ...) / N`.

    `w[b,t] = w_b` on segment tokens of y_c (H_c > 0), 1 on other targets (labels_c >= 0), where
    w_b depends on `weighting`:
      * "dynamic": `fgit_weights(p_c, p_i, lam)`, the symmetric reconstruction
        w = 1 + (lam - 1) (1 - |p_c - p_i| / (p_c + p_i));
      * "one_sided": `fgit_one_sided_weights`, w = 1 + (lam - 1) min(1, 2 (1 - P_BT)) with
        P_BT = p_c / (p_c + p_i): the same where p_c > p_i, lam (no gradient) where p_c <= p_i;
      * "fixed": `fixed_weight` (1 is plain SFT).
    For the first two, p_c / p_i are the H-weighted mean token probabilities of the segments of
    y_c / y_i (`segment_mean_prob`) and gradients flow through w_b into the y_i forward pass.
    Granularity (line/token/hybrid) is chosen upstream: the masks stage writes H of that kind.

    Plain rows: a y_c row without a y_i row (a task with no usable variant, trained as ordinary
    SFT inside the FGit run) has weight 1 on every target; its H_c must be all zero, and it needs
    no y_i. `paired` `[B]` bool marks the y_c rows that have a y_i row; the y_i tensors hold
    exactly those rows, in order (None: every row is paired). A row whose H_c is all zero is plain
    SFT whatever the weighting.

    Shapes: logits `[B, T, V]`, labels `[B, T]` (-100 off-target), hybrid masks `[B, T]` aligned to
    the labels; y_i tensors `[B_i, T_i(, V)]`, may be None for "fixed" or when no row is paired.
    Normaliser N: the step's number of target tokens of y_c (`num_target_tokens`, as in
    `sft_loss`; default this batch's count), counted without weights, so lam = 1 or a fixed
    weight of 1 gives exactly `sft_loss`.

    Returns `(loss, metrics)`, metrics detached: `nll`, `mean_weight` (over rows with a segment),
    `p_c`, `p_i` (dynamic weightings only, over paired rows with a segment), `segment_rows`,
    `target_tokens`; a mean over no rows is NaN.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown FGit weighting {weighting!r}; expected one of {WEIGHTINGS}")
    logps_c, seg_c = _shifted_segment(logits_c, labels_c, hybrid_c)
    has_segment = seg_c.sum(dim=-1) > 0
    metrics: dict[str, Tensor] = {}
    if needs_incorrect(weighting):
        sample_w, p_metrics = _dynamic_weights(
            logps_c, seg_c, logits_i, labels_i, hybrid_i, lam, weighting, paired, has_segment)
        metrics.update(p_metrics)
    else:
        sample_w = torch.full_like(logps_c[:, 0], float(fixed_weight))
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


def _dynamic_weights(
    logps_c: Tensor, seg_c: Tensor, logits_i: Tensor | None, labels_i: Tensor | None,
    hybrid_i: Tensor | None, lam: float, weighting: str, paired: Tensor | None, has_segment: Tensor,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-row weights `[B]` (1 on plain rows) and the p_c / p_i metrics."""
    index = _paired_rows(paired, logps_c.shape[0], logits_i)
    sample_w = torch.ones_like(logps_c[:, 0])
    plain = torch.ones_like(has_segment)
    plain[index.to(plain.device)] = False
    if bool((plain & has_segment).any()):
        raise ValueError("fgit_loss: a row without y_i has a nonzero H_c segment mask")
    if len(index) == 0:
        nothing = torch.tensor(float("nan"), device=logps_c.device)
        return sample_w, {"p_c": nothing, "p_i": nothing}
    if labels_i is None or hybrid_i is None:
        raise ValueError(f"fgit_loss: weighting={weighting!r} needs logits_i, labels_i and hybrid_i")
    logps_i, seg_i = _shifted_segment(logits_i, labels_i, hybrid_i)
    index = index.to(logps_c.device)
    w, p_c, p_i = dynamic_sample_weights(
        logps_c[index], seg_c[index], logps_i, seg_i, lam, DYNAMIC_WEIGHTINGS[weighting])
    keep = has_segment[index]
    metrics = {"p_c": _masked_mean(p_c, keep), "p_i": _masked_mean(p_i, keep)}
    return sample_w.index_put((index,), w), metrics


def _masked_mean(values: Tensor, keep: Tensor) -> Tensor:
    """Detached mean of `values[keep]`; NaN when nothing is kept (a mean of nothing, which the
    trainer leaves out of the step's average)."""
    kept = keep.to(values.dtype)
    return ((values * kept).sum() / kept.sum()).detach()
