"""A scripted teacher behind a local OpenAI-compatible endpoint (``/v1/chat/completions``), for
the tests of task synthesis, teacher debugging, the judge and the SLURM time limit.

It answers from the prompt alone (the same request always gets the same answer), keeps every
request it served, and can be told to fail a request (HTTP 400, which the openai client does not
retry: the job stops as a crashed job would) or to take its time.

``TaskScript`` says what the teacher does for one task: its synthesized answer, each fix it
writes, its judge verdict.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class TaskScript:
    """The teacher's answers for the task whose instruction contains ``key``."""

    key: str
    synthesis: str = ""
    fixes: list[str] = field(default_factory=list)  # fix k answers with fixes[min(k, len - 1)]
    verdict: str = "The second version computes a different result.\nYES"
    variant: str = "```python\npass\n```"


def unittest_answer(solution: str, tests: str, module: str = "solution",
                    packages: tuple[str, ...] = ()) -> str:
    """An answer in the paper's format."""
    return (f"Here is the solution.\n<file>{module}.py</file>\n```python\n{solution}```\n"
            f"<file>test.py</file>\n```python\n{tests}```\n"
            f'<json>{{"file_names": ["{module}.py", "test.py"], "packages": {json.dumps(list(packages))}}}</json>\n')


def code_answer(code: str) -> str:
    return f"Fixed:\n```python\n{code}```\n"


class FakeTeacher:
    """The scripted teacher's state: its tasks, the requests served, failures to inject."""

    def __init__(self, scripts: list[TaskScript], delay_s: float = 0.0,
                 fallback: str | None = None) -> None:
        self.scripts = scripts
        self.delay_s = delay_s
        self.fallback = fallback  # the answer to a prompt of no scripted task
        self.requests: list[str] = []  # the last user message of every request served
        self.fail_when: Callable[[str], bool] | None = None
        self.lock = threading.Lock()
        self.base_url = ""

    def script_for(self, prompt: str) -> TaskScript:
        found = [s for s in self.scripts if s.key in prompt]
        if not found:
            raise KeyError(f"no scripted task in prompt: {prompt[:200]!r}")
        return max(found, key=lambda s: len(s.key))

    def answer(self, prompt: str) -> str:
        if self.fallback is not None and not any(s.key in prompt for s in self.scripts):
            return self.fallback
        script = self.script_for(prompt)
        if "write unit tests for your solution" in prompt:
            return script.synthesis
        if "Do A and B differ in their logic" in prompt:
            return script.verdict
        if "Running its tests gave this output" in prompt:
            fix = self.fixes_so_far(prompt, script)
            return code_answer(script.fixes[min(fix, len(script.fixes) - 1)])
        if "functionally INCORRECT" in prompt:
            return script.variant
        return code_answer(script.fixes[0])  # a first attempt (codeflow.start: model)

    def fixes_so_far(self, prompt: str, script: TaskScript) -> int:
        """Which fix this is: the number of the task's fixes already in the prompt's program."""
        shown = prompt.split("Program:\n```python\n", 1)[-1].split("\n```", 1)[0]
        done = [i for i, fix in enumerate(script.fixes) if fix.strip("\n") == shown.strip("\n")]
        return max(done) + 1 if done else 0

    def count(self, needle: str) -> int:
        with self.lock:
            return sum(needle in r for r in self.requests)


def _handler(teacher: FakeTeacher) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            prompt = body["messages"][-1]["content"]
            if teacher.fail_when is not None and teacher.fail_when(prompt):
                self._send(400, {"error": {"message": "injected failure", "type": "test"}})
                return
            if teacher.delay_s:
                time.sleep(teacher.delay_s)
            with teacher.lock:
                teacher.requests.append(prompt)
            reply = teacher.answer(prompt)
            choices = [{"index": i, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": reply}}
                       for i in range(body.get("n", 1))]
            self._send(200, {"id": "fake", "object": "chat.completion", "created": 0,
                             "model": body["model"], "choices": choices,
                             "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                       "total_tokens": 2}})

        def _send(self, code: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve(teacher: FakeTeacher, host: str = "127.0.0.1") -> Iterator[FakeTeacher]:
    """The teacher at ``teacher.base_url`` (``http://host:port/v1``) while the block runs."""
    server = ThreadingHTTPServer((host, 0), _handler(teacher))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    teacher.base_url = f"http://{host}:{server.server_address[1]}/v1"
    try:
        yield teacher
    finally:
        server.shutdown()
        server.server_close()


def humaneval_unittest(row: dict[str, Any]) -> str:
    """A unittest file for a HumanEval-style training row: its ``check`` in a TestCase."""
    check = re.sub(rf"\ncheck\({re.escape(row['entry_point'])}\)\s*$", "\n", row["test"])
    return (f"import unittest\nfrom solution import {row['entry_point']}\n{check}\n\n"
            f"class TestTask(unittest.TestCase):\n    def test_check(self):\n"
            f"        check({row['entry_point']})\n\n\nif __name__ == '__main__':\n"
            f"    unittest.main()\n")


def wrong_solution(row: dict[str, Any]) -> str:
    """The task's signature and docstring, returning None."""
    return row["instruction"].rstrip() + "\n    return None\n"


def hanging_solution(row: dict[str, Any]) -> str:
    return row["instruction"].rstrip() + "\n    while True:\n        pass\n"


# What the teacher does with the HumanEval-style rows of a table, by position (cycled):
BEHAVIOURS = ("fixed", "right at once", "no test file", "test imports nothing", "hangs",
              "fixed, judge undecided")


def humaneval_scripts(rows: list[dict[str, Any]]) -> list[TaskScript]:
    """One script per row (by :data:`BEHAVIOURS`): a wrong solution the teacher then fixes (judge:
    YES), a right one, an answer without a test file, a test file that imports nothing, a solution
    that hangs (and the teacher's fix hangs too), and a fixed one whose judge says neither yes
    nor no."""
    scripts = []
    for i, row in enumerate(rows):
        key, tests = f"def {row['entry_point']}(", humaneval_unittest(row)
        behaviour = BEHAVIOURS[i % len(BEHAVIOURS)]
        script = TaskScript(key, unittest_answer(wrong_solution(row), tests), [row["solution"]],
                            variant=code_answer(wrong_solution(row)))
        if behaviour == "right at once":
            script.synthesis = unittest_answer(row["solution"], tests)
        elif behaviour == "no test file":
            script.synthesis = (f"<file>solution.py</file>\n```python\n{row['solution']}```\n"
                                "(the answer was cut here)")
        elif behaviour == "test imports nothing":
            script.synthesis = unittest_answer(
                row["solution"], "import unittest\n\n\nclass T(unittest.TestCase):\n"
                "    def test_true(self):\n        self.assertTrue(True)\n")
        elif behaviour == "hangs":
            script.synthesis = unittest_answer(hanging_solution(row), tests)
            script.fixes = [hanging_solution(row)]
        elif behaviour == "fixed, judge undecided":
            script.verdict = "Hard to say without running them."
        scripts.append(script)
    return scripts
