# Issue 27, class 7: keeps PROCESSES processes busy for SECONDS of wall time, then reports the CPU
# time they got (user + system, all of them) per second of wall time: the jail's CPU bound caps it
# at about one core, however many processes.
import os
import time

PROCESSES = 0  # replaced by the test
SECONDS = 0  # replaced by the test


def solve():
    start = time.monotonic()
    children = []
    for _ in range(PROCESSES):
        pid = os.fork()
        if pid == 0:
            while time.monotonic() - start < SECONDS:
                pass
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    used = os.times()
    return (used.children_user + used.children_system) / (time.monotonic() - start)
