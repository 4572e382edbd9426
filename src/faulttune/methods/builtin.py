"""The built-in entries: mask kinds, training examples and methods (docs/methods.md).

Adding a method is one :class:`Method` here (or in a plugin, :mod:`faulttune.methods.plugins`)
plus its loss (:mod:`faulttune.losses`) and its training behaviour (a
:class:`~faulttune.methods.recipe.Recipe` subclass); a new kind of mask is one :class:`MaskKind`
plus its pure function in :mod:`faulttune.masks`.
"""

from __future__ import annotations

from faulttune import masks as M
from faulttune.methods.kinds import BUGFIX, EVERY_TASK, PAIR, PAIRS, SOLUTION, TASKS
from faulttune.methods.registry import (
    CODEFLOW,
    PAIRS_SOURCES,
    REJECTED_RULES,
    Examples,
    MaskKind,
    Method,
    Param,
    RowSpec,
    register,
    register_pairs_source,
)

TRACE = "trace"
for _source, _rule in (("teacher", "select_pairs"), ("mutation", "mutate"), ("cct", "mutate"),
                       (CODEFLOW, CODEFLOW)):
    register_pairs_source(_source, _rule)

register(
    MaskKind("response", "every response token of both sides", M.response_marks),
    MaskKind("first_diff", "every response token; the row keeps the first differing token "
             "position (CCT's comparison starts there)", M.first_diff_marks, first_diff=True),
    *(MaskKind(g, f"FGit's {g} diff: " + {
        "line": "1 on the tokens of the lines ndiff changes",
        "token": "1 on the tokens overlapping a Levenshtein-edited character",
        "hybrid": "2 on edited tokens, 1 on the rest of their changed lines"}[g],
        M.segment_marks(g)) for g in M.GRANULARITIES),
    MaskKind("d_minus", "IterPref's D-: the lines ndiff tags '+' on the wrong twin ('-' on the "
             "correct one)", M.d_minus_marks),
    MaskKind("middles", "the tokens between the common prefix and the common suffix (Focused-DPO)",
             M.middle_marks),
    MaskKind(TRACE, "fault localisation by execution trace: the changed lines each twin runs from "
             "the first divergence of their line traces on an input where their outputs differ "
             "(the line diff where the traces cannot tell; docs/methods.md §7)", M.trace_marks,
             traced=True),
)

_SEGMENTS = (*M.GRANULARITIES, TRACE)
register(
    Examples("sft", "the training table's solutions", TASKS, (RowSpec("sft", SOLUTION),)),
    Examples("cct", "comparison pairs and their bug-fix samples", PAIRS,
             (RowSpec("cct", PAIR, "first_diff", "first_diff"), RowSpec("cct_seq", BUGFIX))),
    *(Examples(f"fgit-{g}", f"every task of the training table with its most similar pair, "
               f"marked by the {g} mask", EVERY_TASK, (RowSpec("fgit", PAIR, g, g),))
      for g in _SEGMENTS),
    Examples("dpo", "pairs, every response token", PAIRS,
             (RowSpec("dpo", PAIR, "response", "response"),)),
    Examples("target_dpo", "pairs, the rejected side's D- lines", PAIRS,
             (RowSpec("target_dpo", PAIR, "response", "d_minus"),)),
    Examples(f"target_dpo-{TRACE}", "pairs, the rejected side's traced lines", PAIRS,
             (RowSpec("target_dpo", PAIR, "response", TRACE),)),
    Examples("focused_dpo", "pairs, the differing middles", PAIRS,
             (RowSpec("focused_dpo", PAIR, "middles", "middles"),)),
    *(Examples(f"pairs_{side}", f"the {side} code of every pair as an SFT example", PAIRS,
               (RowSpec("sft", SOLUTION, side=side),)) for side in ("correct", "incorrect")),
)

_NONNEG = {"type": "number", "minimum": 0}


def _bugs(default: str) -> Param:
    return Param("bugs", default, "which pairs train it: " + ", ".join(PAIRS_SOURCES),
                 {"enum": list(PAIRS_SOURCES)}, data=True)


_BETA_DPO = Param("beta", 0.1, "the DPO temperature beta", _NONNEG)
_ALPHA_NLL = Param("alpha", 1.0, "weight of the NLL term on the chosen response", _NONNEG)
_REJECTED = Param("rejected", REJECTED_RULES[0],
                  "IterPref: which earlier failing version of a CodeFlow trajectory is rejected",
                  {"enum": list(REJECTED_RULES)}, data=True)
_REJECTED_MASK = Param("rejected_mask", "d_minus", "which lines of the rejected side count: "
                       "d_minus (the line diff) or trace (docs/methods.md §7)",
                       {"enum": ["d_minus", TRACE]}, data=True)
_RECIPES = "faulttune.methods"


def _target_examples(params) -> tuple[str, ...]:
    mask = params["rejected_mask"]
    return ("target_dpo",) if mask == "d_minus" else (f"target_dpo-{mask}",)


def _contrastive_models(params) -> dict[str, dict]:
    """TIS-DPO's contrastive pair: SFT on the correct and on the incorrect code of its pairs."""
    return {role: {"method": "pair_sft", "side": side, "bugs": params["bugs"]}
            for role, side in (("positive", "correct"), ("negative", "incorrect"))}


