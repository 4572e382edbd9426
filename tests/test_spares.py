"""faulttune.sandbox.spares: a pool's worker starts its next jail while it runs one; every program
still gets a jail of its own, and no spare outlives the pool or an interrupt."""

from __future__ import annotations

import os

import pytest
from jail_checks import leftovers

from faulttune.sandbox import Limits, jail, reaper, run_many, spares
from faulttune.sandbox.runner import allow_sessions, terminate_all

FAST = Limits(timeout_s=6.0)

# Lists /tmp as the program found it, then leaves a file there for any later program to see.
LOOKS_FOR_AN_EARLIER_PROGRAM = """\
import os
FOUND = sorted(os.listdir("/tmp"))
with open("/tmp/left-by-an-earlier-program", "w") as f:
    f.write("x")
def found():
    return FOUND
"""


@pytest.fixture
def started(monkeypatch):
    """Every jail started, in order (a spy on ``jail.spawn``); all of them killed afterwards."""
    made: list[jail.Spawned] = []
    real = jail.spawn

    def spy(role: str, limits: Limits) -> jail.Spawned:
        made.append(real(role, limits))
        return made[-1]

    monkeypatch.setattr(jail, "spawn", spy)
    yield made
    spares.discard_all()
    for spawned in made:
        reaper.kill(spawned)  # a session or dispose() closed its pipes
    assert leftovers(os.getpid()) == {}


def test_a_pool_gives_every_program_a_jail_no_program_ran_in(started):
    jobs = [(LOOKS_FOR_AN_EARLIER_PROGRAM, "assert found() == [], found()\n")] * 5
    results = run_many(jobs, limits=FAST, workers=1, progress=False)
    assert [r.status for r in results] == ["pass"] * 5, [r.detail for r in results]
    # two jails a run (program and judge), and one spare of each role that no run took
    assert len(started) == 2 * 5 + 2
    assert spares.count() == 0
    assert all(spawned.proc.poll() is not None for spawned in started)


def test_no_spare_is_started_when_each_worker_runs_one_program(started):
    jobs = [("def f():\n    return 1\n", "assert f() == 1\n")] * 2
    results = run_many(jobs, limits=FAST, workers=2, progress=False)
    assert [r.status for r in results] == ["pass", "pass"]
    assert len(started) == 4


def test_the_next_jail_is_the_spare_of_its_kind_and_another_kind_is_killed(started):
    small, large = Limits(memory_mb=512), Limits(memory_mb=1024)
    with spares.ahead():
        first = spares.spawn("server", small)
        assert first is started[0] and spares.count() == 1
        second = spares.spawn("server", large)  # the 512 MB spare does not fit: a new jail
        assert second is started[2]
        assert started[1].proc.wait(timeout=5) is not None
        third = spares.spawn("server", large)  # the spare started beside `second`
        assert third is started[3]
    outside = spares.spawn("server", large)  # outside ahead(): the spare, and no new one
    assert outside is started[4] and len(started) == 5 and spares.count() == 0
    for spawned in (first, second, third, outside):
        spares.dispose(spawned)


def test_a_spare_is_never_given_to_another_thread(started):
    import threading

    with spares.ahead():
        mine = spares.spawn("server", FAST)
    taken: list[jail.Spawned] = []
    other = threading.Thread(target=lambda: taken.append(spares.spawn("server", FAST)))
    other.start()
    other.join()
    assert taken[0] is started[2] and spares.count() == 1  # this thread's spare still waits
    for spawned in (mine, taken[0]):
        spares.dispose(spawned)


def test_an_interrupt_kills_every_spare_and_starts_none_until_allowed(started):
    taken = []
    try:
        with spares.ahead():
            taken.append(spares.spawn("server", FAST))
            assert spares.count() == 1
            terminate_all()
            assert spares.count() == 0
            assert started[1].proc.wait(timeout=5) is not None
            # the killed spare is not handed out, and none replaces it
            taken.append(spares.spawn("server", FAST))
            assert taken[-1] is started[2] and len(started) == 3 and spares.count() == 0
            allow_sessions()
            taken.append(spares.spawn("server", FAST))
            assert spares.count() == 1
    finally:
        allow_sessions()
        for spawned in taken:
            spares.dispose(spawned)


def test_a_spare_that_cannot_start_costs_only_the_spare(started, monkeypatch, caplog):
    real = jail.spawn

    def failing_second(role: str, limits: Limits) -> jail.Spawned:
        if len(started) == 1:
            raise OSError("no more processes")
        return real(role, limits)

    monkeypatch.setattr(jail, "spawn", failing_second)
    with spares.ahead():
        first = spares.spawn("server", FAST)
    assert first is started[0] and spares.count() == 0
    assert "could not start a spare jail" in caplog.text
    spares.dispose(first)


def test_a_pool_as_an_unprivileged_user_gives_every_program_its_own_jail():
    """No cgroup for a plain user: its jails are held to one core by affinity, started ahead
    the same way, and none is left when the scorer ends."""
    import json

    from jail_checks import jail_processes, make_test_user, start_driver_as, unprivileged_label

    user = make_test_user()
    job = {"program": LOOKS_FOR_AN_EARLIER_PROGRAM, "tests": "assert found() == [], found()\n",
           "limits": {"timeout_s": 6.0}}
    driver = start_driver_as(user, arguments=("--pool",))
    stdout, stderr = driver.communicate(json.dumps([job] * 4), timeout=120)
    assert driver.returncode == 0, stderr[-2000:]
    report = json.loads(stdout)
    assert report["uid"] != 0 and report["isolation"] == unprivileged_label()
    assert [r["status"] for r in report["results"]] == ["pass"] * 4, report["results"]
    assert jail_processes(driver.pid) == [] and leftovers(driver.pid) == {}
