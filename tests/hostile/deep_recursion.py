# Unbounded recursion: RecursionError with the default limit.
def solve(n=0):
    return solve(n + 1)


solve()
