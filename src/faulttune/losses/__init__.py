"""Training losses as pure functions of tensors (see common.py for the alignment convention).

Every loss returns `(loss, metrics)`: a scalar to backpropagate and a dict of detached 0-dim
tensors to log. Normalisers are step-level counts the trainer passes in (`num_target_tokens`,
`num_pairs`, ...), so gradient accumulation and the number of processes do not change the loss.
"""

from faulttune.losses.cct import CCTHead, cct_loss, token_hinge_terms
from faulttune.losses.common import (
    IGNORE_INDEX,
    count_targets,
    preference_logps,
    sequence_logps,
    token_logps,
)
from faulttune.losses.dpo import (
    dpo_loss,
    focused_dpo_loss,
    focused_preference_masks,
    rpo_loss,
    target_dpo_loss,
    target_rpo_loss,
)
from faulttune.losses.fgit import (
    WEIGHTINGS,
    fgit_loss,
    fgit_one_sided_weights,
    fgit_weights,
    needs_incorrect,
    segment_mean_prob,
)
from faulttune.losses.sft import sft_loss
from faulttune.losses.tis_dpo import tis_dpo_loss, tis_token_weights, weighted_log_ratio

__all__ = [
    "IGNORE_INDEX",
    "WEIGHTINGS",
    "CCTHead",
    "cct_loss",
    "count_targets",
    "dpo_loss",
    "fgit_loss",
    "fgit_one_sided_weights",
    "fgit_weights",
    "focused_dpo_loss",
    "focused_preference_masks",
    "needs_incorrect",
    "preference_logps",
    "rpo_loss",
    "segment_mean_prob",
    "sequence_logps",
    "sft_loss",
    "target_dpo_loss",
    "target_rpo_loss",
    "tis_dpo_loss",
    "tis_token_weights",
    "token_hinge_terms",
    "token_logps",
    "weighted_log_ratio",
]
