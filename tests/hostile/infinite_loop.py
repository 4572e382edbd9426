# Never returns.
def solve():
    while True:
        pass


solve()
