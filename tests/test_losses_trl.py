"""Our DPO loss against TRL's DPOTrainer on the same tiny model and batch (no downloads)."""

from __future__ import annotations

import pytest
import torch

from faulttune.losses import dpo_loss, preference_logps

transformers = pytest.importorskip("transformers")
trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")
tokenizers = pytest.importorskip("tokenizers")

WORDS = ["<pad>", "<eos>", "<unk>"] + [f"w{i}" for i in range(60)]


def word_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer over WORDS: "w3 w4" -> [6, 7]."""
    backend = tokenizers.Tokenizer(
        tokenizers.models.WordLevel(vocab={w: i for i, w in enumerate(WORDS)}, unk_token="<unk>")
    )
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def tiny_llama(seed: int) -> transformers.LlamaForCausalLM:
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
    )
    return transformers.LlamaForCausalLM(config)


def preference_rows() -> dict[str, list[str]]:
    return {
        "prompt": ["w1 w2 w3", "w4 w5", "w6 w7 w8 w9", "w10"],
        "chosen": [" w11 w12", " w13 w14 w15", " w16", " w17 w18 w19 w20"],
        "rejected": [" w21", " w22 w23", " w24 w25 w26 w27", " w28 w29"],
    }


@pytest.fixture(scope="module")
def trainer_and_batch(tmp_path_factory):
    args = trl.DPOConfig(
        output_dir=str(tmp_path_factory.mktemp("dpo")),
        bf16=False,
        report_to="none",
        per_device_train_batch_size=4,
        gradient_checkpointing=False,
        beta=0.1,
        max_length=None,
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
    )
    # a reference different from the policy, so the log-ratios (and the loss) are not trivial
    trainer = trl.DPOTrainer(
        model=tiny_llama(0),
        ref_model=tiny_llama(1),
        args=args,
        train_dataset=datasets.Dataset.from_dict(preference_rows()),
        processing_class=word_tokenizer(),
    )
    examples = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
    return trainer, trainer.data_collator(examples)


def our_dpo(policy, reference, batch, beta):
    ids, attention = batch["input_ids"], batch["attention_mask"]
    chosen_mask, rejected_mask = batch["completion_mask"].chunk(2, dim=0)
    logits = policy(input_ids=ids, attention_mask=attention).logits
    with torch.no_grad():
        ref_logits = reference(input_ids=ids, attention_mask=attention).logits
    policy_c, policy_r = preference_logps(logits, ids, chosen_mask, rejected_mask)
    ref_c, ref_r = preference_logps(ref_logits, ids, chosen_mask, rejected_mask)
    return dpo_loss(policy_c, policy_r, ref_c, ref_r, beta=beta)


def test_batch_is_chosen_then_rejected_with_eos(trainer_and_batch):
    _, batch = trainer_and_batch
    # row 0: prompt w1 w2 w3 (ids 4 5 6), chosen w11 w12 (14 15) + <eos> (1); row 4: its rejected
    assert batch["input_ids"][0, :6].tolist() == [4, 5, 6, 14, 15, 1]
    assert batch["input_ids"][4, :5].tolist() == [4, 5, 6, 24, 1]
    assert batch["completion_mask"][0, :6].tolist() == [0, 0, 0, 1, 1, 1]


def test_our_dpo_loss_and_gradients_equal_trl(trainer_and_batch):
    trainer, batch = trainer_and_batch
    policy, reference = trainer.model, trainer.ref_model
    policy.zero_grad(set_to_none=True)
    trl_loss = trainer.compute_loss(policy, batch)
    trl_loss.backward()
    trl_grads = [p.grad.clone() for p in policy.parameters()]

    policy.zero_grad(set_to_none=True)
    ours, metrics = our_dpo(policy, reference, batch, beta=trainer.beta)
    ours.backward()
    assert abs(ours.item() - 0.6931) > 1e-3  # not the trivial log 2 of policy == reference
    assert ours.item() == pytest.approx(trl_loss.item(), abs=1e-5)
    for ours_g, trl_g in zip((p.grad for p in policy.parameters()), trl_grads, strict=True):
        torch.testing.assert_close(ours_g, trl_g, atol=1e-5, rtol=1e-4)
    logged = trainer._metrics["train"]
    assert metrics["rewards/margins"].item() == pytest.approx(
        logged["rewards/margins"][-1], abs=1e-5
    )
    assert metrics["rewards/accuracies"].item() == pytest.approx(logged["rewards/accuracies"][-1])
