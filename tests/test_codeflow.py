"""CodeFlow: the debugging loop (scripted backend, real sandbox), pair selection and filters."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from faulttune import codeflow
from faulttune.codeflow import (
    build_pairs,
    count_rejected_diff_lines,
    filter_reason,
    format_feedback,
    only_comments_or_whitespace_differ,
    pass_rate_by_iteration,
    pick_rejected,
    rejected_error_lines,
    run_codeflow,
    same_ast,
    same_ast_after_renaming,
)
from faulttune.generate.base import Conversation, ScriptedBackend
from faulttune.io import DataError

pytestmark = pytest.mark.minutes(1)


def words(text: str) -> int:
    return len(text.split())


# --------------------------------------------------------------------------------------------
# Feedback


def test_feedback_keeps_detail_and_the_end_of_a_long_traceback() -> None:
    stderr = "Traceback (most recent call last):\n" + "  frame\n" * 400 + "AssertionError: boom"
    text = format_feedback("fail", "AssertionError: assert f(1) == 2", stderr, limit=200)
    assert len(text) <= 200
    assert text.startswith("fail: AssertionError: assert f(1) == 2")
    assert text.endswith("AssertionError: boom")  # the informative end survives the cut
    assert "Traceback (most recent" not in text  # the start was cut


def test_feedback_is_empty_on_a_pass_and_short_output_is_kept_whole() -> None:
    assert format_feedback("pass", "", "") == ""
    assert format_feedback("error", "NameError: name 'x' is not defined", "line 3") == (
        "error: NameError: name 'x' is not defined\nline 3"
    )


# --------------------------------------------------------------------------------------------
# Filters on hand-made programs

CHOSEN = "def add(a, b):\n    return a + b\n"


def test_comment_and_whitespace_only_differences_are_detected() -> None:
    commented = "def add(a,b):\n    # sum the two numbers\n\n    return a+b  # done\n"
    assert only_comments_or_whitespace_differ(CHOSEN, commented)
    assert only_comments_or_whitespace_differ(CHOSEN, CHOSEN.replace("    ", "  "))  # indent width
    assert not only_comments_or_whitespace_differ(CHOSEN, CHOSEN.replace("+", "-"))


def test_moving_a_line_out_of_a_block_is_not_whitespace_only() -> None:
    inside = (
        "def f(xs):\n    t = 0\n    for x in xs:\n        t += x\n        t *= 2\n    return t\n"
    )
    outside = "def f(xs):\n    t = 0\n    for x in xs:\n        t += x\n    t *= 2\n    return t\n"
    assert not only_comments_or_whitespace_differ(inside, outside)
    assert filter_reason(inside, outside, max_length=100, count_tokens=words) is None


def test_same_ast_catches_redundant_parentheses_but_not_real_changes() -> None:
    assert same_ast("x = (a + b)\n", "x = a + b\n")
    assert not same_ast("x = a + b\n", "x = a - b\n")
    assert not same_ast("x = a + b\n", "x = (a + b\n")  # unparsable side


def test_changed_lines_count_the_rejected_side_only() -> None:
    chosen = "a = 1\nb = 2\nc = 3\n"
    rejected = "a = 1\nb = 5\nc = 3\nd = 4\n"
    assert count_rejected_diff_lines(chosen, rejected) == 2  # "b = 5" and "d = 4"


@pytest.mark.parametrize(
    ("rejected", "reason"),
    [
        ("def add(a, b):\n    return a + b  # TODO\n", "only comments or whitespace differ"),
        ("def add(a, b):\n    return (a + b)\n", "same AST as the chosen"),
        (
            "def add(a, b):\n" + "".join(f"    v{i} = {i}\n" for i in range(21)) + "    return a\n",
            "more than 20 changed lines (22)",
        ),
        ("def add(x, y):\n    return x + y\n", "rename only (same AST after renaming local names)"),
        ("def add(a, b):\n    return a - b\n", None),
    ],
)
def test_filter_reason_for_each_rule(rejected: str, reason: str | None) -> None:
    assert filter_reason(CHOSEN, rejected, max_length=100, count_tokens=words) == reason


def test_a_fix_that_only_adds_lines_has_an_empty_d_minus_and_is_dropped() -> None:
    fixed = "import math\n\n\ndef root(x):\n    return math.sqrt(x)\n"
    broken = "def root(x):\n    return math.sqrt(x)\n"  # NameError: the fix only adds the import
    assert rejected_error_lines(fixed, broken) == []
    assert filter_reason(fixed, broken, max_length=100, count_tokens=words) == (
        "D- is empty (the rejected program has no line of its own)"
    )


def test_a_d_minus_of_only_comments_is_dropped_even_when_the_chosen_adds_code() -> None:
    fixed = "def add(a, b):\n    a = int(a)\n    return a + b\n"
    broken = "def add(a, b):\n    # a may be a string\n    return a + b\n"
    assert rejected_error_lines(fixed, broken) == [(1, "    # a may be a string\n")]
    assert filter_reason(fixed, broken, max_length=100, count_tokens=words) == (
        "D- holds only comments or whitespace"
    )
    # a comment next to a changed code line keeps the pair; so does a line of a multi-line string
    assert filter_reason(fixed, broken + "print(1)\n", max_length=100, count_tokens=words) is None
    doc_fixed = 'def f():\n    return """a\nb"""\n'
    doc_broken = 'def f():\n    return """a\nc"""\n'
    assert rejected_error_lines(doc_fixed, doc_broken) == [(2, 'c"""\n')]
    assert filter_reason(doc_fixed, doc_broken, max_length=100, count_tokens=words) is None


