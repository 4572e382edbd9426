"""faulttune.sandbox: verdicts and details, and the hostile corpus (tests/hostile/) against the
process boundary: nothing a program does in its own process makes a wrong answer pass.

Jail-level checks (files, IPC, memory, other users, killing the scorer) are in test_jail.py.
"""

from __future__ import annotations

import logging
import os
import time

import pytest
from jail_checks import hostile, leftovers

from faulttune.sandbox import Limits, TestJob, run_in_pool, run_many, run_program

FAST = Limits(timeout_s=4.0)


@pytest.fixture
def no_leftovers():
    """After the test no jail process, cgroup or folder of this scorer may be left."""
    yield
    assert leftovers(os.getpid()) == {}


# --- verdicts and details -----------------------------------------------------------------------


def test_passing_program_passes():
    result = run_program("def add(a, b):\n    return a + b\n", "assert add(2, 3) == 5\n")
    assert (result.status, result.detail, result.passed) == ("pass", "", True)
    assert result.duration_s > 0


def test_failed_assert_reports_the_assertion_source():
    program = "def has_close(xs, t):\n    return True\n"
    tests = ("def check(candidate):\n    assert candidate([1.0, 2.0], 0.5) == True\n"
             "    assert candidate([1.0, 2.0, 3.0], 0.5) == False\n\ncheck(has_close)\n")
    result = run_program(program, tests)
    assert result.status == "fail"
    assert result.detail == "AssertionError: assert candidate([1.0, 2.0, 3.0], 0.5) == False"


def test_exception_reports_type_message_and_both_lines():
    program = "def ratio(a, b):\n    return a / b\n"
    result = run_program(program, "assert ratio(1, 0) == 0\n")
    assert result.status == "error"
    assert result.detail == ("ZeroDivisionError: division by zero (at <program> line 2: "
                             "`return a / b`; called from <tests> line 1: `assert ratio(1, 0) == 0`)")


def test_tests_can_catch_the_exception_the_program_raises():
    program = "def parse(s):\n    if not s:\n        raise ValueError('empty')\n    return int(s)\n"
    tests = ("try:\n    parse('')\nexcept ValueError as e:\n    assert str(e) == 'empty'\n"
             "else:\n    raise AssertionError('no error')\nassert parse('7') == 7\n")
    assert run_program(program, tests).passed


def test_syntax_error_is_an_error():
    result = run_program("def f(:\n    pass\n", "f()\n")
    assert result.status == "error"
    assert result.detail.startswith("SyntaxError:") and "<program> line 1" in result.detail


def test_builtin_shadowing_in_program_does_not_reach_tests():
    # the program's own `sorted` is used by the program, the tests see the real one
    program = "sorted = lambda xs: xs\n\ndef top(xs):\n    return sorted(xs)[0]\n"
    assert run_program(program, "assert sorted([3, 1]) == [1, 3]\nassert top([3, 1]) == 3\n").passed


def test_exit_is_not_a_pass():
    result = run_program("print('pass')\nraise SystemExit(0)\n", "assert 1 == 1\n")
    assert result.status == "fail" and "exit(0)" in result.detail


def test_a_program_value_the_tests_read_is_named():
    result = run_program("x = 2\n", "assert x == 2\n")
    assert result.status == "error"
    assert result.detail.startswith("the tests use `x`, a value the program defines")


def test_an_argument_that_cannot_cross_is_named():
    result = run_program("def apply(f, x):\n    return f(x)\n", "assert apply(abs, -2) == 2\n")
    assert result.status == "error"
    assert "the tests pass a builtin_function_or_method to `apply`" in result.detail


def test_a_missing_entry_point_is_named():
    job = TestJob("def other():\n    return 1\n", "assert solve() == 1\n", entry_point="solve")
    [result] = run_many([job], progress=False)
    assert (result.status, result.detail) == ("error", "the program defines no function `solve`")


def test_sandbox_failure_is_reported(monkeypatch):
    import sys

    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    from faulttune.sandbox import bwrap, forkserver

    monkeypatch.setattr(bwrap, "python_binary", lambda: "/nonexistent/python")
    forkserver.stop_all()  # a zygote started before would fork the program without a new python
    result = run_program("x = 1\n", "assert x == 1\n")
    assert result.status == "error" and result.detail.startswith("sandbox failure:")


# --- batch API ----------------------------------------------------------------------------------


def test_run_many_keeps_input_order():
    jobs = [("import time\ntime.sleep(0.6)\ndef f():\n    return 1\n", "assert f() == 1\n"),
            ("def f():\n    return 1\n", "assert f() == 2\n"),
            TestJob("def f():\n    return 1\n", "assert f() == 1\n")]
    results = run_many(jobs, limits=FAST, workers=3, progress=False)
    assert [r.status for r in results] == ["pass", "fail", "pass"]


