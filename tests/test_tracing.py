"""Fault localisation by execution trace (faulttune.tracing, docs/methods.md §7): which lines of a
(correct, wrong) pair the trace mask marks, on hand-written twins.

The twins here are the tests' own code, so :func:`local_trace` runs the sandbox's tracer program
in this process to get their real line traces; :func:`test_pairs_are_traced_in_the_sandbox` runs
the same twins where model-written code runs, in the jail.
"""

from __future__ import annotations

from faulttune.tracing import read_traced_lines, trace_pairs, write_traces
from faulttune.tracing.divergence import (
    CRASHED_BEFORE,
    DIVERGED,
    NO_DIFFERING_INPUT,
    NO_DIVERGENCE,
    NO_MARKED_LINE,
    Trace,
    first_divergence,
    line_alignment,
    traced_lines,
)
from faulttune.tracing.run import HARNESS, MAX_EVENTS, TRACE_FUNCTION, literal_calls

CORRECT = (
    "def f(xs, y):\n"            # 1
    "    total = sum(xs)\n"      # 2
    "    if total > 0:\n"        # 3
    "        total += y\n"       # 4
    "    else:\n"                # 5
    "        total = -y\n"       # 6
    "    return total\n"         # 7
)
TASK = {"task_id": "T/0", "entry_point": "f",
        "test": "def check(candidate):\n    assert candidate([1, 2], 3) == 6\n"
                "    assert candidate([], 4) == -4\n"}


def local_trace(code: str, args: tuple) -> Trace:
    """The tracer program of faulttune.tracing.run on trusted code, in this process."""
    namespace: dict = {}
    exec(HARNESS, namespace)  # noqa: S102 - the tests' own twins
    outcome, value, lines = namespace[TRACE_FUNCTION](code, "f", list(args), MAX_EVENTS)
    return Trace(tuple(lines), outcome, value)


def traced(correct: str, wrong: str, args: tuple = ([1, 2], 3)):
    c, w = local_trace(correct, args), local_trace(wrong, args)
    assert not c.same_output(w), "the twins must differ on this input"
    return traced_lines(correct, wrong, c, w)


def test_a_substitution_marks_only_the_changed_line_that_runs():
    # both changed lines are D- lines; on ([1, 2], 3) the else branch (line 6) never runs
    wrong = CORRECT.replace("total += y", "total -= y").replace("total = -y", "total = y")
    result = traced(CORRECT, wrong)
    assert result.status == DIVERGED
    assert (result.correct, result.incorrect) == ((4,), (4,))
    # the divergence is the first run of line 4: module load (1), then lines 2, 3
    assert local_trace(wrong, ([1, 2], 3)).lines[result.divergence] == 4


def test_an_extra_statement_is_marked_on_the_wrong_twin_alone():
    wrong = CORRECT.replace("    return total\n", "    total = total * 2\n    return total\n")
    result = traced(CORRECT, wrong)
    assert result.status == DIVERGED
    assert (result.correct, result.incorrect) == ((), (7,))  # only the inserted line


def test_an_early_crash_marks_the_line_it_crashes_on():
    wrong = CORRECT.replace("total = sum(xs)", "total = sum(xs) + xs[9]")
    crash = local_trace(wrong, ([1, 2], 3))
    assert crash.outcome == "raised" and crash.value == "IndexError" and crash.lines[-1] == 2
    result = traced(CORRECT, wrong)
    assert result.status == DIVERGED and (result.correct, result.incorrect) == ((2,), (2,))


def test_a_crash_before_any_divergence_falls_back_to_the_line_diff():
    # written-out traces: the wrong twin raises on line 2, which the correct twin also ran
    wrong = CORRECT.replace("total = -y", "total = y")
    correct_trace = Trace((1, 2, 3, 4, 7), "returned", "6")
    wrong_trace = Trace((1, 2), "raised", "MemoryError")
    result = traced_lines(CORRECT, wrong, correct_trace, wrong_trace)
    assert result.status == CRASHED_BEFORE and result.divergence == 2
    assert (result.correct, result.incorrect) == ((6,), (6,))  # the line diff's lines


def test_traces_that_never_diverge_fall_back_to_the_line_diff():
    wrong = CORRECT.replace("total += y", "total -= y")
    same = Trace((1, 2, 3, 7), "returned", "3")
    result = traced_lines(CORRECT, wrong, same, Trace((1, 2, 3, 7), "returned", "0"))
    assert result.status == NO_DIVERGENCE and result.divergence is None
    assert (result.correct, result.incorrect) == ((4,), (4,))
    assert traced_lines(CORRECT, wrong, None, None).status == NO_DIFFERING_INPUT


