"""TIS-DPO (Liu et al., ICLR 2025, arXiv 2410.04350): DPO with token-level importance weights
estimated from a contrastive pair of models, docs/methods.md §6.

Each response token gets a weight from the log-probability gap of a positive model pi+ (trained
towards the chosen responses) and a negative model pi- (towards the rejected ones):

    chosen token   w = k * exp( mu * clamp(log pi+(y_t) - log pi-(y_t), L, U))
    rejected token w = k * exp(-mu * clamp(log pi+(y_t) - log pi-(y_t), L, U))

so a chosen token that the positive model prefers, and a rejected token that the negative model
prefers, weigh more. The loss is DPO on the token-WEIGHTED log-ratios:

    L = -log sigmoid(beta * [sum_t w_t^c log(pi/pi_ref)(y^c_t) - sum_t w_t^r log(pi/pi_ref)(y^r_t)])

(the paper's objective without its sequential-KL term delta, the variant its code trains by
default). The weights are fixed before training, so the weighted sums are `preference_logps`
with the weights as masks, for the policy and the reference alike.
"""

from __future__ import annotations

import torch
from torch import Tensor

from faulttune.losses.common import Count
from faulttune.losses.dpo import dpo_loss


def tis_token_weights(
    logp_positive: Tensor, logp_negative: Tensor, mask: Tensor, *, chosen: bool, mu: float,
    lower: float, upper: float, scale: float,
) -> Tensor:
    """Per-token weights (any shape, element-wise): ``scale * exp(+-mu * clamp(lp+ - lp-, lower,
    upper))`` where ``mask != 0`` (``+`` on a chosen response, ``-`` on a rejected one), 0
    elsewhere."""
    if lower > upper:
        raise ValueError(f"TIS-DPO clips the gap to [lower, upper]: {lower} > {upper}")
    gap = (logp_positive - logp_negative).clamp(min=lower, max=upper)
    sign = 1.0 if chosen else -1.0
    weights = scale * torch.exp(sign * mu * gap)
    return torch.where(mask != 0, weights, torch.zeros_like(weights))


def weighted_log_ratio(policy_logps: Tensor, reference_logps: Tensor, weights: Tensor) -> Tensor:
    """``sum_t w_t (log pi(y_t) - log pi_ref(y_t))`` over the last dim: per-token log-probs and
    weights of the same shape."""
    return (weights * (policy_logps - reference_logps)).sum(dim=-1)


def tis_dpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    beta: float,
    num_pairs: Count = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """TIS-DPO on token-weighted summed log-probs `[B]` (``sum_t w_t log p(y_t)`` of each side
    under the policy and the reference): `dpo_loss` of them, whose margin is then the difference
    of the weighted log-ratios. Metrics: those of `dpo_loss`."""
    return dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta, num_pairs)
