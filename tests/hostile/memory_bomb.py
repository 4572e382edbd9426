# Asks for 64 GiB at once.
def solve():
    return bytearray(64 * 1024**3)


solve()
