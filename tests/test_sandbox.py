"""faulttune.sandbox: verdicts, details, and a corpus of hostile programs (tests/hostile/)."""

from __future__ import annotations

import logging
import socket
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from faulttune import sandbox
from faulttune.sandbox import Limits, run_in_pool, run_many, run_program

HOSTILE = Path(__file__).parent / "hostile"
FAST = Limits(timeout_s=4.0)


def hostile(name: str, **fill: object) -> str:
    source = (HOSTILE / f"{name}.py").read_text()
    for key, value in fill.items():
        source = source.replace(f"{key} = []  # replaced by the test", f"{key} = {value!r}")
        source = source.replace(f"{key} = 0  # replaced by the test", f"{key} = {value!r}")
    return source


def sandbox_processes(root: Path) -> set[int]:
    """Live processes of sandbox runs under ``root`` (their command line names the payload)."""
    found = set()
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(root) in cmdline:
            found.add(proc.pid)
    return found


@pytest.fixture
def no_leftovers(tmp_path, monkeypatch):
    """Sandbox folders go to tmp_path; afterwards no sandbox process or folder may be left."""
    sandbox_root = tmp_path / "sandboxes"
    sandbox_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(sandbox_root))
    children_before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield sandbox_root
    time.sleep(0.2)
    children_after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert children_after <= children_before
    assert not sandbox_processes(sandbox_root)
    assert list(sandbox_root.iterdir()) == []


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


def test_syntax_error_is_an_error():
    result = run_program("def f(:\n    pass\n", "f()\n")
    assert result.status == "error"
    assert result.detail.startswith("SyntaxError:") and "<program> line 1" in result.detail


def test_builtin_shadowing_in_program_does_not_reach_tests():
    # the program's own `sorted` is used by the program, the tests see the real one
    program = "sorted = lambda xs: xs\n\ndef top(xs):\n    return sorted(xs)[0]\n"
    assert run_program(program, "assert sorted([3, 1]) == [1, 3]\nassert top([3, 1]) == 3\n").passed


def test_stdout_of_the_program_is_not_a_pass():
    result = run_program("print('pass')\nraise SystemExit(0)\n", "")
    assert result.status == "fail" and "exit(0)" in result.detail


def test_sandbox_failure_is_reported(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    result = run_program("x = 1\n", "assert x == 1\n")
    assert result.status == "error" and result.detail.startswith("sandbox failure:")


def test_fallback_without_namespaces_still_checks_and_blocks_sockets(monkeypatch):
    monkeypatch.setattr(sandbox, "_NAMESPACES", False)
    assert run_program("x = 2\n", "assert x == 2\n").passed
    assert run_program("x = 2\n", "assert x == 3\n").status == "fail"
    result = run_program("import socket\nsocket.create_connection(('127.0.0.1', 9))\n")
    assert result.status == "error" and "PermissionError" in result.detail


# --- batch API ----------------------------------------------------------------------------------


def test_run_many_keeps_input_order():
    jobs = [("import time\ntime.sleep(0.6)\nx = 1\n", "assert x == 1\n"),
            ("x = 1\n", "assert x == 2\n"),
            ("x = 1\n", "assert x == 1\n")]
    results = run_many(jobs, limits=FAST, workers=3, progress=False)
    assert [r.status for r in results] == ["pass", "fail", "pass"]


def test_pool_warns_when_nothing_finishes(caplog):
    with caplog.at_level(logging.WARNING, logger="faulttune.sandbox"):
        out = run_in_pool(lambda x: (time.sleep(0.5), x * 2)[1], [1, 2], workers=2,
                          progress=False, stall_s=0.2)
    assert out == [2, 4]
    assert "nothing finished in the last" in caplog.text


# --- the hostile corpus -------------------------------------------------------------------------


@pytest.mark.parametrize("name, tests, statuses", [
    ("exit_before_tests", "assert solve() == 1\n", {"fail"}),
    ("os_exit", "assert solve() == 1\n", {"fail"}),
    ("infinite_loop", "", {"timeout"}),
    ("catastrophic_regex", "", {"timeout"}),
    ("memory_bomb", "", {"error"}),
    ("deep_recursion", "", {"error"}),
    ("stack_overflow", "", {"error", "timeout"}),
    ("forged_report", "assert solve() == 2\n", {"fail", "error"}),
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


def test_write_outside_the_sandbox_touches_nothing(tmp_path, no_leftovers):
    inside_tests_dir = tmp_path / "pwned.txt"
    world_tmp = Path("/tmp") / f"faulttune-hostile-{time.time_ns()}.txt"
    repo_file = Path(__file__).parent / "hostile" / "pwned.txt"
    targets = [str(inside_tests_dir), str(world_tmp), str(repo_file)]
    result = run_program(hostile("write_outside", TARGETS=targets), "assert solve() == 2\n",
                         limits=FAST)
    assert result.status == "fail"
    for target in targets:
        assert not Path(target).exists(), target


def test_socket_to_loopback_reaches_nothing(no_leftovers):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        result = run_program(hostile("socket_loopback", PORT=port), "", limits=FAST)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert result.status == "error"
    assert "OSError" in result.detail or "PermissionError" in result.detail


def test_an_interpreter_installed_under_tmp_still_imports_its_packages(tmp_path, monkeypatch):
    """A checkout (and its .venv) under /tmp: the jail's private tmpfs over /tmp must not hide the
    interpreter's own packages (they come back read-only) nor make them writable."""
    import subprocess

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "probe_mod.py").write_text("VALUE = 7\n")
    monkeypatch.setattr(sys, "executable", str(venv / "bin" / "python"))
    program = "import probe_mod\n"
    tests = ("assert probe_mod.VALUE == 7\n"
             "try:\n    open(probe_mod.__file__, 'a').close()\nexcept OSError:\n    pass\n"
             "else:\n    raise AssertionError('the package folder is writable')\n")
    result = run_program(program, tests, limits=FAST)
    assert result.status == "pass", result.detail
