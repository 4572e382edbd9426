"""Masks parquet rows (faulttune.mask_table) and the viewer (faulttune.mask_view), on SmolLM2's
tokenizer. The expected response masks are written out per token of the response."""

from __future__ import annotations

import argparse

import pyarrow as pa
import pytest

from faulttune import methods
from faulttune.generate.prompts import BUGFIX_TEMPLATES
from faulttune.io import DataError
from faulttune.mask_table import (
    MASKS_SCHEMA,
    build_mask_rows,
    end_of_turn_id,
    examples_kind,
    read_masks,
    template_index,
    write_masks,
)
from faulttune.mask_view import mask_html, show_mask_command
from faulttune.methods.kinds import EVERY_TASK

MODEL = "smollm2-135m-instruct"
PAIR = {
    "id": "p0", "task_id": "T/0", "instruction": "Compare a and b.",
    "correct": "def f(a, b):\n    return a < b\n",
    "incorrect": "def f(a, b):\n    return a <= b\n",
}
# The response tokens of PAIR's correct side (rejected: "Ġ<=" at index 13), then the template's
# end-of-turn token and its trailing newline.
RESPONSE = ["```", "python", "Ċ", "def", "Ġf", "(", "a", ",", "Ġb", "):", "ĊĠĠĠ", "Ġreturn", "Ġa",
            "Ġ<", "Ġb", "Ċ", "```", "<|im_end|>", "Ċ"]
ALL = [1] * 18 + [0]          # every response token incl. <|im_end|>, not the newline after it
LINE2 = [0] * 11 + [1] * 5 + [0] * 3   # "Ġreturn Ġa Ġ<= Ġb Ċ" (the indentation sits in "ĊĠĠĠ")


@pytest.fixture(scope="module")
def smol():
    from faulttune.models import load_tokenizer

    return load_tokenizer(MODEL)


@pytest.fixture(scope="module")
def bos(smol):
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(smol.backend_tokenizer.to_str())
    backend.post_processor = TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 0)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|im_end|>"
    )
    tok.chat_template = smol.chat_template
    assert tok("x").input_ids[0] == tok.bos_token_id == 0
    return tok


# Llama-3-style turns: each message ends with <|eot_id|>, while the tokenizer's eos is another token
LLAMA3_TEMPLATE = (
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def smol_copy():
    from transformers import AutoTokenizer

    from faulttune.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(MODEL))


@pytest.fixture(scope="module")
def chatml_eos_s():
    """SmolLM2's ChatML template (turns end with <|im_end|>) but eos = a new special token </s>."""
    tok = smol_copy()
    tok.add_special_tokens({"eos_token": "</s>"})
    return tok


