"""The transformers backend: batched decoding on CPU (and GPU) with our continuous-batching loop.

``HFBackend.chat`` renders and tokenises every conversation as the vllm backend does
(:func:`faulttune.generate.prompts.render_prompts`, no extra special tokens) and hands the prompts
to :func:`faulttune.generate.decode.decode_rows`. A row is done at its first stop string or where
its conversation's stop rule ends it (checked on the decoded text after every token); completions
are decoded from the new tokens alone (right for the byte-level BPE tokenizers of code models) and
cut there, nothing else is removed. On a CPU, :class:`faulttune.generate.cores.CoreShare` lowers
the torch threads while other processes want the cores.

Sampling (temperature > 0) draws each row from its own ``torch.Generator`` seeded from
``(params.seed, row index)``, so samples are reproducible and independent of the batch size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from faulttune.generate.base import GenerationParams, StopRules
from faulttune.generate.cores import CoreShare
from faulttune.generate.decode import Picker, decode_rows
from faulttune.generate.prompts import Conversation, encode_prompts, render_prompts
from faulttune.generate.stops import cut_completion, is_finished

log = logging.getLogger(__name__)


def render_and_encode(
    tokenizer: Any, conversations: Sequence[Conversation], prefill: str
) -> list[list[int]]:
    """Prompt token ids, rendered and tokenised exactly as the vllm backend does."""
    return encode_prompts(tokenizer, render_prompts(tokenizer, conversations, prefill))


class HFBackend:
    """transformers generation behind :class:`faulttune.generate.base.Backend`.

    ``precision``: auto | fp32 | bf16 | fp16 (auto = fp32 on CPUs without native bf16);
    ``batch_size``: rows decoded at once; ``torch_threads``: sets ``torch.set_num_threads``, the
    most threads decoding uses on a CPU (default: the process's setting); ``share_cores``: use
    fewer while other processes want the cores (:mod:`faulttune.generate.cores`).
    """

    name = "hf"

    def __init__(
        self,
        model: str,
        *,
        precision: str = "auto",
        batch_size: int = 8,
        device: str | None = None,
        torch_threads: int | None = None,
        progress: bool = True,
        share_cores: bool = True,
    ) -> None:
        from faulttune.models import load_model, load_tokenizer

        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        self.model_name = model
        self.tokenizer = load_tokenizer(model)
        self.model = load_model(model, precision=precision, device=device)
        self.batch_size = batch_size
        self.progress = progress
        self.share_cores = share_cores
        self.row_tokens: list[int] = []  # new tokens (EOS excluded) per row of the last chat call

    @classmethod
    def from_loaded(
        cls,
        model: Any,
        tokenizer: Any,
        *,
        batch_size: int = 8,
        progress: bool = False,
        share_cores: bool = True,
    ) -> HFBackend:
        """Wrap a model and tokenizer already in memory (tests, benchmarks)."""
        self = cls.__new__(cls)
        self.model_name = getattr(model.config, "_name_or_path", "loaded")
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.progress, self.share_cores = batch_size, progress, share_cores
        self.row_tokens = []
        return self

    def eos_ids(self) -> list[int]:
        ids = self.model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return sorted(set(ids))

    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.eos_ids()[0]

    def chat(
        self,
        conversations: Sequence[Conversation],
        params: GenerationParams,
        stop_rules: StopRules | None = None,
    ) -> list[list[str]]:
        """``params.n`` completions per conversation: text after the pre-fill, cut at the stop."""
        prompts = render_and_encode(self.tokenizer, conversations, params.prefill)
        rows = [p for p in prompts for _ in range(params.n)]  # row r = conversation r // n
        rules = list(stop_rules or [None] * len(conversations))
        new_ids = decode_rows(
            self.model,
            rows,
            pick=picker(params),
            max_new_tokens=params.max_new_tokens,
            batch_size=self.batch_size,
            pad_id=self.pad_id(),
            eos_ids=self.eos_ids(),
            is_done=lambda row, ids: is_finished(
                self._decode(ids), params.stop, rules[row // params.n]
            ),
            progress=self.progress,
            cores=self._core_share(),
        )
        self.row_tokens = [len(ids) for ids in new_ids]
        log.info(
            "generated %d tokens for %d samples; %d reached max_new_tokens",
            self.tokens_generated, len(rows), self.rows_at_max(params.max_new_tokens),
        )
        texts = [
            cut_completion(self._decode(ids), params.stop, rules[r // params.n])
            for r, ids in enumerate(new_ids)
        ]
        return [texts[i * params.n : (i + 1) * params.n] for i in range(len(conversations))]

    @property
    def tokens_generated(self) -> int:
        return sum(self.row_tokens)

    def rows_at_max(self, max_new_tokens: int) -> int:
        """Rows of the last chat call that stopped only at ``max_new_tokens``."""
        return sum(n >= max_new_tokens for n in self.row_tokens)

    def _core_share(self) -> CoreShare | None:
        on_cpu = self.model.device.type == "cpu"
        return CoreShare(torch.get_num_threads()) if self.share_cores and on_cpu else None

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(
            ids, skip_special_tokens=False, clean_up_tokenization_spaces=False
        )


def picker(params: GenerationParams) -> Picker:
    """Greedy at temperature 0, else seeded sampling."""
    if params.temperature == 0:
        return greedy_picker()
    return sampling_picker(params.temperature, params.top_p, params.seed)


def greedy_picker() -> Picker:
    """The arg-max token (the first one on ties, like ``generate``)."""
    return lambda logits, rows: logits.argmax(dim=-1)


def sampling_picker(temperature: float, top_p: float, seed: int) -> Picker:
    """Temperature + nucleus sampling with one generator per row, seeded by (seed, row)."""
    generators: dict[int, torch.Generator] = {}

    def generator(row: int) -> torch.Generator:
        if row not in generators:
            generators[row] = torch.Generator().manual_seed(seed * 1_000_003 + row)
        return generators[row]

    def pick(logits: torch.Tensor, rows: list[int]) -> torch.Tensor:
        probs = _nucleus(torch.softmax(logits.cpu() / temperature, dim=-1), top_p)
        chosen = [
            torch.multinomial(probs[i], 1, generator=generator(r)) for i, r in enumerate(rows)
        ]
        return torch.cat(chosen).to(logits.device)

    return pick


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero the tail outside the smallest set of tokens whose mass reaches ``top_p``."""
    if top_p >= 1.0:
        return probs
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)
