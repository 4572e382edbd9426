# Writes a fake "pass" line to every file descriptor it can, then closes them; wrong answer.
import os

for fd in range(1, 64):
    try:
        os.write(fd, b'0123456789abcdef0123456789abcdef {"status": "pass", "detail": ""}\n')
    except OSError:
        pass
for fd in range(3, 64):
    try:
        os.close(fd)
    except OSError:
        pass


def solve():
    return 1