def test_d_minus_is_the_line_mask_the_masks_stage_trains_on() -> None:
    from faulttune.mask_table import build_mask_rows
    from faulttune.models import TINY_RANDOM, load_tokenizer

    tokenizer = load_tokenizer(TINY_RANDOM)
    fixed = "import math\n\ndef f(x):\n    y = abs(x)\n    return math.sqrt(y)\n"
    broken = "def f(x):\n    # keep the sign\n    y = x\n    return math.sqrt(y)\n"
    pairs = [{"id": "p", "task_id": "t", "instruction": "Root.", "chosen": fixed, "rejected": r}
             for r in (broken, "def f(x):\n    y = abs(x)\n    return math.sqrt(y)\n")]
    rows, rejected = build_mask_rows(pairs, tokenizer, "target_dpo")
    assert rejected == []
    marked = [tokenizer.decode([t for t, m in zip(row["rejected_ids"], row["rejected_mask"]) if m])
              for row in rows]
    assert marked[0].split() == "".join(line for _, line in rejected_error_lines(fixed, broken)).split()
    assert marked[1] == "" and rejected_error_lines(fixed, pairs[1]["rejected"]) == []


TRY = "def f({x}):\n    try:\n        return 1 / {x}\n    except ValueError as {e}:\n        return {e}\n"


@pytest.mark.parametrize(
    ("a", "b", "renamed"),
    [
        ("def f(xs):\n    t = 0\n    for x in xs:\n        t += x\n    return t\n",
         "def f(vs):\n    s = 0\n    for v in vs:\n        s += v\n    return s\n", True),
        ("def f(x):\n    g = lambda y: y + x\n    return g(1)\n",
         "def f(z):\n    h = lambda w: w + z\n    return h(1)\n", True),
        ("def f(a, b):\n    return a - b\n", "def f(b, a):\n    return b - a\n", True),
        (TRY.format(x="x", e="e"), TRY.format(x="n", e="err"), True),
        # a real change: the loop adds the list, not the item
        ("def f(xs):\n    t = 0\n    for x in xs:\n        t += x\n    return t\n",
         "def f(vs):\n    s = 0\n    for v in vs:\n        s += vs\n    return s\n", False),
        ("def f(a, b):\n    return a - b\n", "def f(a, b):\n    return b - a\n", False),
        # a global (the builtin len) is not a local name: using a parameter instead is a change
        ("def f(n):\n    return len(n)\n", "def f(len):\n    return len(len)\n", False),
        # module-level names are what the tests call
        ("def f(n):\n    return n\n", "def g(n):\n    return n\n", False),
        ("X = 1\ndef f():\n    return X\n", "Y = 1\ndef f():\n    return Y\n", False),
        ("def f(x):\n    return x.a\n", "def f(x):\n    return x.b\n", False),
        ("def f(x):\n    return x\n", "def f(x):\n    return (x\n", False),
    ],
)
def test_same_ast_after_renaming(a: str, b: str, renamed: bool) -> None:
    assert same_ast_after_renaming(a, b) is renamed
    assert same_ast_after_renaming(b, a) is renamed


