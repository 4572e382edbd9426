# Writes to stdout and stderr without end.
import sys


def solve():
    line = "x" * 10_000
    while True:
        print(line)
        sys.stderr.write(line + "\n")


solve()
