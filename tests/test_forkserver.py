"""faulttune.sandbox.forkserver: programs started as forks of a zygote get what a fresh jail gives
them (their own namespaces, no privilege, nothing of the zygote or of the program before them);
where forking cannot work, every program gets a fresh jail.

They need a working jail with the system-call filter (forking is used only there); they skip
without one, unless FAULTTUNE_SANDBOX=bwrap (CI) turns a missing jail into a failure.
"""

from __future__ import annotations

import logging

import pytest
from jail_checks import needs_jail

from faulttune.sandbox import Limits, forkserver, isolation, jail, run_many, run_program

FAST = Limits(timeout_s=4.0)

PROBE = """
import os

def probe():
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    status = {key: value.strip() for key, value in status.items()}
    return {"pid": os.getpid(), "uid": os.getuid(),
            "caps": [status[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")],
            "no_new_privs": status["NoNewPrivs"], "seccomp": status["Seccomp"],
            "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
            "tmp": os.listdir("/tmp"), "shm": os.listdir("/dev/shm")}
"""


@pytest.fixture(autouse=True)
def forking():
    needs_jail()
    if not isolation().forked:
        pytest.skip("programs are not forked here (see the warning at the sandbox probe)")


def test_a_forked_program_holds_no_privilege_and_sees_only_itself():
    tests = ("s = probe()\n"
             "assert s['pid'] == 2 and s['processes'] == [1, 2], s\n"  # under its own init
             "assert set(s['caps']) == {'0' * 16}, s\n"
             "assert s['no_new_privs'] == '1' and s['seccomp'] == '2', s\n"  # the filter
             "assert s['uid'] != 0, s\n"
             "assert set(s['fds']) <= {0, 1, 2, 3, 4, 5}, s\n")  # its pipes (5: the listing's)
    result = run_program(PROBE, tests, limits=FAST)
    assert result.passed, result.detail


def test_nothing_passes_from_one_forked_program_to_the_next():
    leaves = ("import os, subprocess, sys\n"
              "open('/tmp/left', 'w').write('x')\n"
              "open('/dev/shm/left', 'w').write('x')\n"
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],\n"
              "                 start_new_session=True)\n"
              "def probe():\n    return 1\n")
    finds = ("s = probe()\n"
             "assert s['tmp'] == [] and s['shm'] == [], s\n"
             "assert s['processes'] == [1, 2], s\n")
    # one worker: the second program is forked by the zygote that forked the first
    results = run_many([(leaves, "assert probe() == 1\n"), (PROBE, finds)], limits=FAST,
                       workers=1, progress=False)
    assert [r.status for r in results] == ["pass", "pass"], [r.detail for r in results]


def test_where_forking_does_not_work_every_program_gets_a_fresh_jail(monkeypatch, caplog):
    # a zygote that does not understand the request ends at once
    monkeypatch.setattr(forkserver, "ROLE_BYTES", {"server": b"?", "judge": b"?"})
    forkserver.stop_all()
    jail.set_isolation_for_tests(None)
    try:
        with caplog.at_level(logging.WARNING, logger="faulttune.sandbox.jail"):
            probed = isolation()
        assert probed.kind == "bwrap" and not probed.forked and "+fork" not in probed.label()
        assert "forking them does not work here (OSError: the zygote has gone)" in caplog.text
        assert run_program("def f():\n    return 2\n", "assert f() == 2\n", limits=FAST).passed
    finally:
        monkeypatch.undo()
        forkserver.stop_all()
        jail.set_isolation_for_tests(None)
    assert isolation().forked


def test_forking_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("FAULTTUNE_SANDBOX_FORK", "0")
    jail.set_isolation_for_tests(None)
    try:
        assert not isolation().forked
        assert run_program("def f():\n    return 2\n", "assert f() == 2\n", limits=FAST).passed
    finally:
        monkeypatch.undo()
        jail.set_isolation_for_tests(None)


def test_a_program_can_end_neither_its_init_nor_the_zygote():
    attack = ("import os, signal\n"
              "def attack():\n"
              "    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):\n"
              "        os.kill(1, signum)  # its init: PID 1, which handles none of them\n"
              "    try:\n"
              "        os.kill(-1, signal.SIGKILL)  # all it may signal but itself: none\n"
              "    except ProcessLookupError:\n"
              "        pass\n"
              "    return sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n")
    after = "def f():\n    return 1\n"
    results = run_many([(attack, "assert attack() == [1, 2]\n"), (after, "assert f() == 1\n")],
                       limits=FAST, workers=1, progress=False)
    assert [r.status for r in results] == ["pass", "pass"], [r.detail for r in results]
