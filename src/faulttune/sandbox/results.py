"""What a sandboxed run returns (:class:`SandboxResult`) and what it may use (:class:`Limits`)."""

from __future__ import annotations

import signal
from dataclasses import dataclass

STATUSES = ("pass", "fail", "timeout", "error")
SANDBOX_FAILURE = "sandbox failure: "
DETAIL_CHARS = 600


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one program: ``status`` in :data:`STATUSES`, a short ``detail``, the stderr tail."""

    status: str
    detail: str
    stderr_tail: str = ""
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run; the defaults suit HumanEval-sized programs.

    Memory: ``memory_mb`` is the address-space limit of each process and, where a cgroup can be
    made (root, or a delegated cgroup v2 subtree), the limit of all the program's processes
    together. Without a cgroup the kernel counts processes per jail (``RLIMIT_NPROC`` in the jail's
    own user namespace), so one program holds at most ``(2 + max_processes) * memory_mb``: the
    jail's init, the program's server and ``max_processes`` more processes or threads.
    """

    timeout_s: float = 10.0  # wall clock for the whole run: start, program, every call, the tests
    memory_mb: int = 2048  # RLIMIT_AS of each process; the cgroup limit of all of them
    cpu_s: float | None = None  # RLIMIT_CPU of each process; None: timeout_s + 1
    max_processes: int = 4  # processes or threads the program may start besides its own
    max_file_mb: int = 16  # RLIMIT_FSIZE, and the size of each private tmpfs (/tmp, /dev/shm)
    max_open_files: int = 256  # RLIMIT_NOFILE
    max_output_kb: int = 64  # tail of stdout/stderr kept
    stack_mb: int | None = 64  # RLIMIT_STACK; None: leave the inherited limit
    max_answer_kb: int = 16 * 1024  # the largest frame (answer, exception) one call may send:
    # larger is the program's fail ("answer too large"); the scorer holds about 3 of them at most
    packages: tuple[str, ...] = ("numpy",)  # importable in the jail besides the standard library

    def rlimits(self, count_processes: bool = True) -> dict[str, int]:
        """The soft=hard values set in the jail before the program runs, by ``resource`` name.

        ``count_processes``: set ``RLIMIT_NPROC`` (meaningful only in a jail's own user namespace
        under a non-root uid: elsewhere it counts the caller's processes, or root ignores it).
        """
        mb = 1024 * 1024
        values = {
            "RLIMIT_AS": self.memory_mb * mb,
            "RLIMIT_CPU": int(self.cpu_s if self.cpu_s is not None else self.timeout_s + 1) + 1,
            "RLIMIT_FSIZE": self.max_file_mb * mb,
            "RLIMIT_NOFILE": self.max_open_files,
            "RLIMIT_CORE": 0,
        }
        if self.stack_mb is not None:
            values["RLIMIT_STACK"] = self.stack_mb * mb
        if count_processes:
            values["RLIMIT_NPROC"] = 2 + self.max_processes
        return values

    def memory_bound_mb(self, cgroup: bool) -> int:
        """The most memory one program can hold (see the class docstring)."""
        return self.memory_mb if cgroup else (2 + self.max_processes) * self.memory_mb


def clip(text: str, limit: int = DETAIL_CHARS) -> str:
    """One line of at most ``limit`` characters."""
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def explain_exit(returncode: int, stderr_tail: str, when: str = "before the tests finished",
                 out_of_memory: bool = False) -> tuple[str, str]:
    """Status and detail for a program whose process ended without answering."""
    if out_of_memory:
        return "error", f"out of memory: the program's processes exceeded their memory limit {when}"
    if returncode < 0 or returncode > 128:
        signum = -returncode if returncode < 0 else returncode - 128
        if signum == signal.SIGXCPU:
            return "timeout", "CPU time limit exceeded (SIGXCPU)"
        hint = " (stack overflow?)" if signum == signal.SIGSEGV else ""
        return "error", f"process killed by {signal_name(signum)}{hint} {when}"
    if returncode == 0:
        return "fail", f"program exited with code 0 {when}"
    last = stderr_tail.strip().splitlines()[-1:] or [""]
    return "error", clip(f"process exited with code {returncode} {when}"
                         + (f": {last[0]}" if last[0] else ""))
