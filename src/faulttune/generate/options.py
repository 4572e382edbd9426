"""The options each generation backend takes, read from a config section (one place for it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

BACKEND_OPTIONS = {
    "hf": ("batch_size", "precision", "device", "torch_threads"),
    "vllm": ("tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "precision"),
    "openai": ("base_url", "api_key_env", "concurrency", "timeout_s", "continue_final_message"),
}


def backend_options(backend: str, section: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``backend`` from a config section (None values skipped)."""
    if backend not in BACKEND_OPTIONS:
        raise ValueError(f"unknown generation backend {backend!r}; choose one of hf, vllm, openai")
    return {k: section[k] for k in BACKEND_OPTIONS[backend] if section.get(k) is not None}
