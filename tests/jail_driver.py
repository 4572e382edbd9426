"""Run jobs through faulttune.sandbox and print the results as JSON (used by tests/test_jail.py to
run the hostile corpus as an unprivileged user). stdin: [{"program", "tests", "limits"}, ...]."""

from __future__ import annotations

import json
import os
import sys

from faulttune.sandbox import Limits, isolation, run_program
from faulttune.sandbox.jail import counts_processes


def main() -> None:
    jobs = json.load(sys.stdin)
    results = []
    for job in jobs:
        result = run_program(job["program"], job["tests"], limits=Limits(**job.get("limits", {})))
        results.append({"status": result.status, "detail": result.detail})
    print(json.dumps({"pid": os.getpid(), "uid": os.getuid(), "isolation": isolation().label(),
                      "counts_processes": counts_processes(), "results": results}))


if __name__ == "__main__":
    main()
