"""Any OpenAI-compatible chat endpoint (a vLLM server, a hosted teacher) as a backend.

Requests go to ``{base_url}/chat/completions`` through the ``openai`` package when it is installed
(evalplus depends on it), else through a small ``urllib`` client speaking the same JSON.

Pre-fill: an empty ``params.prefill`` asks for the whole reply (FGit's teacher answers in
markdown). Otherwise, with ``continue_final_message=True`` (vLLM servers support it) the conversation ends
with an assistant message holding ``params.prefill``, the server continues that message, and the
reply is cut at the stop string exactly as the other backends do. Without it the model writes a
whole reply and the completion is the code block extracted from it
(:func:`faulttune.generate.extract.extract_code_block`). Stop rules are applied to the completion.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from faulttune.generate.base import GenerationParams, StopRules
from faulttune.generate.extract import extract_code_block
from faulttune.generate.prompts import Conversation
from faulttune.generate.stops import StopRule, cut_completion


class OpenAIBackend:
    """Chat completions from ``model`` at ``base_url`` (default: ``$OPENAI_BASE_URL`` or OpenAI)."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout_s: float = 120.0,
        continue_final_message: bool = False,
        batch_size: int | None = None,  # accepted for a shared config; ``concurrency`` governs
    ) -> None:
        if not model:
            raise ValueError("the openai backend needs a served model name (--model)")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.model = model
        self.base_url = (
            base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        ).rstrip("/")
        # Local servers (vLLM) accept any key; hosted APIs fail with their own clear error.
        self.api_key = os.environ.get(api_key_env) or "EMPTY"
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.continue_final_message = continue_final_message

    def chat(
        self,
        conversations: Sequence[Conversation],
        params: GenerationParams,
        stop_rules: StopRules | None = None,
    ) -> list[list[str]]:
        """``params.n`` completions per conversation, requested ``concurrency`` at a time."""
        rules = stop_rules or [None] * len(conversations)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(
                pool.map(lambda c, r: self._samples(c, params, r), conversations, rules)
            )

    def _samples(
        self, conv: Conversation, params: GenerationParams, rule: StopRule | None
    ) -> list[str]:
        texts: list[str] = []
        while len(texts) < params.n:  # some servers return fewer choices than asked
            replies = self._request(self.payload(conv, params, params.n - len(texts), len(texts)))
            if not replies:
                raise RuntimeError(f"{self.base_url}: chat completion returned no choices")
            texts.extend(self._completion(reply, params, rule) for reply in replies)
        return texts[: params.n]

    def payload(
        self, conv: Conversation, params: GenerationParams, n: int, offset: int = 0
    ) -> dict[str, Any]:
        """The request body; ``offset`` shifts the seed when more choices are asked for."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(conv),
            "n": n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed + offset,
            "max_tokens": params.max_new_tokens,
        }
        if self.continue_final_message:
            body["messages"] = [*conv, {"role": "assistant", "content": params.prefill}]
            body["stop"] = list(params.stop)
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        return body

    def _completion(self, reply: str, params: GenerationParams, rule: StopRule | None) -> str:
        """The reply as the other backends return it. Without a pre-fill (a markdown answer) that
        is the whole reply; with one that the server did not continue, its code block."""
        if self.continue_final_message or not params.prefill:
            return cut_completion(reply, params.stop, rule)
        return cut_completion(extract_code_block(reply), (), rule)

    def _request(self, body: dict[str, Any]) -> list[str]:
        """The message contents of the choices, through ``openai`` if installed, else urllib."""
        try:
            import openai
        except ImportError:
            return self._request_urllib(body)
        client = openai.OpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout_s)
        standard = {
            k: v
            for k, v in body.items()
            if k not in ("continue_final_message", "add_generation_prompt")
        }
        extra = {
            k: body[k] for k in ("continue_final_message", "add_generation_prompt") if k in body
        }
        response = client.chat.completions.create(**standard, extra_body=extra or None)
        return [choice.message.content or "" for choice in response.choices]

    def _request_urllib(self, body: dict[str, Any]) -> list[str]:
        request = urllib.request.Request(
            self.base_url + "/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            reply = json.load(response)
        return [choice["message"].get("content") or "" for choice in reply["choices"]]
