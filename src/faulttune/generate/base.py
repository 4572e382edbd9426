"""One interface for every generation backend.

A *conversation* is a list of chat messages ``{"role": ..., "content": ...}``
(:mod:`faulttune.generate.prompts`). ``Backend.chat`` returns, for each conversation, ``params.n``
raw completions: the text the model wrote after the assistant pre-fill, ending before the first
stop string or where the conversation's stop rule ends it (:mod:`faulttune.generate.stops`).
Backends: ``hf`` (transformers, CPU and tests), ``vllm`` (GPU), ``openai`` (any OpenAI-compatible
endpoint), built by :func:`faulttune.generate.make_backend`; ``scripted`` (tests) is here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from faulttune.generate.prompts import Conversation
from faulttune.generate.stops import StopRule, cut_completion

# One stop rule (or None) per conversation, in the order of the conversations.
StopRules = Sequence[StopRule | None]


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings shared by every backend."""

    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    n: int = 1
    seed: int = 0
    # The assistant turn starts with this text and generation stops at the closing fence, so the
    # completion is exactly one code block body (docs/cpu_notes.md: a bare "```" stop ends at the opening).
    prefill: str = "```python\n"
    stop: tuple[str, ...] = ("```",)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.n > 1 and self.temperature == 0:
            raise ValueError("n > 1 needs temperature > 0 (greedy gives n identical samples)")


class Backend(Protocol):
    name: str

    def chat(
        self,
        conversations: Sequence[Conversation],
        params: GenerationParams,
        stop_rules: StopRules | None = None,
    ) -> list[list[str]]:
        """``params.n`` completions per conversation, in input order."""
        ...


@dataclass
class ScriptedBackend:
    """A backend that answers from a script, for tests.

    ``replies`` is either a list consumed in call order (one reply per conversation and sample), or
    a function ``(conversation, sample_index) -> str``. Every conversation received is kept in
    ``seen`` so that tests can assert on the prompts. Stop rules cut the replies as the other
    backends do; ``params.stop`` is not applied (replies are written as the completions).
    """

    replies: list[str] | Callable[[Conversation, int], str]
    name: str = "scripted"
    seen: list[Conversation] = field(default_factory=list)
    calls: int = 0

    def chat(
        self,
        conversations: Sequence[Conversation],
        params: GenerationParams,
        stop_rules: StopRules | None = None,
    ) -> list[list[str]]:
        self.calls += 1
        rules = stop_rules or [None] * len(conversations)
        out: list[list[str]] = []
        for conv, rule in zip(conversations, rules, strict=True):
            self.seen.append(list(conv))
            out.append([cut_completion(self._next(conv, i), (), rule) for i in range(params.n)])
        return out

    def _next(self, conv: Conversation, i: int) -> str:
        if callable(self.replies):
            return self.replies(conv, i)
        if not self.replies:
            raise RuntimeError("ScriptedBackend ran out of replies")
        return self.replies.pop(0)
