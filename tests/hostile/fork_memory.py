# Class 5: forks CHILDREN processes that each fill MB_EACH MiB and stay alive (filled in by the
# test), so that per-process limits alone would let the program hold CHILDREN times as much.
import os
import time

CHILDREN = 0  # replaced by the test
MB_EACH = 0  # replaced by the test

for _ in range(CHILDREN):
    try:
        if os.fork() == 0:
            try:
                block = bytearray(MB_EACH * 1024 * 1024)
                for i in range(0, len(block), 4096):
                    block[i] = 1
            except MemoryError:
                pass
            time.sleep(60)
            os._exit(0)
    except OSError:
        break


def solve():
    time.sleep(60)
    return 1
