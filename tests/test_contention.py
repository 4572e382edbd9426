"""A differential run's time limits forgive the machine's load (faulttune.sandbox.contention), and
only that: a program held up by busy processes on its CPU gets the time back; one whose own thread
or child process computes while its server waits in the run queue does not.

Each case runs in tests/contention_driver.py, whose jail and busy processes share CPU 0, as this
user and, where this run is root, as an unprivileged one (no cgroup: its jail is held to the CPU
by its affinity).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jail_checks import make_test_user, needs_jail, start_driver_as

from faulttune.sandbox import contention

DRIVER = Path(__file__).parent / "contention_driver.py"


def drive(user: str, program: str, hogs: int, forgive: bool) -> dict:
    arguments = (program, str(hogs), "1" if forgive else "0")
    if user == "this":
        proc = subprocess.Popen([sys.executable, str(DRIVER), *arguments], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    else:
        proc = start_driver_as(make_test_user(), DRIVER.name, arguments)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    return json.loads(stdout)


@pytest.mark.parametrize("user", ["this", "unprivileged"])
def test_a_program_held_up_by_busy_processes_on_its_cpu_gets_the_time_back(user):
    needs_jail()
    # 0.4 s of CPU per input against 1 s limits and a budget of 2.5 s for three; sharing its CPU
    # with two busy processes, each input takes ~1.2 s and the three ~3.6 s by the wall clock
    held_up = drive(user, "busy", hogs=2, forgive=True)
    assert (held_up["status"], held_up["detail"]) == ("pass", ""), held_up
    assert held_up["seconds"] > 2.5  # the load was real: more than the budget by the wall clock
    assert held_up["uid"] != 0 or user == "this"
    # the same run timed by the wall clock alone
    walled = drive(user, "busy", hogs=2, forgive=False)
    assert walled["status"] == "timeout", walled


@pytest.mark.parametrize("user", ["this", "unprivileged"])
@pytest.mark.parametrize("program", ["thread", "fork"])
def test_what_a_programs_own_thread_or_child_computes_is_not_forgiven(program, user):
    """The server yields its CPU to a thread (hashing, without the GIL) or a child process of
    its own, so its run-queue wait grows as fast as the wall clock: that wait is the program's
    own work. Forgiven, the jail would compute until 10 limits had passed (9.4 CPU seconds on an
    idle machine, 3.2 beside two busy processes); it is stopped after about one CPU second,
    however loaded the machine is."""
    needs_jail()
    result = drive(user, program, hogs=0, forgive=True)
    assert result["status"] == "timeout", result
    assert result["detail"] == "base input #0 exceeded 1.00 s: f(1)"
    assert 0.8 < result["jail_cpu"] < 2.0, result


def test_a_process_outside_a_jail_has_no_contention_to_read():
    """``probe`` reads a jail's own /proc: a plain child in this PID namespace is not one (its
    PID 2 there would be the host's)."""
    parent = subprocess.Popen(["sh", "-c", "sleep 30; :"])
    try:
        deadline = time.monotonic() + 10
        while contention.only_child(parent.pid) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert contention.only_child(parent.pid) is not None
        assert contention.probe(parent.pid) is None
    finally:
        parent.kill()
        parent.wait()


def test_children_are_the_processes_a_process_started():
    """``children`` lists what a process started (the zygote's forks, a jail's init), and
    nothing once it is gone."""
    parent = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while len(contention.children(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        found = contention.children(parent.pid)
        assert len(found) == 2 and all(contention._parent(pid) == parent.pid for pid in found)
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
    assert contention.children(parent.pid) == []
