"""A training sequence as the model sees it: the chat-templated prompt + response, tokenised with
offsets, the response span and where the code starts (docs/CONTRACTS.md "Training examples").

Response tokens: from the first token that starts at or after the response's first character
through the response's last character, plus the end-of-turn token right after it, which the
model must learn to emit. The end-of-turn token is the one the CHAT TEMPLATE closes an assistant
turn with (:func:`end_of_turn_id`: ChatML ``<|im_end|>``, Llama 3 ``<|eot_id|>``), which need not
be ``tokenizer.eos_token_id``. Whatever the template writes after it (e.g. a newline) is never
masked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from faulttune.generate.prompts import (
    BUGFIX_TEMPLATES,
    CODE_PREFILL,
    code_response,
    render_training_text,
)
from faulttune.masks import Encoded

REJECT_REASONS = ("empty code", "empty instruction", "identical", "too long", "template error",
                  "another pair of the task is more similar")


class RowRejected(Exception):
    """A pair that cannot become a training example; ``reason`` is one of REJECT_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def normalise_code(code: str) -> str:
    """The code exactly as :func:`code_response` writes it (surrounding newlines stripped, one
    newline at the end)."""
    return code.strip("\n") + "\n"


_TURN_PROBE = "faulttune-end-of-turn-probe"


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The token that closes an assistant turn: the first special token the chat template
    writes after an assistant message (ChatML ``<|im_end|>``, Llama 3 ``<|eot_id|>``, Gemma
    ``<end_of_turn>``, Mistral ``</s>``). ``eos_token_id`` when the tokenizer has no chat template
    or the template writes no special token after the message."""
    if not getattr(tokenizer, "chat_template", None):
        return tokenizer.eos_token_id
    messages = [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": _TURN_PROBE}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    after = text[text.rindex(_TURN_PROBE) + len(_TURN_PROBE):]
    special = set(tokenizer.all_special_ids)
    special |= {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
    ids = tokenizer(after, add_special_tokens=False).input_ids
    return next((i for i in ids if i in special), tokenizer.eos_token_id)


@dataclass(frozen=True)
class Encoder:
    """A tokenizer and the end-of-turn token its chat template closes a response with."""

    tokenizer: Any
    end_of_turn: int | None

    @classmethod
    def of(cls, tokenizer: Any) -> Encoder:
        return cls(tokenizer, end_of_turn_id(tokenizer))


def encode_training(encoder: Encoder, messages: Any, code: str) -> Encoded:
    """Render and tokenise prompt + ``code_response(code)``; locate the response and the code."""
    tokenizer = encoder.tokenizer
    try:
        full, start_char, end_char = render_training_text(tokenizer, messages, code_response(code))
    except ValueError as e:
        raise RowRejected("template error", str(e)) from e
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    start = next((i for i, (s, _) in enumerate(offsets) if s >= start_char), len(ids))
    end = next((i for i, (s, _) in enumerate(offsets) if s >= end_char), len(ids))
    if end < len(ids) and ids[end] == encoder.end_of_turn:
        end += 1
    return Encoded(ids, offsets, start, end, start_char + len(CODE_PREFILL))


def check_length(encoded: Encoded, side: str, max_length: int) -> None:
    if len(encoded.ids) > max_length:
        raise RowRejected("too long", f"{side} has {len(encoded.ids)} tokens > max_length {max_length}")


def template_index(seed: int, pair_id: str) -> int:
    """A bug-fix row's template for a pair: seeded, and independent of the order of the pairs."""
    digest = hashlib.sha256(f"{seed}:{pair_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % len(BUGFIX_TEMPLATES)
