# Exponential backtracking inside the C regex engine: no Python signal handler can interrupt it.
import re


def solve():
    return re.match(r"(a+)+$", "a" * 64 + "b")


solve()
