"""IterPref's LLM judge (docs/methods.md §3.1 step 5): after the rule filters, the teacher is
asked whether each pair differs in logic and not only in names, formatting or comments; the paper
kept 59k of 84k pairs this way.

The answer's verdict is the last YES or NO of its last non-empty line (:func:`parse_verdict`). A
pair judged NO, or whose answer is neither (or both), is dropped into the rejected rows with the
answer in its reason, never lost. Pairs are asked :data:`CHUNK` at a time, greedily; every answer
is appended to ``state`` (JSONL ``{"id", "answer"}``), so a resumed run asks only for the pairs it
has no answer to.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from faulttune.codeflow.columns import REJECTED_COLUMNS, Row
from faulttune.generate.base import Backend, GenerationParams
from faulttune.generate.prompts import judge_messages
from faulttune.io import append_jsonl, read_appended_jsonl

log = logging.getLogger(__name__)

CHUNK = 64
MAX_NEW_TOKENS = 256  # two sentences and the verdict
ANSWER_CHARS = 300  # of the judge's answer kept in a reason
NO_DIFFERENCE = "judge: no logic difference: "
NO_VERDICT = "judge: neither yes nor no: "


def parse_verdict(answer: str) -> bool | None:
    """True for YES, False for NO, None when the last non-empty line holds neither or both."""
    lines = [line for line in answer.splitlines() if line.strip()]
    if not lines:
        return None
    words = set(re.findall(r"\b(yes|no)\b", lines[-1].lower()))
    if words == {"yes"}:
        return True
    if words == {"no"}:
        return False
    return None


def judge_params(seed: int = 0) -> GenerationParams:
    """Greedy, a free-form answer (no code pre-fill, no stop string)."""
    return GenerationParams(max_new_tokens=MAX_NEW_TOKENS, seed=seed, prefill="", stop=())


def judge_pairs(
    pairs: Sequence[Row], backend: Backend, *, seed: int = 0, state: str | Path | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[list[Row], list[Row]]:  # fmt: skip
    """``(kept, judged_out)``: the pairs the judge says differ in logic, in their order, and a
    rejected row (:data:`REJECTED_COLUMNS`) for each other one, with the judge's answer."""
    answers = _stored_answers(state)
    todo = [p for p in pairs if p["id"] not in answers]
    log.info("judge: %d pairs, %d already judged", len(pairs), len(pairs) - len(todo))
    groups = [todo[first : first + CHUNK] for first in range(0, len(todo), CHUNK)]
    for done, chunk in enumerate(groups, start=1):
        conversations = [judge_messages(p["instruction"], p["chosen"], p["rejected"]) for p in chunk]
        replies = backend.chat(conversations, judge_params(seed))
        if len(replies) != len(chunk):
            raise RuntimeError(f"backend returned {len(replies)} answers for {len(chunk)} pairs")
        for pair, reply in zip(chunk, replies):
            answers[pair["id"]] = reply[0]
            if state is not None:
                append_jsonl({"id": pair["id"], "answer": reply[0]}, state)
        if should_stop is not None and should_stop() and done < len(groups):
            from faulttune.resume import Preempted

            raise Preempted(f"judge stopped on request after {done} of {len(groups)} groups")
    kept, out = [], []
    for pair in pairs:
        reason = verdict_reason(answers[pair["id"]])
        if reason is None:
            kept.append(pair)
        else:
            out.append({**{k: pair.get(k) for k in REJECTED_COLUMNS}, "reason": reason})
    log.info("judge: kept %d of %d pairs", len(kept), len(pairs))
    return kept, out


def verdict_reason(answer: str) -> str | None:
    """None for a YES; the rejected row's reason (with the answer) otherwise."""
    verdict = parse_verdict(answer)
    if verdict:
        return None
    short = " ".join(answer.split())[:ANSWER_CHARS] or "(empty answer)"
    return (NO_DIFFERENCE if verdict is False else NO_VERDICT) + short


def _stored_answers(state: str | Path | None) -> dict[str, str]:
    if state is None:
        return {}
    return {row["id"]: row["answer"] for _, row in read_appended_jsonl(state)}
