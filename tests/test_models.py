"""Model registry: the embedded default, the tiny random model, hub ids and precision."""

from __future__ import annotations

import pytest
import torch

from faulttune.models import (
    EMBEDDED_DEFAULT,
    TINY_RANDOM,
    auto_dtype,
    check_model_name,
    load_model,
    load_tokenizer,
    resolve_model,
)


def test_tiny_random_is_deterministic_and_small():
    model = load_model(TINY_RANDOM, precision="fp32", device="cpu")
    n_params = sum(p.numel() for p in model.parameters())
    assert 3_000_000 < n_params < 3_500_000
    again = load_model(TINY_RANDOM, precision="fp32", device="cpu")
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_tiny_random_shares_the_default_tokenizer():
    assert load_tokenizer(TINY_RANDOM).get_vocab() == load_tokenizer(EMBEDDED_DEFAULT).get_vocab()


def test_hub_ids_and_paths_pass_through(tmp_path):
    assert resolve_model("Qwen/Qwen2.5-Coder-7B-Instruct") == "Qwen/Qwen2.5-Coder-7B-Instruct"
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    check_model_name("Qwen/Qwen2.5-Coder-7B-Instruct")
    check_model_name(str(tmp_path))
    with pytest.raises(ValueError, match="unknown model 'qwen-7b'"):
        check_model_name("qwen-7b")


def test_precision():
    assert auto_dtype("fp32") == torch.float32
    assert auto_dtype("bf16") == torch.bfloat16
    assert auto_dtype("auto", "cpu") in (torch.float32, torch.bfloat16)
    with pytest.raises(ValueError, match="precision"):
        auto_dtype("fp8")


@pytest.mark.slow
def test_embedded_default_is_a_plain_trainable_model(tmp_path, embedded_default):
    """The dequantised GGUF no longer counts as quantized: it saves and reloads identically."""
    model, tokenizer = embedded_default("fp32")  # load_model(EMBEDDED_DEFAULT, "fp32", "cpu")
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert getattr(model.config, "quantization_config", None) is None
    ids = tokenizer("def add(a, b):", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    model.save_pretrained(tmp_path)
    reloaded = load_model(str(tmp_path), precision="fp32", device="cpu")
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, logits)


def test_attention_falls_back_to_sdpa_without_flash_attn(monkeypatch):
    import importlib.util

    from faulttune.models import attention_implementation

    assert attention_implementation("cpu", torch.bfloat16) == "sdpa"
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: object() if n == "flash_attn" else real(n, *a))
    assert attention_implementation("cuda", torch.bfloat16) == "flash_attention_2"
    assert attention_implementation("cuda", torch.float32) == "sdpa"  # flash-attn needs half precision
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "flash_attn" else real(n, *a))
    assert attention_implementation("cuda", torch.bfloat16) == "sdpa"
    assert load_model(TINY_RANDOM, precision="fp32", device="cpu").config._attn_implementation == "sdpa"
