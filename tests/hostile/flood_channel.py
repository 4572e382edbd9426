# Class 6: announces a 2 GiB frame on every file descriptor and writes garbage after it.
import os

for fd in range(1, 64):
    try:
        os.write(fd, (2**31 - 1).to_bytes(4, "big") + b"R" + b"\xff" * 65536)
    except OSError:
        pass


def solve():
    return 1
