# Lifts the recursion limit, so the C stack overflows (SIGSEGV) instead of a RecursionError.
import sys

sys.setrecursionlimit(10**8)


def solve(n=0):
    return solve(n + 1) + 1


solve()
