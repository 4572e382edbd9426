"""Running a pair's twins on their task's test inputs in the sandbox and tracing their lines.

The twins are model-written or mutated code: they run only in the jail (:mod:`faulttune.sandbox`).
The program sent there is :data:`HARNESS`, a tracer that executes the twin's source (passed with
each call, so one loaded program serves every input) under ``sys.settrace`` and answers with how
the call ended and the lines of the twin it ran. A twin could tamper with its own trace; a trace
only ever sets the mask of that twin's own training example, never a verdict.

Inputs: the calls in the task's tests whose arguments are all literals (``candidate(...)`` in
HumanEval's ``check``, ``<entry_point>(...)`` in MBPP's asserts), in the order they appear.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any

from faulttune.mask_table import normalise_code
from faulttune.sandbox.calls import call_program
from faulttune.sandbox.results import Limits
from faulttune.tracing.divergence import Trace, TracedLines, traced_lines

TRACE_FUNCTION = "__faulttune_trace__"
TWIN_FILE = "<twin>"
MAX_EVENTS = 20_000  # line events traced per call; a longer run is cut (an endless loop)
HARNESS = f'''
import sys as _sys


def {TRACE_FUNCTION}(source, entry, args, max_events):
    lines = []

    class _Cut(Exception):
        pass

    def tracer(frame, event, arg):
        if frame.f_code.co_filename != "{TWIN_FILE}":
            return None
        if event == "line":
            lines.append(frame.f_lineno)
            if len(lines) >= max_events:
                raise _Cut
        return tracer

    namespace = {{"__builtins__": __builtins__}}
    _sys.settrace(tracer)
    try:
        exec(compile(source, "{TWIN_FILE}", "exec"), namespace)
        value = namespace[entry](*args)
        outcome = ["returned", repr(value)[:2000]]
    except BaseException as exc:
        outcome = ["raised", type(exc).__name__]
    finally:
        _sys.settrace(None)
    return [outcome[0], outcome[1], lines]
'''


def literal_calls(test: str, entry_point: str, limit: int) -> list[tuple[Any, ...]]:
    """The argument tuples of the first ``limit`` distinct calls of the function under test in
    ``test`` whose arguments are all literals, in source order."""
    try:
        tree = ast.parse(test)
    except SyntaxError:
        return []
    calls = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call)),
                   key=lambda n: (n.lineno, n.col_offset))
    out: list[tuple[Any, ...]] = []
    for node in calls:
        if not (isinstance(node.func, ast.Name) and node.func.id in ("candidate", entry_point)
                and not node.keywords):
            continue
        try:
            args = tuple(ast.literal_eval(a) for a in node.args)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if args not in out:
            out.append(args)
        if len(out) == limit:
            break
    return out


def twin_traces(code: str, entry_point: str, inputs: Sequence[tuple[Any, ...]], limits: Limits,
                ) -> list[Trace]:
    """The twin's trace on each input, in order, until the run ends (its traces so far)."""
    calls = [(TRACE_FUNCTION, [code, entry_point, list(args), MAX_EVENTS]) for args in inputs]
    done = call_program(HARNESS, calls, limits)
    traces = []
    for what, value in done.answers:
        if what != "returned" or not _is_trace(value):
            break
        traces.append(Trace(tuple(value[2]), value[0], value[1]))
    return traces


def _is_trace(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 3 and value[0] in ("returned", "raised")
            and isinstance(value[1], str) and isinstance(value[2], list)
            and all(isinstance(n, int) for n in value[2]))


def trace_pair(pair: Mapping[str, Any], task: Mapping[str, Any], limits: Limits,
               max_inputs: int) -> dict[str, Any]:
    """One row of the traces table for a pair (``correct``/``chosen``, ``incorrect``/``rejected``)
    of ``task`` (``test``, ``entry_point``): the first test input on which the twins' outputs
    differ, and the lines to mark (:func:`~faulttune.tracing.divergence.traced_lines`)."""
    code_c = normalise_code(pair.get("correct", pair.get("chosen")) or "")
    code_i = normalise_code(pair.get("incorrect", pair.get("rejected")) or "")
    entry = task.get("entry_point") or ""
    inputs = literal_calls(task.get("test") or "", entry, max_inputs) if entry else []
    traces_c = twin_traces(code_c, entry, inputs, limits) if inputs else []
    traces_i = twin_traces(code_i, entry, inputs[:len(traces_c)], limits) if traces_c else []
    first = next((k for k, (c, i) in enumerate(zip(traces_c, traces_i)) if not c.same_output(i)),
                 None)
    found = (traces_c[first], traces_i[first]) if first is not None else (None, None)
    result: TracedLines = traced_lines(code_c, code_i, *found)
    return {"id": str(pair["id"]), "task_id": str(pair["task_id"]), "status": result.status,
            "input": repr(inputs[first])[:500] if first is not None else None,
            "inputs_run": min(len(traces_c), len(traces_i)), "divergence": result.divergence,
            "correct_lines": list(result.correct), "incorrect_lines": list(result.incorrect)}
