"""Scoring a probe's programs: per-token log-probs of each response, forward passes only.

Each program is scored as the assistant response to ``solve_messages(instruction)``, rendered
exactly as training and generation render it (:func:`encode_response`). Fp32 on CPU under
``torch.inference_mode()``. Default (:func:`score_pairs`): the prompt, identical for the two
programs of a pair, and the common start of the two responses (the code before the bug) run once;
the KV cache is repeated for the two remaining response suffixes, which run as one batch.
Alternative (:func:`score_sequences`): all sequences sorted by length and LEFT-padded in batches,
so every response ends at the last position; ``position_ids`` come from the attention mask
(identical to the unpadded forward) and only the last ``max response length + 1`` positions get
logits (``logits_to_keep``). Either way only response positions go through the vocabulary
projection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faulttune.sensitivity.regions import common_prefix

Encoded = tuple[list[int], int]  # (ids, index of the first response token)


def encode_response(tokenizer: Any, instruction: str, program: str) -> tuple[list[int], int]:
    """Token ids of ``solve_messages(instruction)`` + ``code_response(program)`` and the index of
    the first response token."""
    from faulttune.generate.prompts import code_response, render_training_example, solve_messages

    return render_training_example(tokenizer, solve_messages(instruction), code_response(program))


def _left_padded(seqs: Sequence[tuple[list[int], int]], pad_id: int) -> tuple[Any, Any, Any, int]:
    """ids, attention mask and target mask [B, T] (left padded) and the response window K+1."""
    import torch

    width = max(len(ids) for ids, _ in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    targets = torch.zeros((len(seqs), width), dtype=torch.float32)
    for row, (seq, start) in enumerate(seqs):
        offset = width - len(seq)
        ids[row, offset:] = torch.tensor(seq, dtype=torch.long)
        attention[row, offset:] = 1
        targets[row, offset + start:] = 1.0
    window = max(len(seq) - start for seq, start in seqs) + 1
    return ids, attention, targets, min(window, width)


def score_batch(model: Any, seqs: Sequence[tuple[list[int], int]], pad_id: int
                ) -> list[list[float]]:
    """The log-prob of every response token (ids[start:]) of each (ids, start) sequence."""
    import torch

    from faulttune.losses import token_logps

    ids, attention, targets, window = _left_padded(seqs, pad_id)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model(input_ids=ids.to(device), attention_mask=attention.to(device),
                    position_ids=positions.to(device), logits_to_keep=window, use_cache=False)
        # padded positions inside the window may carry garbage; they are never targets
        logits = torch.nan_to_num(out.logits.float())
        per_token = token_logps(logits, ids[:, -window:].to(device), targets[:, -window:].to(device))
    # left padding: every response ends at the last position
    return [per_token[row, per_token.shape[1] - (len(seq) - start):].tolist()
            for row, (seq, start) in enumerate(seqs)]


def score_sequences(model: Any, seqs: Sequence[tuple[list[int], int]], pad_id: int,
                    batch_size: int = 8, progress: bool = False) -> list[list[float]]:
    """:func:`score_batch` over all sequences, longest first, results in input order."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]), reverse=True)
    results: list[list[float]] = [[] for _ in seqs]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="sensitivity", unit="batch")
    for batch in batches:
        for index, scored in zip(batch, score_batch(model, [seqs[i] for i in batch], pad_id)):
            results[index] = scored
    return results


def score_shared_prompt(model: Any, prefix: list[int], responses: Sequence[list[int]], pad_id: int,
                        prefix_targets: int = 0) -> list[list[float]]:
    """Per-token log-probs of each ``prefix + response`` where the prefix is run once.

    The last ``prefix_targets`` tokens of ``prefix`` are targets too (a response start that all
    responses share); their log-probs open every result. The prefix's KV cache is repeated
    for the responses, which run as one right-padded batch with positions continuing the prefix's;
    the prefix's last logits predict each first response token.
    """
    import torch

    from faulttune.losses import token_logps

    device = next(model.parameters()).device
    k, width, p = len(responses), max(len(r) for r in responses), len(prefix)
    with torch.inference_mode():
        head = model(input_ids=torch.tensor([prefix], device=device), use_cache=True,
                     logits_to_keep=prefix_targets + 1)
        window = torch.tensor([prefix[p - prefix_targets - 1:]], device=device)
        shared = token_logps(head.logits.float(), window)[0].tolist() if prefix_targets else []
        cache = head.past_key_values
        cache.batch_repeat_interleave(k)
        ids = torch.full((k, width), pad_id, dtype=torch.long, device=device)
        attention = torch.zeros((k, p + width), dtype=torch.long, device=device)
        attention[:, :p] = 1
        for row, response in enumerate(responses):
            ids[row, :len(response)] = torch.tensor(response, dtype=torch.long)
            attention[row, p:p + len(response)] = 1
        positions = (p + torch.arange(width, device=device)).expand(k, width)
        tail = model(input_ids=ids, attention_mask=attention, position_ids=positions,
                     past_key_values=cache, use_cache=False)
        # labels [k, 1 + width]: the last prefix token, then the response; logits aligned to them
        logits = torch.cat([head.logits[:, -1:].float().expand(k, -1, -1), tail.logits.float()], 1)
        labels = torch.cat([torch.full((k, 1), prefix[-1], device=device), ids], dim=1)
        mask = torch.cat([torch.zeros((k, 1), device=device), attention[:, p:]], dim=1)
        per_token = token_logps(logits, labels, mask)
    return [shared + per_token[row, :len(r)].tolist() for row, r in enumerate(responses)]


def score_pairs(model: Any, encoded: Sequence[tuple[Encoded, Encoded]], pad_id: int,
                batch_size: int = 8, progress: bool = False
                ) -> list[tuple[list[float], list[float]]]:
    """Per-token response log-probs of (correct, buggy) encodings. Pairs whose two prompts
    tokenise identically run the prompt and the common start of the two responses once
    (:func:`score_shared_prompt`); any others go through the padded batches of
    :func:`score_sequences`."""
    shared = [i for i, ((a, sa), (b, sb)) in enumerate(encoded) if sa == sb and a[:sa] == b[:sb]]
    others = sorted(set(range(len(encoded))) - set(shared))
    results: dict[int, tuple[list[float], list[float]]] = {}
    loop = shared
    if progress:
        from tqdm import tqdm

        loop = tqdm(shared, desc="sensitivity", unit="pair")
    for i in loop:
        (a, start), (b, _) = encoded[i]
        cut = max(common_prefix(a, b), start)
        correct, buggy = score_shared_prompt(model, a[:cut], [a[cut:], b[cut:]], pad_id,
                                             prefix_targets=cut - start)
        results[i] = (correct, buggy)
    flat = [seq for i in others for seq in encoded[i]]
    scored = score_sequences(model, flat, pad_id, batch_size) if flat else []
    for j, i in enumerate(others):
        results[i] = (scored[2 * j], scored[2 * j + 1])
    return [results[i] for i in range(len(encoded))]
