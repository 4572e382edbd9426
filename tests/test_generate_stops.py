"""Where completions end (faulttune.generate.stops) and the decode loop's speed-ups keep outputs."""

from __future__ import annotations

import torch
from conftest import generate_batch1

from faulttune.generate import GenerationParams, ScriptedBackend
from faulttune.generate.cores import CoreShare, other_runnable_threads
from faulttune.generate.decode import GrowingLayer, _append, _new_cache, decode_rows
from faulttune.generate.extract import python_block, python_block_end, solution_program
from faulttune.generate.hf import HFBackend, greedy_picker, render_and_encode
from faulttune.generate.prompts import solve_messages
from faulttune.generate.run import generate_samples
from faulttune.generate.stops import AnswerComplete, FirstPythonBlock, cut_completion
from faulttune.io import read_jsonl

HUMANEVAL_PROMPT = 'def add(x: int, y: int) -> int:\n    """Add two numbers."""\n'
FUNCTION = "def add(x, y):\n    return x + y\n"
CALLS_HELPER = "def add(x, y):\n    return plus(x, y)\n"
HELPER = "def plus(a, b):\n    return a + b\n"


def _end(text: str, prompt: str = HUMANEVAL_PROMPT, entry_point: str = "add") -> str:
    """The completion that the rule keeps of ``text``."""
    return cut_completion(text, ("```",), AnswerComplete(prompt, entry_point))


def test_a_finished_function_stops_at_the_next_top_level_line():
    assert _end(FUNCTION + "\n\ndef main():\n    print(add(1, 2))\n") == FUNCTION + "\n\n"
    assert _end(FUNCTION + "\nprint(add(1, 2))\n") == FUNCTION + "\n"
    assert _end(FUNCTION + "\n# Example usage:\nassert add(1, 2) == 3\n") == FUNCTION + "\n"
    assert _end(FUNCTION + "\nif __name__ == '__main__':\n    add(1, 2)\n") == FUNCTION + "\n"
    assert _end(FUNCTION) == FUNCTION  # nothing after it: unchanged


def test_a_helper_the_answer_calls_is_kept_and_what_follows_it_is_not():
    text = CALLS_HELPER + "\n" + HELPER + "\nprint(add(1, 2))\n\ndef unused():\n    pass\n"
    kept = _end(text)
    assert kept == CALLS_HELPER + "\n" + HELPER + "\n"
    program = solution_program(HUMANEVAL_PROMPT, "add", kept)
    namespace: dict = {}
    exec(program, namespace)  # noqa: S102 - our own test program
    assert namespace["add"](2, 3) == 5


def test_helpers_reached_through_other_helpers_and_late_globals_are_waited_for():
    text = (
        "def add(x, y):\n    return twice(x) + y - x\n\n"
        "def twice(v):\n    return v * FACTOR\n\n"
        "FACTOR = 2\n\nprint(add(1, 2))\n"
    )
    assert _end(text) == text[: text.index("print(")]


def test_a_redefinition_of_the_answer_is_kept_because_it_is_the_one_that_runs():
    second = "def add(x, y):\n    return y + x\n"
    text = FUNCTION + "\n" + second + "\nprint(add(1, 2))\n"
    assert _end(text) == FUNCTION + "\n" + second + "\n"
    decorated = "@staticmethod\n" + second
    assert _end(FUNCTION + "\n" + decorated + "\nx = 1\n") == FUNCTION + "\n" + decorated + "\n"
    # an assignment to a name the answer only uses locally does not count
    assert _end(FUNCTION + "\nx = [3, 1]\nprint(add(*x))\n") == FUNCTION + "\n"


def test_the_rule_waits_for_the_first_line_of_the_next_statement():
    rule = AnswerComplete(HUMANEVAL_PROMPT, "add")
    assert rule.end(FUNCTION + "\ndef ad") is None  # could still become "def add("
    assert rule.end(FUNCTION + "\ndef main():\n") == len(FUNCTION) + 1


def test_a_body_completion_of_a_humaneval_prompt_stops_after_the_body():
    body = "    total = x + y\n    return total\n"
    assert _end(body + "\n\ndef check():\n    pass\n") == body + "\n\n"


def test_nothing_stops_before_the_model_has_written_its_answer():
    # The prompt alone parses and defines add: its imports must not end the completion.
    text = "from typing import List\n\n" + FUNCTION
    assert _end(text) == text
    assert _end(text + "\nprint(1)\n") == text + "\n"