register(
    Method("base", "the untouched student (no training)"),
    Method("sft", "supervised fine-tuning on the correct solutions (token-mean NLL)",
           examples=lambda p: ("sft",), baseline="base", training=f"{_RECIPES}.sft:SFT"),
    Method("pair_sft", "SFT on one side of the pairs (TIS-DPO's contrastive models: correct "
           "code, or the wrong twins)",
           params=(Param("side", "correct", "which code of each pair is the response",
                         {"enum": ["correct", "incorrect"]}, data=True), _bugs("mutation")),
           examples=lambda p: (f"pairs_{p['side']}",), training=f"{_RECIPES}.sft:SFT"),
    Method("cct", "Code Comparison Tuning: L_lm + alpha*L_token (hinge from the first differing "
           "token) + beta*L_seq (buggy -> fixed samples)",
           params=(Param("alpha", 2.0, "weight of the token-level hinge L_token", _NONNEG),
                   Param("beta", 0.5, "weight of the bug-fix sequence loss L_seq", _NONNEG),
                   Param("margin", 1.0, "hinge margin of L_token", _NONNEG),
                   _bugs("cct")),
           examples=lambda p: ("sft", "cct"), units="task", head=True, baseline="sft",
           training=f"{_RECIPES}.cct:CCT", row_weights=(("cct", "alpha"), ("cct_seq", "beta"))),
    Method("fgit", "Fault-Guided fine-tuning: SFT whose error-sensitive tokens get a dynamic "
           "weight in (1, lambda]",
           params=(Param("lambda", 2.0, "upper end of the dynamic weight range (1, lambda]",
                         {"type": "number", "minimum": 1}),
                   Param("granularity", "hybrid", "which mask marks the segment: "
                         + ", ".join(_SEGMENTS), {"enum": list(_SEGMENTS)}, data=True),
                   Param("weighting", "dynamic", "dynamic (symmetric Bradley-Terry), one_sided "
                         "(never rewards raising p_i) or fixed",
                         {"enum": ["dynamic", "one_sided", "fixed"]}),
                   Param("fixed_weight", 2.0, "weighting fixed: the constant on every segment token "
                         "(1 == SFT)", _NONNEG),
                   _bugs("teacher")),
           examples=lambda p: (f"fgit-{p['granularity']}",), baseline="sft",
           training=f"{_RECIPES}.fgit:FGit"),
    Method("dpo", "DPO on summed response log-probs",
           params=(_BETA_DPO, _bugs(CODEFLOW)), examples=lambda p: ("dpo",), reference=True,
           baseline="base", training=f"{_RECIPES}.preference:DPO"),
    Method("rpo", "DPO + alpha * NLL of the chosen response",
           params=(_BETA_DPO, _ALPHA_NLL, _bugs(CODEFLOW)), examples=lambda p: ("dpo",),
           reference=True, baseline="base", training=f"{_RECIPES}.preference:RPO"),
    Method("target_dpo", "IterPref's Target-DPO: the rejected log-ratio counts only the error "
           "lines D- (or the traced lines)", params=(_BETA_DPO, _REJECTED, _REJECTED_MASK,
                                                     _bugs(CODEFLOW)),
           examples=_target_examples, reference=True, baseline="dpo",
           training=f"{_RECIPES}.preference:DPO"),
    Method("target_rpo", "IterPref's Target-RPO: Target-DPO + alpha * NLL of the chosen response",
           params=(_BETA_DPO, _ALPHA_NLL, _REJECTED, _REJECTED_MASK, _bugs(CODEFLOW)),
           examples=_target_examples, reference=True, baseline="rpo",
           training=f"{_RECIPES}.preference:RPO"),
    Method("focused_dpo", "Focused-DPO: the chosen middle segment up-weighted, the rejected suffix "
           "dropped",
           params=(_BETA_DPO, Param("focus_weight", 2.0, "weight of the chosen middle segment",
                                    _NONNEG), _bugs(CODEFLOW)),
           examples=lambda p: ("focused_dpo",), reference=True, baseline="dpo",
           training=f"{_RECIPES}.preference:FocusedDPO"),
    Method("tis_dpo", "TIS-DPO: DPO whose every token is weighted by k*exp(+-mu*clamp(log p+ - "
           "log p-, L, U)) from two contrastive models (SFT on the correct and on the wrong code)",
           params=(_BETA_DPO,
                   Param("mu", 1.0, "mu: how strongly the log-probability gap sets a weight",
                         _NONNEG),
                   Param("lower", -0.5, "L: the gap is clipped to [L, U]", {"type": "number"}),
                   Param("upper", 1.5, "U: the gap is clipped to [L, U]", {"type": "number"}),
                   Param("scale", 1.0, "k: every weight's factor", {"type": "number",
                                                                   "exclusiveMinimum": 0}),
                   _bugs(CODEFLOW)),
           examples=lambda p: ("dpo",), reference=True, requires=_contrastive_models,
           baseline="dpo", training=f"{_RECIPES}.tis_dpo:TISDPO"),
)
