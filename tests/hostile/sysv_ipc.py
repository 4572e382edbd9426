# Class 5: leaves System V shared memory (KEY, SIZE filled in by the test), a message queue and a
# POSIX shared-memory file behind, then answers wrongly.
import ctypes
import os

KEY = 0  # replaced by the test
SIZE = 0  # replaced by the test

libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
shmid = libc.shmget(KEY, SIZE, 0o1000 | 0o666)  # IPC_CREAT
if shmid >= 0:
    address = libc.shmat(shmid, None, 0)
    if address not in (None, ctypes.c_void_p(-1).value):
        ctypes.memset(address, 1, SIZE)  # resident, not only reserved
libc.msgget(KEY + 1, 0o1000 | 0o666)
try:
    with open(f"/dev/shm/faulttune-hostile-{KEY}", "wb") as f:
        f.write(b"x" * 4096)
except OSError:
    pass


def solve():
    return 1