def test_column_zero_lines_inside_strings_or_brackets_do_not_stop():
    in_docstring = 'def add(x, y):\n    """Sum.\nExample:\n    add(1, 2)\n    """\n    return x + y\n'
    assert _end(in_docstring + "\nprint(1)\n") == in_docstring + "\n"
    in_brackets = "def add(x, y):\n    return sum([x,\n        y]\n)\n"
    assert _end(in_brackets + "print(1)\n") == in_brackets


def test_an_answer_that_never_completes_runs_to_the_fence():
    text = "def add(x, y):\n    return plus(x, y)\n\nprint(add(1, 2))\n```\nmore"
    assert _end(text) == text[: text.index("```")]
    assert AnswerComplete(HUMANEVAL_PROMPT, "").end(FUNCTION + "\nprint(1)\n") is None


def test_first_python_block_ends_a_markdown_answer_after_its_closing_fence():
    reply = "Here:\n```text\nnot code\n```\n```python\nx = 1\n```\nIt is wrong because..."
    end = python_block_end(reply)
    assert reply[:end].endswith("x = 1\n```")
    assert python_block(reply[:end]) == python_block(reply) == "x = 1\n"
    assert python_block_end("```python\nx = 1\n``") is None  # still open
    assert python_block_end("```js\nx\n") is None
    assert FirstPythonBlock().end(reply) == end


def test_scripted_backend_applies_stop_rules():
    backend = ScriptedBackend([FUNCTION + "\nprint(1)\n", "text\n```py\ny = 2\n```\nbye"])
    convs = [solve_messages("a"), solve_messages("b")]
    rules = [AnswerComplete(HUMANEVAL_PROMPT, "add"), FirstPythonBlock()]
    assert backend.chat(convs, GenerationParams(), rules) == [
        [FUNCTION + "\n"],
        ["text\n```py\ny = 2\n```"],
    ]



def _scripted_picker(streams: dict[int, list[int]], asked: dict[int, int]):
    """Emits each row's token stream in order and counts how many tokens each row was asked for."""

    def pick(logits, rows):
        tokens = []
        for row in rows:
            tokens.append(streams[row][asked[row]])
            asked[row] += 1
        return torch.tensor(tokens)

    return pick


def test_real_token_streams_stop_at_the_new_top_level_def_and_keep_the_helper(
    tiny, tmp_path, monkeypatch
):
    model, tokenizer = tiny
    replies = [
        FUNCTION + "\n\ndef main():\n    print(add(1, 2))\n```\n",
        CALLS_HELPER + "\n" + HELPER + "\n\ndef main():\n    print(add(1, 2))\n```\n",
    ]
    streams = {r: tokenizer(t, add_special_tokens=False)["input_ids"] + [2] for r, t in
               enumerate(replies)}
    asked = dict.fromkeys(streams, 0)
    monkeypatch.setattr(
        "faulttune.generate.hf.picker", lambda params: _scripted_picker(streams, asked)
    )
    tasks = [{"task_id": f"T/{i}", "prompt": HUMANEVAL_PROMPT, "entry_point": "add"}
             for i in range(2)]
    backend = HFBackend.from_loaded(model, tokenizer, batch_size=2, share_cores=False)
    out = tmp_path / "samples.jsonl"
    generate_samples(tasks, backend, out, params=GenerationParams(max_new_tokens=80))

    raws = [r["raw"] for r in read_jsonl(out.with_name("samples.raw.jsonl"))]
    assert raws == [FUNCTION + "\n\n", CALLS_HELPER + "\n" + HELPER + "\n\n"]
    for row, raw in enumerate(raws):  # each row stopped once the line "def main():" was written
        header_end = len(tokenizer(raw + "def main():\n", add_special_tokens=False)["input_ids"])
        assert asked[row] <= header_end + 1 < len(streams[row])
    solutions = [r["solution"] for r in read_jsonl(out)]
    assert "def plus" in solutions[1] and "def main" not in solutions[1]



def test_identical_prompts_share_one_prefill_and_decode_as_batch1_generate(tiny, monkeypatch):
    from faulttune.generate import decode

    model, tokenizer = tiny
    convs = [solve_messages(t) for t in ("a", "Sort the list.", "def f(x):\n    return x\n")]
    distinct = render_and_encode(tokenizer, convs, "```python\n")
    prompts = [distinct[0], distinct[1], distinct[1], distinct[1], distinct[2], distinct[0]]
    widths = []
    real_forward = model.forward

    def counting_forward(*args, **kwargs):
        widths.append(kwargs["input_ids"].shape)
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting_forward)
    ours = decode.decode_rows(model, prompts, pick=greedy_picker(), max_new_tokens=9,
                              batch_size=8, pad_id=2, eos_ids=[2])
    monkeypatch.undo()
    prefill_rows = sum(shape[0] for shape in widths if shape[1] > 1)
    assert prefill_rows == 3  # one row per distinct prompt
    assert ours == [generate_batch1(model, p, 9) for p in prompts]