def test_length_filter_uses_the_given_token_counter() -> None:
    rejected = "def add(a, b):\n    return a - b\n"
    assert filter_reason(CHOSEN, rejected, max_length=7, count_tokens=words) is None  # 7 words each
    assert filter_reason(CHOSEN, rejected, max_length=6, count_tokens=words) == (
        "longer than 6 tokens (chosen 7, rejected 7)"
    )
    reason = filter_reason(CHOSEN, rejected + "#\n", max_length=7, count_tokens=len)  # characters
    assert reason == "longer than 7 tokens (chosen 32, rejected 34)"


# --------------------------------------------------------------------------------------------
# Pair selection


def version(task_id: str, iteration: int, code: str, passed: bool, origin: str = "model") -> dict:
    return {
        "task_id": task_id, "iteration": iteration, "code": code,
        "status": "pass" if passed else "fail", "detail": "", "feedback": "",
        "passed": passed, "origin": origin,
    }  # fmt: skip


FAILING = [version("t", i, f"def add(a, b):\n    return a - {i}\n", False) for i in range(3)]


def test_pick_rejected_first_and_last() -> None:
    assert pick_rejected(FAILING, "first", 0, "t")["iteration"] == 0
    assert pick_rejected(FAILING, "last", 0, "t")["iteration"] == 2


def test_pick_rejected_random_is_stable_per_task_and_uses_every_version() -> None:
    picks = {
        tid: pick_rejected(FAILING, "random", 7, tid)["iteration"] for tid in map(str, range(40))
    }
    assert picks == {tid: pick_rejected(FAILING, "random", 7, tid)["iteration"] for tid in picks}
    assert set(picks.values()) == {0, 1, 2}
    other_seed = {tid: pick_rejected(FAILING, "random", 8, tid)["iteration"] for tid in picks}
    assert other_seed != picks


def test_build_pairs_fields_and_unpairable_reasons() -> None:
    rows = [
        version("ok", 0, "def add(a, b):\n    return a - b\n", False),
        version("ok", 1, "def add(a, b):\n    return a * b\n", False),
        version("ok", 2, CHOSEN, True),
        version("first", 0, CHOSEN, True),
        version("never", 0, "x = 1\n", False),
        version("never", 1, "x = 2\n", False),
        version("mut", 0, CHOSEN, True, origin="mutant"),
    ]
    instructions = {"ok": "Add two numbers.", "first": "", "never": "", "mut": ""}
    pairs, dropped = build_pairs(rows, instructions, rejected="first", count_tokens=words)
    assert [p["id"] for p in pairs] == ["codeflow/ok/0-2"]
    pair = pairs[0]
    assert pair["chosen"] == pair["correct"] == CHOSEN
    assert pair["rejected"] == pair["incorrect"] == "def add(a, b):\n    return a - b\n"
    assert (pair["rejected_iteration"], pair["chosen_iteration"], pair["n_iterations"]) == (0, 2, 3)
    assert pair["similarity"] == pytest.approx(1 - 1 / 32)  # one substitution in 32 characters
    assert (pair["source"], pair["family"], pair["verified"]) == ("codeflow", "codeflow", "true")
    assert pair["instruction"] == "Add two numbers."
    assert set(pair) == set(codeflow.PAIR_COLUMNS)
    reasons = {d["task_id"]: d["reason"] for d in dropped}
    assert reasons == {
        "first": "passed at first attempt",
        "never": "never passed",
        "mut": "mutant passed the tests",
    }
    assert all(set(d) == set(codeflow.REJECTED_COLUMNS) for d in dropped)


def test_build_pairs_last_rule_and_filtered_pair_goes_to_rejected_with_its_code() -> None:
    rows = [
        version("t", 0, "def add(a, b):\n    return a - b\n", False),
        version("t", 1, "def add(a, b):\n    return a + b  # still wrong?\n", False),
        version("t", 2, CHOSEN, True),
    ]
    pairs, dropped = build_pairs(rows, {"t": "i"}, rejected="last", count_tokens=words)
    assert pairs == []
    assert dropped[0]["reason"] == "only comments or whitespace differ"
    assert dropped[0]["rejected_iteration"] == 1 and dropped[0]["chosen"] == CHOSEN
    pairs, _ = build_pairs(rows, {"t": "i"}, rejected="first", count_tokens=words)
    assert pairs[0]["rejected_iteration"] == 0