@pytest.fixture(scope="module")
def llama3_style():
    tok = smol_copy()
    tok.add_special_tokens({"eos_token": "<|end_of_text|>", "additional_special_tokens": [
        "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]})
    tok.chat_template = LLAMA3_TEMPLATE
    return tok


def build(records, tokenizer, kind, **kw):
    """build_mask_rows with what the kind needs besides its records: the training table (one
    task per pair) for an every-task kind, the traced lines (the line diff's) for a traced one."""
    from faulttune.tracing.divergence import changed

    examples = methods.examples(kind)
    if examples.reads == EVERY_TASK:
        kw.setdefault("tasks", [{"task_id": r["task_id"], "instruction": r["instruction"],
                                 "solution": r.get("correct", r.get("chosen"))} for r in records])
    if examples.traced:
        kw.setdefault("traced", {r["id"]: changed(r.get("correct", r.get("chosen")),
                                                  r.get("incorrect", r.get("rejected")))
                                 for r in records})
    return build_mask_rows(records, tokenizer, kind, **kw)


def one_row(tokenizer, kind, pair=PAIR, **kw):
    rows, rejected = build([pair], tokenizer, kind, **kw)
    assert rejected == []
    assert len(rows) == 1
    return rows[0]


def response(row, side):
    start = row[f"{side}_start"]
    return row[f"{side}_ids"][start:], row[f"{side}_mask"][start:]


def check_common(row):
    for side in ("chosen", "rejected"):
        if row[f"{side}_ids"] is None:
            continue
        start = row[f"{side}_start"]
        assert len(row[f"{side}_mask"]) == len(row[f"{side}_ids"])
        assert not any(row[f"{side}_mask"][:start]), "masks are 0 on the prompt"


@pytest.mark.parametrize(
    "kind, chosen_mask, rejected_mask",
    [
        ("sft", ALL, None),
        ("dpo", ALL, ALL),
        ("target_dpo", ALL, LINE2),
        ("fgit-hybrid", [0] * 11 + [1, 1, 2, 2, 1] + [0] * 3, [0] * 11 + [1, 1, 2, 1, 1] + [0] * 3),
        ("fgit-line", LINE2, LINE2),
        ("fgit-token", [0] * 13 + [1, 1] + [0] * 4, [0] * 13 + [1] + [0] * 5),
        ("focused_dpo", [0] * 13 + [1] + [0] * 5, [0] * 13 + [1] + [0] * 5),
        # the traced lines here are the line diff's (the changed line 2 on both twins)
        ("fgit-trace", LINE2, LINE2),
        ("target_dpo-trace", ALL, LINE2),
    ],
)
def test_masks_per_kind(smol, kind, chosen_mask, rejected_mask):
    row = one_row(smol, kind)
    check_common(row)
    row_kind = methods.examples(kind).rows[0].kind
    assert (row["id"], row["task_id"], row["kind"]) == ("p0", "T/0", row_kind)
    ids, mask = response(row, "chosen")
    assert smol.convert_ids_to_tokens(ids) == RESPONSE
    assert mask == chosen_mask
    if rejected_mask is None:
        assert row["rejected_ids"] is row["rejected_mask"] is row["rejected_start"] is None
    else:
        ids_r, mask_r = response(row, "rejected")
        assert smol.convert_ids_to_tokens(ids_r)[13] == "Ġ<="
        assert row["chosen_ids"][: row["chosen_start"]] == row["rejected_ids"][: row["rejected_start"]]
        assert mask_r == rejected_mask


def test_cct_rows_carry_first_diff_and_a_bugfix_sample(smol):
    rows, rejected = build_mask_rows([PAIR], smol, "cct", seed=3)
    assert rejected == []
    cct, seq = rows
    assert (cct["kind"], seq["kind"]) == ("cct", "cct_seq")
    check_common(cct)
    check_common(seq)
    assert cct["first_diff"] == cct["chosen_start"] + 13   # "Ġ<" vs "Ġ<="
    assert response(cct, "chosen")[1] == ALL and response(cct, "rejected")[1] == ALL
    # the bug-fix sample: the buggy code in the prompt, the correct code as the response
    assert seq["rejected_ids"] is None and seq["first_diff"] is None
    prompt = smol.decode(seq["chosen_ids"][: seq["chosen_start"]])
    template = BUGFIX_TEMPLATES[template_index(3, "p0")]
    assert template.split("{buggy}")[0] in prompt and "return a <= b" in prompt
    ids, mask = response(seq, "chosen")
    assert smol.convert_ids_to_tokens(ids) == RESPONSE and mask == ALL


def test_fgit_rows_cover_every_task_of_the_training_table(smol):
    tasks = [{"task_id": "T/0", "instruction": PAIR["instruction"], "solution": PAIR["correct"]},
             {"task_id": "T/1", "instruction": "Echo.", "solution": "def g(a):\n    return a\n"},
             {"task_id": "T/2", "instruction": "Echo.", "solution": "def h(a):\n    return a\n"}]
    pairs = [
        {**PAIR, "id": "p-less", "task_id": "T/0", "incorrect": "def f(a, b):\n    return b\n",
         "similarity": 0.5},
        {**PAIR, "task_id": "T/0", "similarity": 0.9},             # the most similar of T/0
        {**PAIR, "id": "p-empty", "task_id": "T/2", "instruction": "Echo.",
         "correct": tasks[2]["solution"], "incorrect": "\n", "similarity": 1.0},
    ]
    rows, rejected = build_mask_rows(pairs, smol, "fgit-hybrid", tasks=tasks)
    assert [(r["task_id"], r["id"]) for r in rows] == [("T/0", "p0"), ("T/1", "T/1"), ("T/2", "T/2")]
    assert rows[0] == one_row(smol, "fgit-hybrid")                 # the pair's own fgit row
    for plain, task in zip(rows[1:], tasks[1:]):                   # no usable variant: plain SFT
        sft = one_row(smol, "sft", {**task, "id": task["task_id"]})
        assert plain["kind"] == "fgit" and plain["chosen_ids"] == sft["chosen_ids"]
        assert plain["chosen_start"] == sft["chosen_start"] and not any(plain["chosen_mask"])
        assert plain["rejected_ids"] is plain["rejected_mask"] is plain["rejected_start"] is None
    assert [(r["id"], r["reason"]) for r in rejected] == [
        ("p-less", "another pair of the task is more similar"), ("p-empty", "empty code")]
    with pytest.raises(DataError, match="pairs row 0: field task_id 'T/9' is not a task"):
        build_mask_rows([{**PAIR, "task_id": "T/9"}], smol, "fgit-hybrid", tasks=tasks)


def test_end_of_turn_comes_from_the_chat_template(smol, chatml_eos_s, llama3_style):
    assert end_of_turn_id(smol) == smol.eos_token_id == smol.convert_tokens_to_ids("<|im_end|>")
    assert end_of_turn_id(chatml_eos_s) == smol.eos_token_id != chatml_eos_s.eos_token_id
    eot = llama3_style.convert_tokens_to_ids("<|eot_id|>")
    assert end_of_turn_id(llama3_style) == eot != llama3_style.eos_token_id
    no_template = smol_copy()
    no_template.chat_template = None
    assert end_of_turn_id(no_template) == no_template.eos_token_id


@pytest.mark.parametrize("name, turn_end", [("chatml_eos_s", "<|im_end|>"), ("llama3_style", "<|eot_id|>")])
def test_responses_end_with_the_end_of_turn_token_when_eos_differs(request, name, turn_end):
    from faulttune.training.data import parse_row

    tok = request.getfixturevalue(name)
    for kind in ("sft", "dpo", "cct"):
        row = build_mask_rows([PAIR], tok, kind)[0][0]
        row_kind = methods.examples(kind).row_kinds()[row["kind"]]
        for side in ("chosen", "rejected") if kind != "sft" else ("chosen",):
            ids, mask = response(row, side)
            tokens = tok.convert_ids_to_tokens(ids)
            end = tokens.index(turn_end) + 1
            assert mask == [1] * end + [0] * (len(ids) - end), (kind, side)  # trained through it
        # the trainer's response span (FGit's labels, Focused-DPO's suffix) is the same tokens
        parsed = parse_row(row, row_kind, "row", end_of_turn_id(tok), 4096)
        assert parsed.chosen.response().tolist() == [float(m) for m in row["chosen_mask"]]


def test_template_index_is_seeded_per_pair():
    assert template_index(0, "p0") == template_index(0, "p0")
    picks = {template_index(seed, "p0") for seed in range(40)}
    assert picks == set(range(len(BUGFIX_TEMPLATES)))


def test_bos_tokenizer_rows_equal_smollm2_rows(smol, bos):
    for kind in methods.EXAMPLES:
        assert build([PAIR], bos, kind) == build([PAIR], smol, kind), kind


def test_chosen_rejected_aliases_and_crlf(smol):
    pair = {"id": "c1", "task_id": "T/1", "instruction": "Compare.",
            "chosen": "def f(a, b):\r\n    return a < b\r\n",
            "rejected": "def f(a, b):\r\n    return a <= b\r\n"}
    row = one_row(smol, "target_dpo", pair)
    ids, mask = response(row, "rejected")
    tokens = smol.convert_ids_to_tokens(ids)
    assert [t for t, m in zip(tokens, mask) if m] == ["Ġreturn", "Ġa", "Ġ<=", "Ġb", "č", "Ċ"]


def test_rejections_carry_reasons(smol):
    pairs = [
        {**PAIR, "id": "empty", "incorrect": "\n\n"},
        {**PAIR, "id": "same", "incorrect": PAIR["correct"] + "\n"},  # same after normalising
        {**PAIR, "id": "ok"},
    ]
    rows, rejected = build_mask_rows(pairs, smol, "dpo")
    assert [r["id"] for r in rows] == ["ok"]
    assert [(r["id"], r["kind"], r["reason"]) for r in rejected] == [
        ("empty", "dpo", "empty code"), ("same", "dpo", "identical")
    ]
    assert rejected[0]["detail"] == "incorrect code is '\\n\\n'"
    # fgit keeps an identical pair: all-zero masks make it plain SFT (docs/methods.md §2.8)
    rows, rejected = build(pairs[1:2], smol, "fgit-hybrid")
    assert rejected == [] and rows[0]["rejected_ids"] and not any(rows[0]["chosen_mask"])


def test_too_long_is_rejected_not_truncated(smol):
    n = len(one_row(smol, "dpo")["chosen_ids"])
    rows, rejected = build_mask_rows([PAIR], smol, "dpo", max_length=n - 1)
    assert rows == []
    assert rejected[0]["reason"] == "too long"
    assert rejected[0]["detail"] == f"chosen has {n} tokens > max_length {n - 1}"
    rows, rejected = build_mask_rows([PAIR], smol, "dpo", max_length=n)
    assert len(rows) == 1 and rejected == []


def test_bad_input_names_row_and_field(smol):
    with pytest.raises(DataError, match="pairs.parquet row 1: missing 'instruction'"):
        build_mask_rows([PAIR, {"id": "x", "task_id": "t", "correct": "a", "incorrect": "b"}],
                        smol, "sft", source="pairs.parquet")
    with pytest.raises(ValueError, match="unknown examples kind 'cct_seq'; known: sft, cct"):
        build_mask_rows([PAIR], smol, "cct_seq")
    with pytest.raises(ValueError, match="cover every task: pass the training table"):
        build_mask_rows([PAIR], smol, "fgit-line")
    with pytest.raises(DataError, match="traces.parquet: no trace of pair 'p0'"):
        build_mask_rows([PAIR], smol, "target_dpo-trace", traced={}, traces_source="traces.parquet")


def test_write_and_read_masks_with_model_metadata(smol, tmp_path):
    rows = [row for kind in methods.EXAMPLES for row in build([PAIR], smol, kind)[0]]
    path = tmp_path / "masks" / "all_x.parquet"
    write_masks(rows, path, MODEL, examples="fgit-trace")
    table, model = read_masks(path)
    assert model == MODEL and examples_kind(table) == "fgit-trace"
    assert table.schema.remove_metadata() == MASKS_SCHEMA
    assert table.schema.field("chosen_mask").type == pa.list_(pa.int8())
    assert table.to_pylist() == rows
    empty = tmp_path / "empty.parquet"
    write_masks([], empty, MODEL)
    assert read_masks(empty)[0].num_rows == 0


def test_mask_html_marks_tokens_by_value(smol):
    html = mask_html(one_row(smol, "fgit-hybrid"), smol)
    assert '<span class="ft-m2"> &lt;</span>' in html
    assert '<span class="ft-m2"> &lt;=</span>' in html
    assert '<span class="ft-m1"> return</span>' in html
    assert "Compare a and b" not in html  # the prompt is left out
    assert "chosen</b> (5 of 19 response tokens masked)" in html


def test_show_mask_command(smol, tmp_path, capsys):
    path = tmp_path / "fgit_x.parquet"
    write_masks([one_row(smol, "fgit-hybrid")], path, MODEL)
    assert show_mask_command(argparse.Namespace(masks=str(path), row=0)) == 0
    out = capsys.readouterr().out
    assert "kind=fgit" in out and "return a <= b" in out and "rejected: 5 masked" in out
    assert show_mask_command(argparse.Namespace(masks=str(path), row=1)) == 2
    assert "row 1 out of range (the file has 1 rows)" in capsys.readouterr().err


def test_the_viewer_says_which_mask_kinds_marked_a_file(smol, tmp_path, capsys):
    from faulttune.report.masks import masks_section

    path = tmp_path / "target_dpo-trace_x.parquet"
    write_masks([one_row(smol, "target_dpo-trace")], path, MODEL, examples="target_dpo-trace")
    assert show_mask_command(argparse.Namespace(masks=str(path), row=0)) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "examples target_dpo-trace: target_dpo: chosen response" in out
    assert "rejected trace (fault localisation by execution trace" in out
    html = masks_section(str(path), lambda _: smol)
    assert "rejected trace (fault localisation by execution trace" in html
    assert 'class="ft-m1"' in html  # the traced line's tokens are shaded
    old = tmp_path / "old.parquet"
    write_masks([one_row(smol, "dpo")], old, MODEL)
    assert "examples kind not recorded" in masks_section(str(old), lambda _: smol)
