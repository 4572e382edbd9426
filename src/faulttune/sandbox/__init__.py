"""Run model-written Python and judge it where it cannot reach: ``faulttune.sandbox``.

Every verdict the project reports rests on this package. The program runs alone in a jail
(:mod:`.jail`: bubblewrap namespaces, no host files but the interpreter and allowed packages) as a
server of calls (:mod:`.server`); it receives inputs and answers with plain values (:mod:`.wire`).
What judges those answers never shares its process:

* differential benchmarks (HumanEval+, MBPP(+)): the scorer compares each answer with the expected
  output itself, or its checker process for large answers (:mod:`.differential`,
  :mod:`.comparison`, :mod:`.checker`);
* assert-style tests: a judge in a second jail runs them, calling the program by proxy
  (:mod:`.assertions`, :mod:`.judge`).

The scorer keeps every clock (:mod:`.runner`), so a program cannot stop its time limits; many runs
share a thread pool (:mod:`.pool`). Statuses: ``pass``; ``fail`` (a check failed, a wrong or
unsendable answer, an exit before the tests ended); ``timeout``; ``error`` (the program or the
tests raised, or the process crashed; ``detail`` starts with "sandbox failure:" when the sandbox
itself broke).
"""

from faulttune.sandbox.assertions import (
    TestJob,
    prompt_helpers,
    run_program,
    run_test_job,
    task_job,
)
from faulttune.sandbox.comparison import OutputCheck
from faulttune.sandbox.differential import DiffJob, Stage, run_differential
from faulttune.sandbox.jail import Isolation, isolation, memory_bound_mb
from faulttune.sandbox.pool import run_in_pool, run_many
from faulttune.sandbox.results import SANDBOX_FAILURE, STATUSES, Limits, SandboxResult
from faulttune.sandbox.runner import terminate_all

__all__ = [
    "SANDBOX_FAILURE", "STATUSES", "DiffJob", "Isolation", "Limits", "OutputCheck",
    "SandboxResult", "Stage", "TestJob", "isolation", "memory_bound_mb", "prompt_helpers",
    "run_differential", "run_in_pool", "run_many", "run_program", "run_test_job", "task_job",
    "terminate_all",
]
