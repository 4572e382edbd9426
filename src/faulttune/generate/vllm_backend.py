"""The vLLM backend (GPU nodes): same interface and the same prompts as the ``hf`` backend.

``vllm`` is imported only when a :class:`VLLMBackend` is built, so CPU machines never need it.
Prompts are rendered and tokenised by :mod:`faulttune.generate.prompts` as for the hf backend (no
added special tokens) and handed to vLLM as token ids, so both backends see identical inputs. vLLM
stops at the stop strings itself; the stop rules are applied to the text it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faulttune.generate.base import GenerationParams, StopRules
from faulttune.generate.prompts import Conversation, encode_prompts, render_prompts
from faulttune.generate.stops import cut_completion

VLLM_MISSING = (
    "the vllm backend needs the vllm package, which is only installed on GPU nodes: "
    "pip install 'faulttune[gpu]' (or use --backend hf on CPU)"
)


def _import_vllm() -> tuple[Any, Any, Any]:
    """``vllm.LLM``, ``vllm.SamplingParams`` and ``vllm.inputs.TokensPrompt``."""
    try:
        from vllm import LLM, SamplingParams
        from vllm.inputs import TokensPrompt
    except ImportError as e:
        raise ImportError(VLLM_MISSING) from e
    return LLM, SamplingParams, TokensPrompt


class VLLMBackend:
    """vLLM offline generation on ``tensor_parallel_size`` GPUs; greedy, fixed seed by default."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        precision: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        seed: int = 0,
        batch_size: int | None = None,  # accepted for a shared config; vLLM schedules its own
    ) -> None:
        llm_class, self._sampling_params, self._tokens_prompt = _import_vllm()
        from faulttune.models import load_tokenizer, resolve_model

        dtypes = {"auto": "auto", "fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
        if precision not in dtypes:
            raise ValueError(f"precision must be one of {sorted(dtypes)}, got {precision!r}")
        self.tokenizer = load_tokenizer(model)
        self.llm = llm_class(
            model=resolve_model(model),
            dtype=dtypes[precision],
            seed=seed,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
        )

    def chat(
        self,
        conversations: Sequence[Conversation],
        params: GenerationParams,
        stop_rules: StopRules | None = None,
    ) -> list[list[str]]:
        """``params.n`` completions per conversation (vLLM removes the stop string itself)."""
        texts = render_prompts(self.tokenizer, conversations, params.prefill)
        prompts = [
            self._tokens_prompt(prompt_token_ids=ids)
            for ids in encode_prompts(self.tokenizer, texts)
        ]
        sampling = self._sampling_params(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
            max_tokens=params.max_new_tokens,
            stop=list(params.stop),
        )
        results = self.llm.generate(prompts, sampling, use_tqdm=True)
        rules = stop_rules or [None] * len(conversations)
        return [
            [cut_completion(choice.text, (), rule) for choice in result.outputs]
            for result, rule in zip(results, rules, strict=True)
        ]
