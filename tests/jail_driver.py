"""Run jobs through faulttune.sandbox and print the results as JSON (used by tests/test_jail.py to
run the hostile corpus as an unprivileged user). stdin: [{"program", "tests", "limits"}, ...].
``--pool``: all jobs in one pool of one worker (its jails started ahead, see sandbox.spares),
under the first job's limits."""

from __future__ import annotations

import json
import os
import sys

from faulttune.sandbox import Limits, isolation, run_many, run_program
from faulttune.sandbox.jail import counts_processes


def main() -> None:
    jobs = json.load(sys.stdin)
    if "--pool" in sys.argv[1:]:
        done = run_many([(job["program"], job["tests"]) for job in jobs], workers=1,
                        limits=Limits(**jobs[0].get("limits", {})), progress=False)
    else:
        done = [run_program(job["program"], job["tests"], limits=Limits(**job.get("limits", {})))
                for job in jobs]
    results = [{"status": result.status, "detail": result.detail} for result in done]
    print(json.dumps({"pid": os.getpid(), "uid": os.getuid(), "isolation": isolation().label(),
                      "counts_processes": counts_processes(), "results": results}))


if __name__ == "__main__":
    main()