def test_a_missing_statement_has_no_marked_line_on_the_wrong_twin():
    deleted = CORRECT.replace("    else:\n        total = -y\n", "")
    result = traced(CORRECT, deleted, ([], 4))  # the correct twin runs line 6, the wrong none
    assert result.status == NO_MARKED_LINE
    assert result.incorrect == () and result.correct == (5, 6)  # the line diff's lines


def test_alignment_and_first_divergence():
    wrong = CORRECT.replace("    return total\n", "    total = 0\n    return total\n")
    alignment = line_alignment(CORRECT, wrong)
    assert alignment == {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 8: 7}  # line 7 is new
    assert first_divergence((1, 2, 3, 4, 7), (1, 2, 3, 4, 7, 8), alignment) == 4
    assert first_divergence((1, 2), (1, 2), alignment) is None
    assert first_divergence((1, 2, 3), (1, 2), alignment) == 2


def test_literal_calls_of_the_tests():
    test = ("def check(candidate):\n    assert candidate([1, 2], 3) == 6\n"
            "    assert candidate(x, 3) == 1\n"          # not a literal: skipped
            "    assert candidate([1, 2], 3) == 6\n"     # a repeat: once
            "    assert abs(candidate(-1.5, {'a': (1,)}) - 2) < 1e-6\n")
    assert literal_calls(test, "f", 10) == [([1, 2], 3), (-1.5, {"a": (1,)})]
    assert literal_calls("assert f(2) == 4\nassert g(3) == 1\n", "f", 10) == [(2,)]
    assert literal_calls("def check(candidate):\n  assert candidate(1)\n  assert candidate(2)\n", "f", 1) == [(1,)]
    assert literal_calls("this is not python", "f", 5) == []


def test_pairs_are_traced_in_the_sandbox(tmp_path):
    pairs = [
        {"id": "sub", "task_id": "T/0", "correct": CORRECT,
         "incorrect": CORRECT.replace("total += y", "total -= y").replace("total = -y", "total = y")},
        {"id": "crash", "task_id": "T/0", "correct": CORRECT,
         "incorrect": CORRECT.replace("total = sum(xs)", "total = sum(xs) + xs[9]")},
        {"id": "dead", "task_id": "T/0", "correct": CORRECT,
         "incorrect": CORRECT + "\n\ndef unused():\n    return 1\n"},
        {"id": "loops", "task_id": "T/0", "correct": CORRECT,
         "incorrect": CORRECT.replace("total += y", "total += y\n        while True:\n            pass")},
    ]
    rows = trace_pairs(pairs, [TASK], workers=2, timeout_s=20.0)
    by_id = {r["id"]: r for r in rows}
    assert by_id["sub"]["status"] == DIVERGED and by_id["sub"]["incorrect_lines"] == [4]
    assert by_id["sub"]["input"] == "([1, 2], 3)" and by_id["sub"]["inputs_run"] == 2
    assert by_id["crash"]["status"] == DIVERGED and by_id["crash"]["incorrect_lines"] == [2]
    assert by_id["dead"]["status"] == NO_DIFFERING_INPUT  # the same outputs on every test input
    assert by_id["dead"]["incorrect_lines"] == [8, 9, 10, 11]  # the line diff
    # an endless loop is cut after MAX_EVENTS line events: it raised, the correct twin returned
    assert by_id["loops"]["status"] == DIVERGED and by_id["loops"]["incorrect_lines"] == [5, 6]
    path = tmp_path / "traces.parquet"
    assert write_traces(rows, str(path))[DIVERGED] == 3
    assert read_traced_lines(str(path))["sub"] == ([4], [4])


def test_trace_masks_mark_the_traced_lines_tokens():
    from faulttune.mask_table import build_mask_rows
    from faulttune.models import load_tokenizer

    smol = load_tokenizer("smollm2-135m-instruct")
    wrong = CORRECT.replace("total += y", "total -= y").replace("total = -y", "total = y")
    pair = {"id": "p", "task_id": "T/0", "instruction": "Sum.", "correct": CORRECT, "incorrect": wrong}

    def marked(kind: str, lines: tuple) -> list[str]:
        """The marked code's words (a line's indentation sits in the previous line's token)."""
        (row,), _ = build_mask_rows([pair], smol, kind, traced={"p": lines})
        ids, mask = row["rejected_ids"], row["rejected_mask"]
        return smol.decode([i for i, m in zip(ids, mask) if m]).split()

    assert marked("target_dpo-trace", ([4], [4])) == ["total", "-=", "y"]
    assert marked("target_dpo-trace", ([4, 6], [4, 6])) == ["total", "-=", "y", "total", "=", "y"]
    # D- marks both changed lines whatever runs
    (d_minus,), _ = build_mask_rows([pair], smol, "target_dpo")
    assert sum(d_minus["rejected_mask"]) > sum(build_mask_rows([pair], smol, "target_dpo-trace",
                                                               traced={"p": ([4], [4])})[0][0]["rejected_mask"])