def test_build_pairs_drops_an_empty_d_minus_and_a_rename_with_their_reasons() -> None:
    rows = [
        version("imp", 0, "def add(a, b):\n    return a + b\n", False),
        version("imp", 1, "import operator\n\ndef add(a, b):\n    return a + b\n", True),
        version("ren", 0, "def add(x, y):\n    return x + y\n", False),
        version("ren", 1, CHOSEN, True),
    ]
    pairs, dropped = build_pairs(rows, {"imp": "i", "ren": "i"}, count_tokens=words)
    assert pairs == []
    assert {d["task_id"]: d["reason"] for d in dropped} == {
        "imp": "D- is empty (the rejected program has no line of its own)",
        "ren": "rename only (same AST after renaming local names)",
    }
    assert all(d["rejected"] and d["chosen"] for d in dropped)


def test_pass_rate_by_iteration_is_cumulative() -> None:
    rows = [
        version("a", 0, "", True),
        version("b", 0, "", False), version("b", 1, "", False), version("b", 2, "", True),
        version("c", 0, "", False), version("c", 1, "", False), version("c", 2, "", False),
        version("d", 0, "", False), version("d", 1, "", True),
    ]  # fmt: skip
    assert pass_rate_by_iteration(rows) == [(0, 0.25), (1, 0.5), (2, 0.75)]
    assert pass_rate_by_iteration([]) == []


# --------------------------------------------------------------------------------------------
# The loop, with a scripted model and the real sandbox

TASKS = [
    {
        "task_id": "add",
        "instruction": "Write add(a, b) returning the sum.",
        "test": "def check(candidate):\n    assert candidate(2, 3) == 5\ncheck(add)\n",
        "entry_point": "add",
        "solution": CHOSEN,
    },
    {
        "task_id": "neg",
        "instruction": "Write neg(x) returning -x.",
        "test": "def check(candidate):\n    assert candidate(4) == -4\ncheck(neg)\n",
        "entry_point": "neg",
        "solution": "def neg(x):\n    return -x\n",
    },
    {
        "task_id": "sq",
        "instruction": "Write sq(x) returning x squared.",
        "test": "def check(candidate):\n    assert candidate(3) == 9\ncheck(sq)\n",
        "entry_point": "sq",
        "solution": "def sq(x):\n    return x * x\n",
    },
]

# Each task's successive model answers; the script finds its place from the prompt.
SCRIPTS = {
    "add": ["def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a * b\n", CHOSEN],
    "neg": ["def neg(x):\n    return -x\n"],  # passes at once
    "sq": [f"def sq(x):\n    return x + {i}\n" for i in range(10)],  # never passes
}


def scripted_model(conversation: Conversation, _sample: int) -> str:
    text = conversation[-1]["content"]
    task = next(t for t in TASKS if t["instruction"] in text)
    script = SCRIPTS[task["task_id"]]
    done = [i for i, code in enumerate(script) if code.strip("\n") in text]
    return script[max(done) + 1] if done else script[0]


def test_loop_stops_at_a_pass_respects_the_budget_and_batches_rounds(monkeypatch) -> None:
    from faulttune import sandbox

    sandbox_calls: list[int] = []
    real_run_many = sandbox.run_many

    def counting_run_many(jobs, **kwargs):
        sandbox_calls.append(len(jobs))
        return real_run_many(jobs, **kwargs)

    monkeypatch.setattr(sandbox, "run_many", counting_run_many)
    backend = ScriptedBackend(scripted_model)
    traj, pairs, dropped = run_codeflow(
        TASKS, backend, max_iters=3, rejected="first", count_tokens=words, workers=2
    )
    by_task = {tid: [r for r in traj if r["task_id"] == tid] for tid in SCRIPTS}
    assert [r["passed"] for r in by_task["add"]] == [False, False, True]  # stopped at the pass
    assert [r["passed"] for r in by_task["neg"]] == [True]
    assert [r["iteration"] for r in by_task["sq"]] == [0, 1, 2, 3]  # 1 attempt + 3 fixes
    assert all(r["origin"] == "model" for r in traj)
    # rounds: 3 tasks, then add+sq, add+sq, sq; one chat call and one sandbox call each
    assert sandbox_calls == [3, 2, 2, 1]
    assert backend.calls == 4 and len(backend.seen) == 8
    assert [p["id"] for p in pairs] == ["codeflow/add/0-2"]
    assert {d["task_id"]: d["reason"] for d in dropped} == {
        "neg": "passed at first attempt",
        "sq": "never passed",
    }