def test_pool_warns_when_nothing_finishes(caplog):
    with caplog.at_level(logging.WARNING, logger="faulttune.sandbox"):
        out = run_in_pool(lambda x: (time.sleep(0.5), x * 2)[1], [1, 2], workers=2,
                          progress=False, stall_s=0.2)
    assert out == [2, 4]
    assert "nothing finished in the last" in caplog.text


def test_pool_kills_every_jail_when_interrupted(no_leftovers):
    def job(i: int) -> object:
        if i == 2:
            time.sleep(1.0)
            raise KeyboardInterrupt
        return run_program(hostile("infinite_loop"), "", limits=Limits(timeout_s=60))

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_in_pool(job, [0, 1, 2], workers=3, progress=False)
    assert time.monotonic() - start < 10


# --- the hostile corpus: earlier programs -----------------------------------------------------


@pytest.mark.parametrize("name, tests, statuses", [
    ("exit_before_tests", "assert solve() == 1\n", {"fail"}),
    ("os_exit", "assert solve() == 1\n", {"fail"}),
    ("infinite_loop", "", {"timeout"}),
    ("catastrophic_regex", "", {"timeout"}),
    ("memory_bomb", "", {"error"}),
    ("deep_recursion", "", {"error"}),
    ("stack_overflow", "", {"error", "timeout"}),
    ("forged_report", "assert solve() == 2\n", {"fail"}),
    ("patched_builtins", ("def check(candidate):\n    assert abs(candidate() - 2) == 0\n"
                          "check(solve)\n"), {"fail"}),
])
def test_hostile_program_does_not_pass(name, tests, statuses, no_leftovers):
    start = time.monotonic()
    result = run_program(hostile(name), tests, limits=FAST)
    assert result.status in statuses, (result.status, result.detail)
    assert time.monotonic() - start < FAST.timeout_s + 3


def test_patched_builtins_detail_names_the_real_check(no_leftovers):
    tests = "def check(candidate):\n    assert abs(candidate() - 2) == 0\ncheck(solve)\n"
    result = run_program(hostile("patched_builtins"), tests, limits=FAST)
    assert result.detail == "AssertionError: assert abs(candidate() - 2) == 0"


def test_fork_bomb_leaves_no_process(no_leftovers):
    result = run_program(hostile("fork_bomb"), "", limits=Limits(timeout_s=3.0))
    assert result.status == "timeout"


def test_stdout_flood_is_capped(no_leftovers):
    limits = Limits(timeout_s=2.0, max_output_kb=16)
    result = run_program(hostile("stdout_flood"), "", limits=limits)
    assert result.status == "timeout"
    assert 0 < len(result.stderr_tail) <= 16 * 1024


# --- class 1: the verdict does not live in the program's process -------------------------------

CHECK_TWO = "def check(candidate):\n    assert candidate() == 2\ncheck(solve)\n"


def test_patching_the_harness_modules_only_breaks_the_programs_own_server(no_leftovers):
    result = run_program(hostile("patch_harness"), CHECK_TWO, limits=FAST)
    assert result.status == "error"
    assert result.detail.startswith("process exited with code 1 before the tests finished: ")


def test_forged_frames_on_every_fd_from_a_thread_are_not_a_pass(no_leftovers):
    result = run_program(hostile("forged_frames"), CHECK_TWO, limits=FAST)
    assert result.status == "fail", result.detail


def test_hunting_the_verdict_through_gc_frames_and_audit_hooks_finds_nothing(no_leftovers):
    result = run_program(hostile("introspect_verdict"), CHECK_TWO, limits=FAST)
    assert (result.status, result.detail) == ("fail", "AssertionError: assert candidate() == 2")


def test_reading_the_channel_does_not_reveal_the_expected_answer(no_leftovers):
    result = run_program(hostile("read_channel"), CHECK_TWO, limits=FAST)
    assert result.status in ("fail", "timeout"), result.detail


def test_a_timer_switched_off_inside_does_not_stop_the_clock_outside(no_leftovers):
    start = time.monotonic()
    result = run_program(hostile("disable_timer"), "assert solve() == 1\n",
                         limits=Limits(timeout_s=2.0))
    assert result.status == "timeout"
    assert result.detail == "wall-clock limit of 2 s exceeded in call #1: solve()"
    assert time.monotonic() - start < 5


# --- class 2: the tests have their own world ---------------------------------------------------


