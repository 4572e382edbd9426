"""Run one differential job on CPU 0, beside busy processes held to CPU 0 too, and print the
verdict as JSON (used by tests/test_contention.py, as this user or as another one).

argv: PROGRAM (a key of PROGRAMS) HOGS (how many busy processes) FORGIVE (1, or 0: as if the
run-queue wait could not be read).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time

import psutil

os.sched_setaffinity(0, {0})  # before faulttune is imported: its jails inherit this one CPU

from faulttune.sandbox import DiffJob, Limits, OutputCheck, Stage, run_differential
from faulttune.sandbox.runner import Session

_BURN = "def burn(s):\n    t = time.process_time()\n    while time.process_time() - t < s:\n        pass\n"
PROGRAMS = {
    # 0.4 s of CPU per input: a third of its 1 s limit
    "busy": "import time\n" + _BURN + "def f(x):\n    burn(0.4)\n    return x + 1\n",
    # a thread computes (hashing: without the GIL) while the server's main thread stays ready
    # to run, yielding the CPU to it
    "thread": "import hashlib, os, threading\n" + (
        "def hash_on():\n    data = bytes(10**7)\n    while True:\n"
        "        hashlib.sha256(data).digest()\n"
        "def f(x):\n    threading.Thread(target=hash_on, daemon=True).start()\n"
        "    while True:\n        os.sched_yield()\n"),
    # the same with a child process
    "fork": "import os, posix, time\n" + _BURN + (
        "def f(x):\n    if posix.fork() == 0:\n        burn(60)\n        os._exit(0)\n"
        "    while True:\n        os.sched_yield()\n"),
}


def main() -> None:
    program, hogs, forgive = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    if not forgive:
        Session.contention = lambda self, name: None  # type: ignore[method-assign]
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(hogs)]
    try:
        # three inputs of 1 s each, and a stage budget that three times 1.2 s would use up
        stage = Stage("base", (1.0, 1.0, 1.0), 2.5)
        job = DiffJob(PROGRAMS[program], "f", (stage,), OutputCheck("humaneval", "f", 0.0),
                      lambda: iter([((1,), 2), ((2,), 3), ((3,), 4)]),
                      Limits(timeout_s=60.0, max_processes=2))
        stop, jail_cpu = threading.Event(), [0.0]
        watcher = threading.Thread(target=watch_jail_cpu, args=({p.pid for p in busy}, stop,
                                                               jail_cpu))
        watcher.start()
        start = time.monotonic()
        try:
            result = run_differential(job)
        finally:
            seconds = time.monotonic() - start
            stop.set()
            watcher.join()
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    print(json.dumps({"status": result.status, "detail": result.detail, "seconds": seconds,
                      "jail_cpu": jail_cpu[0], "uid": os.getuid()}))


def watch_jail_cpu(hogs: set[int], stop: threading.Event, most: list[float]) -> None:
    """The most CPU seconds the jail's processes (every process below this one but the busy
    ones) had used together, sampled every 20 ms."""
    me = psutil.Process()
    while not stop.wait(0.02):
        total = 0.0
        for proc in me.children(recursive=True):
            if proc.pid not in hogs:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    total += times.user + times.system
        most[0] = max(most[0], total)


if __name__ == "__main__":
    main()
