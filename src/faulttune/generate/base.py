"""One interface for every generation backend.

A *conversation* is a list of chat messages ``{"role": ..., "content": ...}``. ``Backend.chat``
returns, for each conversation, ``params.n`` raw completions (the text the model wrote after the
assistant pre-fill, with the stop string removed). Backends: ``hf`` (transformers, CPU and tests),
``vllm`` (GPU, imported lazily), ``openai`` (any OpenAI-compatible endpoint), ``scripted`` (tests).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Message = dict[str, str]
Conversation = list[Message]


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
        self, conversations: Sequence[Conversation], params: GenerationParams
    ) -> list[list[str]]:
        """``params.n`` completions per conversation, in input order."""
        ...


@dataclass
class ScriptedBackend:
    """A backend that answers from a script, for tests.

    ``replies`` is either a list consumed in call order (one reply per conversation and sample), or
    a function ``(conversation, sample_index) -> str``. Every conversation received is kept in
    ``seen`` so that tests can assert on the prompts.
    """

    replies: list[str] | Callable[[Conversation, int], str]
    name: str = "scripted"
    seen: list[Conversation] = field(default_factory=list)
    calls: int = 0

    def chat(
        self, conversations: Sequence[Conversation], params: GenerationParams
    ) -> list[list[str]]:
        self.calls += 1
        out: list[list[str]] = []
        for conv in conversations:
            self.seen.append(list(conv))
            out.append([self._next(conv, i) for i in range(params.n)])
        return out

    def _next(self, conv: Conversation, i: int) -> str:
        if callable(self.replies):
            return self.replies(conv, i)
        if not self.replies:
            raise RuntimeError("ScriptedBackend ran out of replies")
        return self.replies.pop(0)


def make_backend(name: str, model: str | None = None, **options: Any) -> Backend:
    """Build a backend by name; heavy libraries are imported only for the chosen one."""
    if name == "hf":
        from faulttune.generate.hf import HFBackend

        return HFBackend(model or "smollm2-135m-instruct", **options)
    if name == "vllm":
        from faulttune.generate.vllm_backend import VLLMBackend

        return VLLMBackend(model or "smollm2-135m-instruct", **options)
    if name == "openai":
        from faulttune.generate.openai_backend import OpenAIBackend

        return OpenAIBackend(model or "", **options)
    raise ValueError(f"unknown generation backend {name!r}; choose one of hf, vllm, openai")