def test_patched_standard_library_does_not_reach_the_tests(no_leftovers):
    tests = ("import math, random\n"
             "assert math.fabs(solve() - 2.0) < 1e-6\n")
    result = run_program(hostile("patch_stdlib"), tests, limits=FAST)
    assert (result.status, result.detail) == (
        "fail", "AssertionError: assert math.fabs(solve() - 2.0) < 1e-6")


def test_the_tests_use_the_tasks_helpers_not_the_programs():
    helpers = "def double(x):\n    return 2 * x\n"
    program = "def double(x):\n    return x\n\ndef solve(x):\n    return double(x)\n"
    job = TestJob(program, "assert solve(3) == double(3)\n", helpers=helpers, entry_point="solve")
    [result] = run_many([job], progress=False)
    assert (result.status, result.detail) == ("fail", "AssertionError: assert solve(3) == double(3)")


# --- class 3: lying values ---------------------------------------------------------------------


@pytest.mark.parametrize("kind, described", [
    (0, "a YesFloat (a subclass of float)"), (1, "a YesList (a subclass of list)"),
    (2, "a Yes"), (3, "a YesInt (a subclass of int)")])
def test_a_value_with_its_own_eq_cannot_cross(kind, described, no_leftovers):
    result = run_program(hostile("lying_values", KIND=kind), "assert solve() == 2.5\n",
                         limits=FAST)
    assert result.status == "fail"
    assert result.detail == (f"`solve` returned {described}, which cannot cross the sandbox "
                             "boundary (plain builtin values only)")


# --- class 6: misc -----------------------------------------------------------------------------


def test_flooding_the_channel_is_the_programs_fault(no_leftovers):
    result = run_program(hostile("flood_channel"), "assert solve() == 2\n", limits=FAST)
    assert result.status == "fail"
    assert not result.detail.startswith("sandbox failure"), result.detail


def test_hash_seed_is_fixed_so_identical_rows_agree():
    import subprocess
    import sys

    program = hostile("set_order")
    seeded = subprocess.run([sys.executable, "-c", program + "print(solve())"], check=True,
                            capture_output=True, text=True, env={"PYTHONHASHSEED": "0"})
    first = seeded.stdout.strip()
    results = run_many([(program, f"assert solve() == {first!r}\n")] * 6, progress=False)
    assert [r.status for r in results] == ["pass"] * 6


# --- issue 27: what a program can do to the process that judges it -----------------------------


def test_hash_flood_answers_fail_and_the_programs_beside_them_keep_their_clock(no_leftovers):
    good = ("def solve(*args):\n    return 2\n", "assert solve() == 2\n")
    floods = [(hostile("hash_flood", COUNT=count, FORM=form), "assert solve() == 2\n")
              for count in (70_000, 5_000) for form in (0, 1)]
    jobs = [job for flood in floods for job in (flood, good)]
    results = run_many(jobs, limits=Limits(timeout_s=3.0), workers=2, progress=False)
    assert [r.status for r in results[1::2]] == ["pass"] * 4, [r.detail for r in results]
    details = [r.detail for r in results[::2]]
    assert [r.status for r in results[::2]] == ["fail"] * 4, details
    assert all(d.startswith("`solve` returned a value that cannot cross the sandbox boundary: ")
               for d in details), details
    assert "share one hash value" in details[0] and "pickle's own opcodes" in details[1]


def test_an_exception_too_large_to_repeat_is_the_programs_failure(no_leftovers):
    result = run_program(hostile("huge_exception", SIZE=5_000_000), "assert solve() == 2\n",
                         limits=FAST)
    assert result.status == "error" and result.detail.startswith("EEEE"), result.detail[:200]
    assert len(result.detail) <= 600 and "sandbox failure" not in result.detail
    result = run_program(hostile("huge_exception", SIZE=20_000_000), "assert solve() == 2\n",
                         limits=FAST)
    assert (result.status, result.detail) == ("fail", ("answer too large: the program answered "
                                                      "in call #1: solve() with more than 16 MiB"))


def test_forged_module_names_are_not_imported_by_the_judge(no_leftovers):
    result = run_program(hostile("forged_module_names"), "assert solve() == 2\n", limits=FAST)
    assert (result.status, result.detail) == ("pass", "")
    uses = "assert solve() == 2\nassert json.dumps(1) == '1'\n"  # reads json without importing it
    result = run_program(hostile("forged_module_names"), uses, limits=FAST)
    assert result.status == "error", result.detail
    assert result.detail.startswith("NameError: name 'json' is not defined (at <tests> line 2")


def test_a_big_answer_is_refused_by_size(no_leftovers):
    result = run_program(hostile("big_answer", MB=40), "assert solve() == []\n", limits=FAST)
    assert (result.status, result.detail) == ("fail", ("answer too large: the program answered "
                                                      "in call #1: solve() with more than 16 MiB"))
