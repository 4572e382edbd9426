"""The columns of CodeFlow's files and the names its options take (see the package docstring)."""

from __future__ import annotations

from typing import Any, Literal

TRAJECTORY_COLUMNS = (
    "task_id",
    "iteration",
    "code",
    "status",
    "detail",
    "feedback",
    "passed",
    "origin",
    "raw",
)
PAIR_COLUMNS = (
    "id", "task_id", "source", "instruction", "chosen", "rejected", "correct", "incorrect",
    "rejected_iteration", "chosen_iteration", "n_iterations", "family", "similarity", "verified",
)  # fmt: skip
REJECTED_COLUMNS = (
    "id", "task_id", "source", "instruction", "chosen", "rejected",
    "rejected_iteration", "chosen_iteration", "n_iterations", "reason",
)  # fmt: skip
FEEDBACK_CHARS = 1500  # cap on the execution output shown to the model
MAX_CHANGED_LINES = 20  # docs/methods.md §3.1 step 5 (ii): |D-| > 20 lines is dropped

# Iteration 0 of a trajectory: the debugger's own attempt, a verified failing twin (the bugs
# stage's), or the task table's own ``solution`` (IterPref: the teacher's synthesized solution).
Start = Literal["model", "mutant", "solution"]
STARTS = ("model", "mutant", "solution")
RejectedRule = Literal["random", "first", "last"]
Row = dict[str, Any]