def test_feedback_holds_the_failing_assertion_and_goes_into_the_fix_prompt() -> None:
    backend = ScriptedBackend(scripted_model)
    traj, _, _ = run_codeflow(TASKS[:1], backend, max_iters=2, count_tokens=words, workers=1)
    first = traj[0]
    assert first["status"] == "fail"
    assert "candidate(2, 3) == 5" in first["feedback"]
    assert first["detail"] in first["feedback"]
    fix_prompt = backend.seen[1][-1]["content"]
    assert first["feedback"] in fix_prompt and SCRIPTS["add"][0].strip() in fix_prompt


def test_mutant_start_runs_the_twin_first_and_handles_passing_and_missing_twins() -> None:
    mutants = [
        {"task_id": "add", "incorrect": "def add(a, b):\n    return a * b\n"},
        {"task_id": "add", "incorrect": "def add(a, b):\n    return 0\n"},  # only the first is used
        {"task_id": "neg", "incorrect": "def neg(x):\n    return -x\n"},  # not a failing twin
    ]
    backend = ScriptedBackend(scripted_model)
    traj, pairs, dropped = run_codeflow(
        TASKS, backend, max_iters=3, start="mutant", mutants=mutants, rejected="first",
        count_tokens=words, workers=2,
    )  # fmt: skip
    add = [r for r in traj if r["task_id"] == "add"]
    assert [(r["origin"], r["passed"]) for r in add] == [("mutant", False), ("model", True)]
    assert add[0]["code"] == mutants[0]["incorrect"]
    assert not any("Complete the following" in c[-1]["content"] for c in backend.seen)  # no solve
    assert [p["id"] for p in pairs] == ["codeflow/add/0-1"]
    assert {d["task_id"]: d["reason"] for d in dropped} == {
        "neg": "mutant passed the tests",
        "sq": "no mutant for this task",
    }


def test_a_fix_followed_by_cut_off_extra_code_is_sanitised_and_passes() -> None:
    """The 135M model's typical fix: the right function, then a main() cut by the token limit."""
    fixed = CHOSEN + '\ndef main():\n    print(f"sum: {add(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1'
    mutants = [{"task_id": "add", "incorrect": "def add(a, b):\n    return a * b\n"}]
    traj, pairs, _ = run_codeflow(
        TASKS[:1], ScriptedBackend([fixed]), max_iters=2, start="mutant", mutants=mutants,
        count_tokens=words, workers=1,
    )  # fmt: skip
    assert [(r["origin"], r["status"]) for r in traj] == [("mutant", "fail"), ("model", "pass")]
    assert traj[1]["code"] == CHOSEN and traj[1]["raw"] == fixed
    assert traj[0]["raw"] == traj[0]["code"] == mutants[0]["incorrect"]
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [(CHOSEN, mutants[0]["incorrect"])]


def test_resumed_run_matches_an_uninterrupted_one_without_repeating_calls(tmp_path: Path) -> None:
    whole = tmp_path / "whole.jsonl"
    expected = run_codeflow(
        TASKS, ScriptedBackend(scripted_model), max_iters=3, checkpoint=whole, count_tokens=words
    )
    part = tmp_path / "part.jsonl"
    first = ScriptedBackend(scripted_model)
    run_codeflow(TASKS, first, max_iters=1, checkpoint=part, count_tokens=words)
    second = ScriptedBackend(scripted_model)
    resumed = run_codeflow(TASKS, second, max_iters=3, checkpoint=part, count_tokens=words)
    assert resumed == expected
    assert len(first.seen) + len(second.seen) == 8  # every prompt sent exactly once overall
    assert all("Running its tests" in c[-1]["content"] for c in second.seen)  # no new solves
    stored = [json.loads(line) for line in part.read_text().splitlines()]
    assert sorted(stored, key=lambda r: (r["task_id"], r["iteration"])) == sorted(
        expected[0], key=lambda r: (r["task_id"], r["iteration"])
    )


