"""How similar a candidate twin is to the correct code, for picking the closest teacher variant.

Two measures (``SIMILARITIES``), both in [0, 1] for texts, higher = more similar:

- ``levenshtein`` (default): normalised edit similarity ``1 - d(a, b) / max(|a|, |b|)`` over
  characters (``rapidfuzz.distance.Levenshtein.normalized_similarity``); two empty texts score 1.
- ``unixcoder``: cosine of UniXcoder embeddings (``microsoft/unixcoder-base`` through
  ``transformers.AutoModel``), each the mean of the last hidden states over the real (unpadded)
  tokens, as in FGit (docs/methods.md §2.1). transformers and the weights load on first use; a model and
  tokenizer can be injected (tests use a tiny random model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rapidfuzz.distance import Levenshtein

SIMILARITIES = ("levenshtein", "unixcoder")
UNIXCODER = "microsoft/unixcoder-base"

Scorer = Callable[[str, Sequence[str]], list[float]]


def levenshtein_similarity(a: str, b: str) -> float:
    """``1 - levenshtein(a, b) / max(len(a), len(b))``; e.g. "abcd" vs "abed" -> 0.75."""
    return float(Levenshtein.normalized_similarity(a, b))


def mean_pool(hidden: Any, attention_mask: Any) -> Any:
    """Mean of ``hidden`` (B, T, H) over the positions where ``attention_mask`` (B, T) is 1."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # (B, H)


class UnixcoderEmbedder:
    """Mean-pooled, L2-normalised code embeddings; cosine similarity is then a dot product."""

    def __init__(self, model: Any = None, tokenizer: Any = None, name: str = UNIXCODER,
                 max_length: int = 512, batch_size: int = 16) -> None:
        self.name = name
        self.max_length = max_length
        self.batch_size = batch_size
        self._model = model
        self._tokenizer = tokenizer

    def _load(self) -> tuple[Any, Any]:
        if self._model is None or self._tokenizer is None:
            from transformers import AutoModel, AutoTokenizer

            self._tokenizer = self._tokenizer or AutoTokenizer.from_pretrained(self.name)
            self._model = self._model or AutoModel.from_pretrained(self.name)
        self._model.eval()
        return self._model, self._tokenizer

    def embed(self, texts: Sequence[str]) -> Any:
        """(len(texts), H) tensor of unit vectors."""
        import torch

        model, tokenizer = self._load()
        chunks = []
        for i in range(0, len(texts), self.batch_size):
            batch = tokenizer(list(texts[i:i + self.batch_size]), padding=True, truncation=True,
                              max_length=self.max_length, return_tensors="pt")
            with torch.no_grad():
                hidden = model(input_ids=batch["input_ids"],
                               attention_mask=batch["attention_mask"]).last_hidden_state
            chunks.append(mean_pool(hidden, batch["attention_mask"]))
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)

    def __call__(self, reference: str, candidates: Sequence[str]) -> list[float]:
        vectors = self.embed([reference, *candidates])
        return (vectors[1:] @ vectors[0]).tolist()


def levenshtein_scorer(reference: str, candidates: Sequence[str]) -> list[float]:
    return [levenshtein_similarity(reference, c) for c in candidates]


def make_scorer(name: str = "levenshtein", **options: Any) -> Scorer:
    """A function ``(reference, candidates) -> similarities``; options go to the embedder."""
    if name == "levenshtein":
        return levenshtein_scorer
    if name == "unixcoder":
        return UnixcoderEmbedder(**options)
    raise ValueError(f"unknown similarity {name!r}; choose one of {', '.join(SIMILARITIES)}")


def most_similar(reference: str, candidates: Sequence[str],
                 scorer: Scorer = levenshtein_scorer) -> tuple[int, list[float]]:
    """Index of the candidate closest to ``reference`` (first one on ties) and all scores."""
    if not candidates:
        raise ValueError("most_similar needs at least one candidate")
    scores = scorer(reference, candidates)
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    return best, scores