def test_growing_layer_appends_in_place_and_matches_concatenation():
    layer = GrowingLayer()
    steps = [torch.randn(2, 3, n, 4) for n in (5, 1, 1, 1)]
    for step in steps:
        keys, values = layer.update(step, -step)
    assert torch.equal(keys, torch.cat(steps, dim=2))
    assert torch.equal(values, -torch.cat(steps, dim=2))
    first = layer.keys.data_ptr()
    layer.update(torch.randn(2, 3, 1, 4), torch.randn(2, 3, 1, 4))
    assert layer.keys.data_ptr() == first  # written into spare room, not copied
    layer.batch_select_indices(torch.tensor([1]))  # replaced from outside: copied once, then grows
    kept = layer.keys.clone()
    new = torch.randn(1, 3, 1, 4)
    keys, _ = layer.update(new, new)
    assert torch.equal(keys, torch.cat([kept, new], dim=2))


def test_append_reallocates_when_the_room_is_full():
    cached, room = _append(torch.tensor([]), None, torch.ones(1, 1, 2, 1))
    assert room.shape[2] > 2
    for _ in range(room.shape[2] - 2):
        cached, room_after = _append(cached, room, torch.zeros(1, 1, 1, 1))
        assert room_after is room
    cached, room_after = _append(cached, room, torch.full((1, 1, 1, 1), 7.0))
    assert room_after is not room and cached[0, 0, -1, 0] == 7 and cached[0, 0, :2].sum() == 2


def test_new_cache_keeps_sliding_window_layers():
    from transformers import MistralConfig

    config = MistralConfig(vocab_size=50, hidden_size=16, intermediate_size=32,
                           num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                           sliding_window=4)
    model = type("M", (), {"config": config})()
    assert not any(isinstance(layer, GrowingLayer) for layer in _new_cache(model).layers)


def test_core_share_drops_threads_at_once_and_climbs_back_after_two_quiet_checks():
    load = iter([0, 1, 0, 1, 0, 0, None])
    before = torch.get_num_threads()
    share = CoreShare(allowed=2, every=2, runnable=lambda: next(load), cores=lambda: 2)
    try:
        torch.set_num_threads(2)
        seen = []
        for _ in range(14):
            share.tick()
            seen.append(torch.get_num_threads())
        # checks at ticks 2, 4, ...: quiet, busy (-> 1), quiet, busy, quiet, quiet (-> 2), unknown
        assert seen == [2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2]
        torch.set_num_threads(1)
        share.restore()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_other_runnable_threads_reads_this_machine():
    others = other_runnable_threads()
    assert others is None or others >= 0


def test_decode_rows_restores_the_allowed_threads(tiny):
    model, tokenizer = tiny
    before = torch.get_num_threads()
    share = CoreShare(allowed=before, every=1, runnable=lambda: 99, cores=lambda: 2)
    prompts = render_and_encode(tokenizer, [solve_messages("a")], "```python\n")
    decode_rows(model, prompts, pick=greedy_picker(), max_new_tokens=3, batch_size=1, pad_id=2,
                eos_ids=[2], cores=share)
    assert torch.get_num_threads() == before


def test_admission_keeps_the_samples_of_one_prompt_together():
    from collections import deque

    from faulttune.generate.decode import _take_whole_groups

    prompts = [[1], [1], [1], [2, 2], [2, 2], [2, 2], [3, 3, 3]]
    waiting = deque(range(7))
    assert _take_whole_groups(waiting, 4, prompts) == [0, 1, 2]  # row 3 waits with 4 and 5
    assert _take_whole_groups(waiting, 4, prompts) == [3, 4, 5, 6]
    big = deque(range(3))
    assert _take_whole_groups(big, 2, prompts) == [0, 1]  # a group larger than the room is split


def test_the_generation_bench_reads_the_demo_generate_jobs_workload(monkeypatch):
    """bench/generate_throughput.py builds its workload through the workflow's own settings."""
    import importlib.util
    import sys

    import yaml
    from conftest import REPO

    spec = importlib.util.spec_from_file_location("bench_gen", REPO / "bench" / "generate_throughput.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_gen", bench)  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    job = bench.demo_workload(str(REPO / "config" / "config.yaml"))
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert len(job.rows) == len(job.conversations) == config["data"]["benchmark_limit"]
    assert job.params.max_new_tokens == config["generation"]["max_new_tokens"]
    assert job.batch_size == config["generation"]["batch_size"]
    assert {row["task_id"] for row in job.rows} <= {f"HumanEval/{i}" for i in range(164)}
