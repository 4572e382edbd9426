"""CCT's three bug families: each candidate is exactly one edit of the source text."""

from __future__ import annotations

import random

import pytest

from faulttune.bugs import ast_key
from faulttune.bugs.cct import FAMILIES, candidate_edits, inject, twins

# A comment and odd spacing that ast.unparse would lose: edits must keep them.
ADD = "def add(a, b):\n    return a  +  b  # sum\n"


def all_twins(source: str, family: str) -> set[str]:
    return {edit.apply(source) for edit in candidate_edits(source, family)}


def test_operator_misuse_swaps_within_the_arithmetic_class_only():
    expected = {f"def add(a, b):\n    return a  {op}  b  # sum\n"
                for op in ("-", "*", "/", "//", "%", "**")}
    assert all_twins(ADD, "operator_misuse") == expected


def test_operator_misuse_comparison_identity_membership_boolean_augmented():
    src = ("def f(x, xs):\n"
           "    if x is not None and x in xs:\n"
           "        x += 1\n"
           "    return x <= 3\n")
    got = all_twins(src, "operator_misuse")
    line2 = "def f(x, xs):\n    if {}:\n        x += 1\n    return x <= 3\n"
    line3 = "def f(x, xs):\n    if x is not None and x in xs:\n        x {} 1\n    return x <= 3\n"
    line4 = "def f(x, xs):\n    if x is not None and x in xs:\n        x += 1\n    return x {} 3\n"
    expected = {line2.format("x is None and x in xs"), line2.format("x is not None or x in xs"),
                line2.format("x is not None and x not in xs")}
    expected |= {line3.format(op) for op in ("-=", "*=", "/=", "//=", "%=", "**=")}
    expected |= {line4.format(op) for op in ("<", ">", ">=", "==", "!=")}
    assert got == expected


def test_operator_position_is_the_operator_token_even_across_parentheses():
    src = "y = (a + 1) * (b)\n"
    edits = candidate_edits(src, "operator_misuse")
    star = [e for e in edits if e.before == "*"]
    assert {(e.line, e.col) for e in star} == {(1, 12)}
    assert "y = (a + 1) // (b)\n" in {e.apply(src) for e in star}


def test_variable_misuse_replaces_one_load_by_another_variable_in_scope():
    # `len` is a builtin and `helper`'s names are another scope: neither may be used.
    src = ("def helper(z):\n"
           "    return z\n"
           "\n"
           "def f(a, b):\n"
           "    c = a\n"
           "    return len(b) + c\n")
    head = "def helper(z):\n    return z\n\ndef f(a, b):\n"
    expected = {head + "    c = b\n    return len(b) + c\n",
                head + "    c = c\n    return len(b) + c\n",
                head + "    c = a\n    return len(a) + c\n",
                head + "    c = a\n    return len(c) + c\n",
                head + "    c = a\n    return len(b) + a\n",
                head + "    c = a\n    return len(b) + b\n"}
    # `return z` has no other variable in scope (only module-level names would be candidates)
    assert all_twins(src, "variable_misuse") == expected


def test_function_missing_drops_calls_removes_statements_and_replaces_callees():
    src = ("def f(xs):\n"
           "    xs.sort()  # in place\n"
           "    log(xs)\n"
           "    return max(abs(xs[0]), 1)\n")
    got = all_twins(src, "function_missing")
    expected = {
        # drop_call: s.sort() -> s ; log(xs) -> xs ; abs(xs[0]) -> xs[0]
        "def f(xs):\n    xs  # in place\n    log(xs)\n    return max(abs(xs[0]), 1)\n",
        "def f(xs):\n    xs.sort()  # in place\n    xs\n    return max(abs(xs[0]), 1)\n",
        "def f(xs):\n    xs.sort()  # in place\n    log(xs)\n    return max(xs[0], 1)\n",
        # remove_call_statement
        "def f(xs):\n    log(xs)\n    return max(abs(xs[0]), 1)\n",
        "def f(xs):\n    xs.sort()  # in place\n    return max(abs(xs[0]), 1)\n",
    }
    head = "def f(xs):\n    xs.sort()  # in place\n"
    # replace_callee: each plain callee by another called or defined function (f, log, max, abs);
    # `sort` is the only method called, so it has no replacement
    for other in ("abs", "f", "max"):
        expected.add(head + f"    {other}(xs)\n    return max(abs(xs[0]), 1)\n")
    for other in ("abs", "f", "log"):
        expected.add(head + f"    log(xs)\n    return {other}(abs(xs[0]), 1)\n")
    for other in ("f", "log", "max"):
        expected.add(head + f"    log(xs)\n    return max({other}(xs[0]), 1)\n")
    assert len(expected) == 14
    assert got == expected


