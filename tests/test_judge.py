"""The judge's own logic (faulttune.sandbox.judge runs in its jail; its functions are plain code):
which helpers and proxies the tests see, how the program's exceptions come back, the details."""

from __future__ import annotations

import pytest

from faulttune.sandbox import judge, prompt_helpers

HUMANEVAL_32 = '''import math


def poly(xs: list, x: float):
    """Evaluates polynomial."""
    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])


def find_zero(xs: list):
    """ find x such that poly(x) = 0. """
'''


def test_prompt_helpers_keep_imports_and_complete_functions_only():
    helpers = prompt_helpers(HUMANEVAL_32)
    assert helpers.startswith("import math\n\ndef poly(xs: list, x: float):")
    assert "math.pow" in helpers and "find_zero" not in helpers
    assert prompt_helpers("from typing import List\n\ndef f(x: List[int]):\n    pass\n") == (
        "from typing import List\n")
    assert prompt_helpers("Write a function that adds two numbers.") == ""


def spec(names, helpers="", entry=""):
    return {"tests": "", "helpers": helpers, "entry_point": entry, "names": names, "rlimits": {}}


def test_the_tasks_helpers_win_over_the_programs_except_the_entry_point():
    sources: dict[str, list[str]] = {}
    names = [("poly", "callable"), ("find_zero", "callable"), ("sorted", "callable"),
             ("math", "module:math"), ("limit", "value")]
    ns = judge.namespace(spec(names, prompt_helpers(HUMANEVAL_32), "find_zero"), 0, 1, sources)
    assert isinstance(ns["find_zero"], judge.Proxy)
    assert not isinstance(ns["poly"], judge.Proxy) and ns["poly"]([1, 1], 2.0) == 3.0
    assert "sorted" not in ns and "limit" not in ns  # builtins stay the judge's; values do not cross
    assert ns["math"].__name__ == "math"


def test_a_missing_entry_point_is_not_replaced_by_the_prompts_stub():
    ns = judge.namespace(spec([("other", "callable")], "def find_zero(xs):\n    return 1\n",
                              "find_zero"), 0, 1, {})
    assert "find_zero" not in ns


@pytest.mark.parametrize("reported, expected_type", [
    (("ZeroDivisionError", "division by zero", [], None), ZeroDivisionError),
    (("UnicodeDecodeError", "bad byte", [], None), judge.ProgramError),  # needs 5 arguments
    (("MyError", "custom", [], None), judge.ProgramError),
    (("SystemExit", "", [], 3), judge.ProgramExited),
    (("KeyboardInterrupt", "", [], None), judge.ProgramError),  # not an Exception: not rebuilt
])
def test_the_programs_exceptions_come_back_as_the_judges_own(reported, expected_type):
    exc = judge.rebuilt_exception(*reported)
    assert type(exc) is expected_type


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001
        return caught


def test_details_name_the_program_line_and_the_test_line():
    sources = {judge.TESTS: ["assert ratio(1, 0) == 0"]}
    exc = judge.rebuilt_exception("ZeroDivisionError", "division by zero",
                                  ["<program> line 2: `return a / b`"], None)
    status, detail = judge.classify(raised(exc), sources)
    assert status == "error"
    assert detail == "ZeroDivisionError: division by zero (at <program> line 2: `return a / b`)"
    assert judge.classify(raised(judge.ProgramExited(0)), sources) == (
        "fail", "program called exit(0) before the tests finished")
    assert judge.classify(raised(judge.Unreturnable("`f` returned a Box")), sources) == (
        "fail", "`f` returned a Box")
    assert judge.classify(raised(judge.ProxyLimit("the tests pass a Box")), sources)[0] == "error"


def test_only_modules_the_task_uses_are_imported_for_the_tests():
    names = [("sys", "module:sys"), ("json", "module:venv.__main__"), ("np", "module:numpy"),
             ("re", "module:re"), ("evil", "module:antigravity")]
    tests = "import numpy\nassert sys and json and np\n"
    ns = judge.namespace({**spec(names), "tests": tests}, 0, 1, {})
    assert ns["sys"].__name__ == "sys"  # a standard module under its own name, read by the tests
    assert ns["np"].__name__ == "numpy"  # a package the tests import themselves
    assert "json" not in ns and "re" not in ns and "evil" not in ns  # aliased, unread, unread


def test_the_programs_texts_are_clipped_in_the_verdict():
    exc = judge.rebuilt_exception("E" * 10**6, "m" * 10**6, ["w" * 10**6] * 10**3, None)
    status, detail = judge.classify(raised(exc), {judge.TESTS: ["f()"]})
    assert status == "error" and len(detail) <= judge.DETAIL_CHARS
    assert detail.startswith("E" * 97 + "...: " + "m" * 10)
