"""FGit teacher variants: prompts through a backend, code-block extraction, similarity."""

from __future__ import annotations

import json

import pytest

from faulttune.bugs.similarity import (
    UnixcoderEmbedder,
    levenshtein_similarity,
    make_scorer,
    mean_pool,
    most_similar,
)
from faulttune.bugs.teacher import teacher_candidates
from faulttune.generate.base import ScriptedBackend
from faulttune.generate.extract import python_block as extract_code_block

pytestmark = pytest.mark.minutes(2)

CODE = "def f(x):\n    return x + 1\n"


@pytest.mark.parametrize("text", [
    "Here:\n```python\ndef f(x):\n    return x + 1\n```\nDone.",
    "```py\n\ndef f(x):\n    return x + 1\n\n```",
    "```\ndef f(x):\n    return x + 1\n```",
    "```Python3 title\ndef f(x):\n    return x + 1",                       # unclosed fence
    "```text\nnot code\n```\nThen:\n```python\ndef f(x):\n    return x + 1\n```",
    "```python\ndef f(x):\n    return x + 1```\nextra",                     # fence mid-line
])
def test_extracts_the_first_python_block(text: str):
    assert extract_code_block(text) == CODE


@pytest.mark.parametrize("text", ["def f(x): return x", "```bash\nls\n```", "```python\n\n```",
                                  ""])
def test_no_python_block_gives_none(text: str):
    assert extract_code_block(text) is None


def test_teacher_candidates_sends_one_prompt_per_task_and_keeps_raw_text():
    tasks = [{"task_id": "T/0", "instruction": "Add one.", "solution": CODE},
             {"task_id": "T/1", "instruction": "Double.",
              "solution": "def g(y):\n    return 2*y\n"}]
    seen_params = []

    class Recording(ScriptedBackend):
        def chat(self, conversations, params, stop_rules=None):
            seen_params.append(params)
            return super().chat(conversations, params, stop_rules)

    backend = Recording(lambda conv, i: f"variant {i} of {conv[-1]['content'][-30:]!r}")
    rows = teacher_candidates(tasks, backend, n_variants=3, temperature=0.8, seed=5)
    assert [(r["id"], r["task_id"], r["variant"]) for r in rows] == [
        ("teacher:T/0:0", "T/0", 0), ("teacher:T/0:1", "T/0", 1), ("teacher:T/0:2", "T/0", 2),
        ("teacher:T/1:0", "T/1", 0), ("teacher:T/1:1", "T/1", 1), ("teacher:T/1:2", "T/1", 2)]
    assert rows[4]["raw"].startswith("variant 1 of")
    assert backend.calls == 1  # one chunk holds every task
    (params,) = seen_params
    assert (params.n, params.temperature, params.seed, params.prefill, params.stop) == (
        3, 0.8, 5 * 1_000_003 + 0, "", ())  # chunk 0's seed
    user = backend.seen[0][-1]["content"]
    assert "Add one." in user and CODE.strip() in user and "INCORRECT" in user


def test_teacher_candidates_resume_from_their_state_with_the_same_rows(tmp_path):
    from faulttune.bugs.teacher import CHUNK
    from faulttune.resume import Preempted

    tasks = [{"task_id": f"T/{i}", "instruction": f"Task {i}.", "solution": CODE}
             for i in range(CHUNK + 3)]

    def answer(conv, i):
        return f"variant {i} of {conv[-1]['content'][:12]!r}"

    whole = teacher_candidates(tasks, ScriptedBackend(answer), n_variants=2, seed=1)
    state = tmp_path / "candidates.jsonl"
    with pytest.raises(Preempted):
        teacher_candidates(tasks, ScriptedBackend(answer), n_variants=2, seed=1, state=state,
                           should_stop=lambda: True)
    assert len(state.read_text().splitlines()) == 2 * CHUNK  # the first chunk only
    with open(state, "a") as f:
        f.write('{"id": "torn')  # a kill in the middle of the next chunk's write
    again = ScriptedBackend(answer)
    resumed = teacher_candidates(tasks, again, n_variants=2, seed=1, state=state)
    assert resumed == whole
    assert again.calls == 1  # only the second chunk was asked
    assert [json.loads(line)["chunk"] for line in state.read_text().splitlines()] == (
        [0] * 2 * CHUNK + [1] * 6)  # the torn line is gone, not glued to the new rows


def test_teacher_candidates_names_the_bad_row():
    with pytest.raises(ValueError, match="row 0 .*'solution'"):
        teacher_candidates([{"task_id": "T/0", "instruction": "x"}], ScriptedBackend([]))


def test_levenshtein_similarity_on_hand_worked_values():
    assert levenshtein_similarity("abcd", "abed") == 0.75        # 1 substitution / 4
    assert levenshtein_similarity("abc", "abcde") == 0.6         # 2 insertions / 5
    assert levenshtein_similarity("", "") == 1.0


