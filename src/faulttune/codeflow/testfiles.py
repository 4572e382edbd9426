"""The teacher's answer in IterPref's task format (docs/methods.md §3.1 step 1), and its unittest
file made ready for the sandbox.

The answer holds files, each a ``<file>name.py</file>`` line followed by a fenced code block, and
a ``<json>{"file_names": [...], "packages": [...]}</json>`` tail: one solution module and ONE test
file (``test*.py``) that imports it and defines ``unittest.TestCase`` classes.

The sandbox runs the solution in one jail and the tests in another (the judge), calling the
solution's functions by proxy (:mod:`faulttune.sandbox.assertions`). :func:`judge_tests` turns the
test file into the judge's test code: the solution module is a module whose attributes are those
proxies (so ``from solution import f`` and ``import solution`` work unchanged), the file runs with
``__name__ == "test"`` (its ``unittest.main()`` stays off), and a runner then runs every TestCase the
file defines: failures make an ``AssertionError`` naming them, and a file that cannot be loaded an
error whose detail starts with :data:`TEST_FILE_BROKEN`.

:func:`coverage_program` is the program that measures the tests' line coverage of the solution
with coverage.py, the solution and the test file as real files in one jail; its report comes back
on stderr. It is a measurement the program's own process makes, never a verdict.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from dataclasses import dataclass, field

TEST_FILE_BROKEN = "the test file does not run"
COVERAGE_MARK = "faulttune-coverage: "
_FILE = re.compile(r"<file>\s*([^<>\s]+)\s*</file>\s*```[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_JSON = re.compile(r"<json>(.*?)</json>", re.DOTALL)
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class TaskFiles:
    """A teacher's answer read: the solution module's name and text, the test file, the
    packages it lists, or ``problem`` (why the answer cannot make a task)."""

    module: str = ""
    solution: str = ""
    test: str = ""
    packages: tuple[str, ...] = ()
    problem: str | None = None
    names: tuple[str, ...] = field(default=())


def read_answer(answer: str) -> TaskFiles:
    """The files of a teacher's answer, or a :class:`TaskFiles` with ``problem`` set."""
    files = {name: body for name, body in _FILE.findall(answer) if name.endswith(".py")}
    tests = [n for n in files if n.rsplit("/", 1)[-1].startswith("test")]
    sources = [n for n in files if n not in tests]
    names = tuple(files)
    if not tests:
        return TaskFiles(problem="no test file (a <file>test.py</file> block)", names=names)
    if len(tests) > 1:
        return TaskFiles(problem=f"more than one test file ({', '.join(tests)})", names=names)
    if not sources:
        return TaskFiles(problem="no solution file (a <file>name.py</file> block)", names=names)
    if len(sources) > 1:
        return TaskFiles(problem=f"more than one solution file ({', '.join(sources)}): the "
                         "sandbox runs one program", names=names)
    module = sources[0].rsplit("/", 1)[-1].removesuffix(".py")
    if not _MODULE_NAME.fullmatch(module):
        return TaskFiles(problem=f"the solution file name {sources[0]!r} is not a module name",
                         names=names)
    return TaskFiles(module, files[sources[0]], files[tests[0]], _packages(answer), names=names)


def _packages(answer: str) -> tuple[str, ...]:
    """The ``packages`` of the answer's JSON tail (none when it is missing or malformed)."""
    found = _JSON.search(answer)
    if not found:
        return ()
    try:
        listed = json.loads(found.group(1)).get("packages") or []
    except (json.JSONDecodeError, AttributeError):
        return ()
    return tuple(str(p) for p in listed if isinstance(p, str) and p.strip())


def static_problem(files: TaskFiles, allowed: tuple[str, ...]) -> str | None:
    """Why the files cannot make a task before anything runs: a file that does not parse, a test
    file that does not import the solution module or defines no test, a package the sandbox does
    not provide (``allowed``: importable besides the standard library)."""
    trees = {}
    for what, text in (("the solution", files.solution), ("the test file", files.test)):
        try:
            trees[what] = ast.parse(text)
        except (SyntaxError, ValueError) as e:
            line = f" line {e.lineno}" if getattr(e, "lineno", None) else ""
            return f"{what} does not parse: {type(e).__name__}: {getattr(e, 'msg', e)}{line}"
    if files.module not in imported_modules(trees["the test file"]):
        return f"{TEST_FILE_BROKEN}: it does not import the solution module `{files.module}`"
    if not defines_tests(trees["the test file"]):
        return f"{TEST_FILE_BROKEN}: it defines no unittest.TestCase class with test_ methods"
    needed = set(files.packages) | imported_modules(trees["the solution"]) | imported_modules(
        trees["the test file"])
    missing = sorted(p for p in needed - {files.module} if not _available(p, allowed))
    if missing:
        return f"needs packages the sandbox does not provide: {', '.join(missing)}"
    return None


def imported_modules(tree: ast.AST) -> set[str]:
    """Top-level names of every module a file imports (at any depth; relative imports skipped)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def defines_tests(tree: ast.Module) -> bool:
    """A class deriving from (unittest.)TestCase with a ``test*`` method."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        bases = {ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases}
        methods = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                   and n.name.startswith("test")]
        if bases & {"TestCase", "IsolatedAsyncioTestCase"} and methods:
            return True
    return False