def test_resume_after_a_crash_in_round_two(tmp_path: Path) -> None:
    calls = {"n": 0}

    def crashing_model(conversation: Conversation, sample: int) -> str:
        if "return a * b" in conversation[-1]["content"]:  # round 2 prompt of "add"
            raise RuntimeError("killed")
        calls["n"] += 1
        return scripted_model(conversation, sample)

    ckpt = tmp_path / "ckpt.jsonl"
    with pytest.raises(RuntimeError, match="killed"):
        run_codeflow(TASKS, ScriptedBackend(crashing_model), max_iters=3, checkpoint=ckpt,
                     count_tokens=words)  # fmt: skip
    assert calls["n"] == 5  # round 0 (3 tasks) and round 1 (add, sq)
    backend = ScriptedBackend(scripted_model)
    traj, pairs, _ = run_codeflow(TASKS, backend, max_iters=3, checkpoint=ckpt, count_tokens=words)
    reference, ref_pairs, _ = run_codeflow(TASKS, ScriptedBackend(scripted_model), max_iters=3,
                                           count_tokens=words)  # fmt: skip
    assert traj == reference and pairs == ref_pairs
    assert len(backend.seen) == 3  # rounds 2 and 3 only: add+sq, then sq


def test_checkpoint_errors_name_the_file_and_line_and_a_torn_line_is_dropped(
    tmp_path: Path,
) -> None:
    ckpt = tmp_path / "ckpt.jsonl"
    row = version("other", 0, "x = 1\n", False)
    ckpt.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"ckpt.jsonl line 1: task_id 'other' is not among"):
        run_codeflow(TASKS, ScriptedBackend([]), max_iters=1, checkpoint=ckpt, count_tokens=words)
    ckpt.write_text(
        json.dumps(version("neg", 0, "def neg(x):\n    return -x\n", True)) + '\n{"task'
    )
    backend = ScriptedBackend(scripted_model)
    traj, _, _ = run_codeflow(TASKS[1:2], backend, max_iters=1, checkpoint=ckpt, count_tokens=words)
    assert backend.seen == [] and len(traj) == 1
    assert ckpt.read_text().count("\n") == 1  # the torn line is gone


def test_bad_options_and_rows_are_refused() -> None:
    backend = ScriptedBackend([])
    with pytest.raises(ValueError, match="rejected must be"):
        run_codeflow(TASKS, backend, rejected="middle", count_tokens=words)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs the mutants"):
        run_codeflow(TASKS, backend, start="mutant", count_tokens=words)
    with pytest.raises(DataError, match="codeflow tasks row 0: missing or empty 'test'"):
        run_codeflow([{"task_id": "x", "instruction": "i"}], backend, count_tokens=words)


# --------------------------------------------------------------------------------------------
# End to end with the embedded default


@pytest.mark.slow
def test_end_to_end_with_the_embedded_default_model(tmp_path: Path, embedded_default) -> None:
    from faulttune.generate import GenerationParams
    from faulttune.generate.hf import HFBackend

    model, tokenizer = embedded_default("auto")  # as make_backend("hf", "smollm2-135m-instruct")
    backend = HFBackend.from_loaded(model, tokenizer)
    ckpt = tmp_path / "trajectories.jsonl"
    traj, pairs, dropped = run_codeflow(
        TASKS, backend, max_iters=1, checkpoint=ckpt, workers=1,
        count_tokens=lambda text: len(tokenizer(text, add_special_tokens=False).input_ids),
        params=GenerationParams(max_new_tokens=96),
    )  # fmt: skip
    assert {r["task_id"] for r in traj} == {"add", "neg", "sq"}
    for tid in ("add", "neg", "sq"):
        versions = [r for r in traj if r["task_id"] == tid]
        assert [r["iteration"] for r in versions] == list(range(len(versions)))
        assert 1 <= len(versions) <= 2
        assert all(r["passed"] == (r["status"] == "pass") for r in versions)
        assert all(r["feedback"] for r in versions if not r["passed"])
    assert len(pairs) + len(dropped) == 3  # every task ends as a pair or a reasoned drop
    assert len(ckpt.read_text().splitlines()) == len(traj)
    rates = pass_rate_by_iteration(traj)
    assert rates[0][0] == 0 and all(a <= b for (_, a), (_, b) in itertools.pairwise(rates))
