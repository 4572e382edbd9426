"""Generation backends behind one interface (see :mod:`faulttune.generate.base`).

Layers, each importing only those below it (the backends never import each other):

- :mod:`.prompts` (prompt wording, message types, prompt rendering), :mod:`.extract` (code out of
  replies, the scored program);
- :mod:`.stops` (where a completion ends), then :mod:`.base` (``GenerationParams``, ``Backend``,
  ``ScriptedBackend``);
- the backends :mod:`.hf` (with its decode loop :mod:`.decode` and :mod:`.cores`),
  :mod:`.vllm_backend`, :mod:`.openai_backend`, imported only by :func:`make_backend`;
- :mod:`.run`: benchmark tasks to the scorer's sample files (``faulttune generate``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faulttune.generate.base import Backend, GenerationParams, ScriptedBackend

__all__ = [
    "BACKEND_OPTIONS",
    "Backend",
    "GenerationParams",
    "ScriptedBackend",
    "backend_options",
    "make_backend",
]

# The options each backend's constructor takes from a config section (the rest are others').
BACKEND_OPTIONS = {
    "hf": ("batch_size", "precision", "device", "torch_threads"),
    "vllm": ("tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "precision"),
    "openai": ("base_url", "api_key_env", "concurrency", "timeout_s", "continue_final_message"),
}


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
    raise ValueError(f"unknown generation backend {name!r}; choose one of {', '.join(BACKEND_OPTIONS)}")


def backend_options(
    section: Mapping[str, Any],
    generation: Mapping[str, Any] | None = None,
    student: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The options for ``make_backend(section["backend"], ...)`` from a config section.

    ``section`` is a ``generation`` or ``teacher`` section (``backend`` defaults to hf). The keys
    it lacks fall back to the shared ones: ``batch_size`` to ``generation``, ``precision`` to
    ``student``. Keys the backend does not take (:data:`BACKEND_OPTIONS`) and None values are left
    out.
    """
    backend = section.get("backend", "hf")
    if backend not in BACKEND_OPTIONS:
        raise ValueError(
            f"unknown generation backend {backend!r}; choose one of {', '.join(BACKEND_OPTIONS)}"
        )
    merged = {
        "batch_size": (generation or {}).get("batch_size"),
        "precision": (student or {}).get("precision"),
        **{k: v for k, v in section.items() if v is not None},
    }
    return {k: merged[k] for k in BACKEND_OPTIONS[backend] if merged.get(k) is not None}