def test_removing_the_only_statement_of_a_block_leaves_pass():
    src = "def f(x):\n    if x:\n        print(x)\n    return x\n"
    removed = [e for e in candidate_edits(src, "function_missing")
               if e.kind == "remove_call_statement"]
    assert [e.apply(src) for e in removed] == ["def f(x):\n    if x:\n        pass\n    return x\n"]


def test_non_ascii_text_before_an_edit_keeps_character_positions():
    src = 'def f(a, b):\n    s = "é€" + a\n    return s\n'
    twins_text = all_twins(src, "operator_misuse")
    assert 'def f(a, b):\n    s = "é€" - a\n    return s\n' in twins_text


def test_inject_is_seeded_single_edit_and_changes_the_ast():
    src = ("def f(xs, k):\n    total = 0\n    for x in xs:\n        if x > k:\n"
           "            total += x\n    return total\n")
    for family in FAMILIES:
        first = inject(src, family, random.Random(7), k=3)
        again = inject(src, family, random.Random(7), k=3)
        assert [t for _, t in first] == [t for _, t in again]
        for edit, twin in first:
            assert edit.family == family
            assert twin == src[:edit.start] + edit.replacement + src[edit.end:]
            assert ast_key(twin) != ast_key(src)
        assert len({ast_key(t) for _, t in first}) == len(first)


def test_twins_gives_per_family_twins_and_skips_families_without_sites():
    src = "def f(a, b):\n    return a + b\n"
    made = twins(src, seed=1, per_family=2)
    families = [e.family for e, _ in made]
    assert families.count("operator_misuse") == 2
    assert families.count("variable_misuse") == 2
    assert "function_missing" not in families  # no call in the snippet


def test_unknown_family_and_unparsable_source_raise():
    with pytest.raises(ValueError, match="unknown CCT family"):
        candidate_edits(ADD, "typo")
    with pytest.raises(SyntaxError):
        candidate_edits("def f(:\n", "operator_misuse")


# A HumanEval-style task: the prompt gives a helper and the signature; the model writes the body.
HELPER_PROMPT = ('def helper(a, b):\n    return max(a + b, a - b)\n\n\n'
                 'def solve(xs, y):\n    """Sum xs, then add y."""\n')
HELPER_BODY = "    total = sum(xs) * y\n    return helper(total, y)\n"


@pytest.mark.parametrize("family", FAMILIES)
def test_edits_start_at_the_code_the_model_writes(family):
    from faulttune.bugs import completion_start

    src = HELPER_PROMPT + HELPER_BODY
    start = completion_start(HELPER_PROMPT, src)
    assert start == len(HELPER_PROMPT)
    everywhere = candidate_edits(src, family)
    assert any(e.start < start for e in everywhere)  # the helper has sites of every family
    kept = candidate_edits(src, family, start)
    assert kept == [e for e in everywhere if e.start >= start] and kept
    for _, twin in twins(src, seed=3, per_family=5, families=[family], start=start):
        assert twin.startswith(HELPER_PROMPT) and twin != src


def test_a_prose_instruction_leaves_the_whole_program_to_the_model():
    from faulttune.bugs import completion_start

    assert completion_start("Sum xs, then add y.", HELPER_PROMPT + HELPER_BODY) == 0
    assert completion_start("", HELPER_BODY) == 0
