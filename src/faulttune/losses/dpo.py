"""Preference losses: DPO, RPO, Target-DPO / Target-RPO (IterPref) and Focused-DPO.

Every loss here is a function of masked, SUMMED sequence log-probs (`preference_logps`): which
tokens count is decided by the masks when the log-probs are computed, for the policy and the
reference alike, never inside the loss.

Normaliser of the preference term: `num_pairs`, the number of pairs of the whole optimiser step
(summed over micro-batches and processes by the trainer; default this batch's size), so the
per-pair losses are averaged over the step whatever the accumulation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from faulttune.losses.common import Count, resolve_normaliser


def _preference_metrics(
    chosen_ratio: Tensor, rejected_ratio: Tensor, beta: float
) -> dict[str, Tensor]:
    chosen_rewards = beta * chosen_ratio.detach()
    rejected_rewards = beta * rejected_ratio.detach()
    return {
        "rewards/chosen": chosen_rewards.mean(),
        "rewards/rejected": rejected_rewards.mean(),
        "rewards/accuracies": (chosen_rewards > rejected_rewards).to(chosen_rewards.dtype).mean(),
        "rewards/margins": (chosen_rewards - rejected_rewards).mean(),
    }


def dpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    beta: float,
    num_pairs: Count = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Sigmoid DPO (Rafailov et al. 2023, Eq. 7) on summed log-probs, all inputs `[B]`.

    `L = sum_b -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))) / num_pairs`, i.e. the mean
    over the pairs of the step. Metrics (detached, means over this batch): `rewards/chosen` and
    `rewards/rejected` (beta * log-ratio), `rewards/accuracies` (chosen reward > rejected),
    `rewards/margins`.
    """
    chosen_ratio = policy_chosen - ref_chosen
    rejected_ratio = policy_rejected - ref_rejected
    per_pair = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio))
    local = torch.tensor(per_pair.shape[0], device=per_pair.device)
    loss = per_pair.sum() / resolve_normaliser(num_pairs, local)
    metrics = _preference_metrics(chosen_ratio, rejected_ratio, beta)
    metrics["dpo"] = per_pair.detach().mean()
    return loss, metrics


def rpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    chosen_lengths: Tensor,
    beta: float,
    alpha: float,
    num_pairs: Count = None,
    num_chosen_tokens: Count = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """RPO (Pang et al. 2024, Eq. 2 as in the Target-DPO code): DPO + alpha * NLL(chosen).

    The NLL is the token mean over all chosen completion tokens, like the official Target-DPO
    trainer's `cross_entropy` over the batch: `-sum_b policy_chosen[b] / num_chosen_tokens`. This
    needs `policy_chosen` summed over ALL chosen completion tokens (true for DPO and Target-DPO).
    `chosen_lengths` `[B]`: completion tokens per chosen row; `num_chosen_tokens`: the step's total
    (default `chosen_lengths.sum()`). Metrics: those of `dpo_loss` plus `nll`.
    """
    loss, metrics = dpo_loss(
        policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta, num_pairs
    )
    local_tokens = chosen_lengths.sum()
    nll = -policy_chosen.sum() / resolve_normaliser(num_chosen_tokens, local_tokens)
    metrics["nll"] = (-policy_chosen.sum() / local_tokens.clamp(min=1)).detach()
    return loss + alpha * nll, metrics


def target_dpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    beta: float,
    num_pairs: Count = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Target-DPO (IterPref, arXiv 2503.02783 v3, section 3.3): L = -log sigmoid(beta (K+ - K-')).

    Same algebra as `dpo_loss`; the difference is in the inputs: `policy_rejected` /
    `ref_rejected` are summed ONLY over the rejected error lines D- (the `target_dpo`
    rejected_mask of the masks parquet), while the chosen sums keep every completion token.
    Build them with `preference_logps(logits, labels, chosen_completion_mask, d_minus_mask)`.
    With an all-ones (whole completion) rejected mask this is exactly DPO. Count: num_pairs.
    """
    return dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta, num_pairs)


def target_rpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    chosen_lengths: Tensor,
    beta: float,
    alpha: float,
    num_pairs: Count = None,
    num_chosen_tokens: Count = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Target-RPO (IterPref v3 section 3.3): Target-DPO + alpha * token-mean NLL on all chosen
    completion tokens (not restricted to D+), alpha = 1.0 in the paper. Inputs as in
    `target_dpo_loss`, NLL normaliser as in `rpo_loss`.
    """
    return rpo_loss(
        policy_chosen,
        policy_rejected,
        ref_chosen,
        ref_rejected,
        chosen_lengths,
        beta,
        alpha,
        num_pairs,
        num_chosen_tokens,
    )


def focused_preference_masks(
    chosen_completion: Tensor,
    chosen_middle: Tensor,
    rejected_middle: Tensor,
    middle_weight: float,
) -> tuple[Tensor, Tensor]:
    """Per-token weights of the chosen and mask of the rejected for Focused-DPO, all `[B, T]`.

    Inputs are 0/1 masks aligned to the labels: the chosen completion tokens, and the differing
    middle segments of chosen and rejected (the `focused_dpo` masks of the masks parquet). Chosen
    weights: 0 on the prompt and the common prefix, `middle_weight` on the middle, 1 on the suffix
    (completion tokens from the middle's start on that are not middle). An empty chosen middle (the
    rejected inserted code) starts the suffix where the rejected middle starts, since the prompt
    and the common prefix are identical. Rejected mask: its middle only (its suffix is dropped).
    """

    def first_index(mask: Tensor) -> Tensor:
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        return torch.where(mask != 0, positions, mask.shape[1]).min(dim=1).values

    start = torch.minimum(first_index(chosen_middle), first_index(rejected_middle))
    positions = torch.arange(chosen_completion.shape[1], device=chosen_completion.device)
    after_start = (positions.unsqueeze(0) >= start.unsqueeze(1)) & (chosen_completion != 0)
    weights = torch.where(chosen_middle != 0, middle_weight, after_start.to(torch.float32))
    return weights.to(torch.float32), (rejected_middle != 0).to(torch.float32)


def focused_dpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    beta: float,
    num_pairs: Count = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Focused-DPO (arXiv 2502.11475; docs/methods.md §4, INTERPRETATION of its algebra):

        L = -log sigmoid(beta * [w * lr(mid_c) + lr(suffix_c) - lr(mid_r)]),  w = 2,

    lr = log pi_theta - log pi_ref. Interface: `policy_chosen` / `ref_chosen` are the chosen
    log-probs weighted per token by the chosen weights of `focused_preference_masks` (w on the
    middle, 1 on the suffix, 0 on prompt and common prefix, which cancels), `policy_rejected` /
    `ref_rejected` the rejected log-probs summed over its middle only; pass both through
    `preference_logps`. Count: num_pairs (mean over the step's pairs).
    """
    return dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta, num_pairs)