def test_most_similar_picks_the_closest_hand_made_candidate():
    correct = "def f(xs):\n    return sum(xs) / len(xs)\n"
    candidates = ["def f(xs):\n    return 0\n",                       # much shorter
                  "def f(xs):\n    return sum(xs) // len(xs)\n",      # one character added
                  "def g(ys):\n    return sum(ys) * len(ys)\n"]       # three changes
    best, scores = most_similar(correct, candidates, make_scorer("levenshtein"))
    assert best == 1
    assert scores[1] > scores[2] > scores[0]


def test_unknown_similarity_raises():
    with pytest.raises(ValueError, match="levenshtein, unixcoder"):
        make_scorer("bleu")


def test_mean_pool_ignores_padding():
    import torch

    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2), last is pad
    mask = torch.tensor([[1, 1, 0]])
    assert mean_pool(hidden, mask).tolist() == [[2.0, 3.0]]


class CharTokenizer:
    """Byte-level stand-in for UniXcoder's tokenizer: id = byte + 1, pad = 0, right padding."""

    def __call__(self, texts, padding, truncation, max_length, return_tensors):
        import torch

        ids = [[b + 1 for b in t.encode()][:max_length] for t in texts]
        width = max(len(x) for x in ids)
        return {"input_ids": torch.tensor([x + [0] * (width - len(x)) for x in ids]),
                "attention_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x))
                                                for x in ids])}


def tiny_encoder():
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=257, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=256)
    return BertModel(config)


def test_unixcoder_embeddings_are_unit_mean_pooled_and_padding_free():
    import torch

    embedder = UnixcoderEmbedder(model=tiny_encoder(), tokenizer=CharTokenizer(), batch_size=8)
    short, long = "x = 1", "def f(x):\n    return x * 2\n"
    together = embedder.embed([short, long])
    alone = embedder.embed([short])
    assert torch.allclose(together[0], alone[0], atol=1e-5)  # padding changes nothing
    assert torch.allclose(together.norm(dim=-1), torch.ones(2), atol=1e-5)
    # by hand: mean of the last hidden states of the real tokens, then normalised
    batch = CharTokenizer()([long], True, True, 512, "pt")
    with torch.no_grad():
        hidden = embedder._model(**batch).last_hidden_state[0]
    manual = torch.nn.functional.normalize(hidden.mean(dim=0), dim=0)
    assert torch.allclose(together[1], manual, atol=1e-5)
    scores = embedder(long, [long, short])
    assert scores[0] == pytest.approx(1.0, abs=1e-5) and scores[1] < scores[0]
    assert most_similar(long, [short, long], embedder)[0] == 1


def humaneval_task_rows(n: int) -> list[dict[str, str]]:
    from faulttune.bugs.pairs import task_rows
    from faulttune.data.benchmarks import load_benchmark

    return task_rows(load_benchmark("humaneval")[:n])


def test_teacher_path_with_tiny_random_rejects_its_garbage_with_reasons():
    from faulttune.bugs.pairs import REASONS, select_pairs
    from faulttune.generate import make_backend

    tasks = humaneval_task_rows(2)
    backend = make_backend("hf", "tiny-random", progress=False, torch_threads=1)
    candidates = teacher_candidates(tasks, backend, n_variants=2, temperature=0.8,
                                    max_new_tokens=24)
    assert [c["id"] for c in candidates] == [
        "teacher:HumanEval/0:0", "teacher:HumanEval/0:1",
        "teacher:HumanEval/1:0", "teacher:HumanEval/1:1"]
    pairs, rejected = select_pairs(candidates, tasks, workers=1)
    assert len(pairs) + len(rejected) == 4
    raw_by_id = {c["id"]: c["raw"] for c in candidates}
    assert all(r["reason"] in REASONS and r["raw"] == raw_by_id[r["id"]] for r in rejected)


@pytest.mark.slow
def test_teacher_path_with_the_embedded_default_on_three_tasks(embedded_default):
    from faulttune.bugs.pairs import REASONS, counts, select_pairs
    from faulttune.generate.hf import HFBackend

    tasks = humaneval_task_rows(3)
    backend = HFBackend.from_loaded(*embedded_default("auto"))  # the hf backend's default precision
    candidates = teacher_candidates(tasks, backend, n_variants=3, temperature=0.8,
                                    max_new_tokens=384)
    assert len(candidates) == 9
    pairs, rejected = select_pairs(candidates, tasks, workers=1)
    print(counts(pairs, rejected))
    assert len({p["task_id"] for p in pairs}) == len(pairs) <= 3  # at most one pair per task
    assert all(p["verified"] == "true" for p in pairs)
    assert all(r["reason"] in REASONS for r in rejected)
    assert len(pairs) + len(rejected) == 9