def _available(package: str, allowed: tuple[str, ...]) -> bool:
    name = package.split(".")[0].split("[")[0].replace("-", "_")
    return name in sys.stdlib_module_names or name in allowed


# The judge's test code: {source} is the test file as a string literal, {module} its module name.
_JUDGE_TESTS = '''\
import sys as _ft_sys, types as _ft_types
_ft_globals = globals()


def _ft_attribute(name):
    if name in _ft_globals and not name.startswith("_ft_"):
        return _ft_globals[name]
    raise AttributeError(f"module {module!r} has no function {{name!r}} (only the program's "
                         "functions cross the sandbox boundary, by proxy)")


_ft_module = _ft_types.ModuleType({module!r})
_ft_module.__getattr__ = _ft_attribute
_ft_sys.modules[{module!r}] = _ft_module
__name__ = "test"
try:
    exec(compile({source!r}, "test.py", "exec"), _ft_globals)
except BaseException as _ft_error:
    # the program's own exceptions, exits and unsendable answers are the program's verdict
    if hasattr(_ft_error, "_faulttune_program_exception") or type(_ft_error).__name__ in (
            "ProgramExited", "Unreturnable"):
        raise
    _ft_tb, _ft_line = _ft_error.__traceback__, None
    while _ft_tb is not None:
        if _ft_tb.tb_frame.f_code.co_filename == "test.py":
            _ft_line = _ft_tb.tb_lineno
        _ft_tb = _ft_tb.tb_next
    _ft_why = ("{broken}: " + type(_ft_error).__name__ + ": " + str(_ft_error)[:300]
               + (f" (test.py line {{_ft_line}})" if _ft_line else ""))
    raise RuntimeError(_ft_why) from None
import unittest as _ft_unittest
_ft_suite = _ft_unittest.TestSuite(
    _ft_unittest.TestLoader().loadTestsFromTestCase(_ft_case)
    for _ft_case in list(_ft_globals.values())
    if isinstance(_ft_case, type) and issubclass(_ft_case, _ft_unittest.TestCase)
    and _ft_case.__module__ == "test")
if not _ft_suite.countTestCases():
    raise RuntimeError("{broken}: it defines no test")
_ft_result = _ft_unittest.TestResult()
_ft_suite.run(_ft_result)
_ft_problems = [(_ft_t.id().split(".")[-1], (_ft_tb.strip().splitlines() or [""])[-1])
                for _ft_t, _ft_tb in _ft_result.failures + _ft_result.errors]
_ft_report = (f"{{len(_ft_problems)}}/{{_ft_result.testsRun}} tests failed: "
              + "; ".join(f"{{_ft_n}}: {{_ft_m}}" for _ft_n, _ft_m in _ft_problems))
assert not _ft_problems, _ft_report
'''


def judge_tests(test_file: str, module: str) -> str:
    """The judge's test code for a unittest file that imports ``module`` (module docstring)."""
    return _JUDGE_TESTS.format(source=test_file, module=module, broken=TEST_FILE_BROKEN)


# The coverage run: {solution}, {tests} as string literals, {module} the solution's module name.
_COVERAGE = '''\
import io, json, os, sys, tempfile, unittest
_folder = tempfile.mkdtemp()
_path = os.path.join(_folder, {module!r} + ".py")
with open(_path, "w") as _f:
    _f.write({solution!r})
with open(os.path.join(_folder, "_faulttune_test.py"), "w") as _f:
    _f.write({tests!r})
sys.path.insert(0, _folder)
import coverage
_cov = coverage.Coverage(data_file=None, include=[_path], config_file=False)
_report = {{}}
_cov.start()
try:
    _suite = unittest.defaultTestLoader.loadTestsFromModule(__import__("_faulttune_test"))
    _result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(_suite)
    _report.update(tests=_result.testsRun, failed=len(_result.failures) + len(_result.errors))
except BaseException as _e:
    _report["error"] = (type(_e).__name__ + ": " + str(_e))[:300]
finally:
    _cov.stop()
_, _statements, _, _missing, _ = _cov.analysis2(_path)
_report.update(statements=len(_statements), missing=len(_missing))
sys.stderr.write("\\n{mark}" + json.dumps(_report) + "\\n")
'''


def coverage_program(files: TaskFiles) -> str:
    """The program whose stderr ends with the coverage report of ``files`` (module docstring)."""
    return _COVERAGE.format(module=files.module, solution=files.solution, tests=files.test,
                            mark=COVERAGE_MARK)


def read_coverage(stderr_tail: str) -> dict[str, object] | None:
    """The report :func:`coverage_program` printed, or None when there is none."""
    for line in reversed(stderr_tail.splitlines()):
        if line.startswith(COVERAGE_MARK):
            try:
                report = json.loads(line[len(COVERAGE_MARK):])
            except json.JSONDecodeError:
                return None
            return report if isinstance(report, dict) else None
    return None
