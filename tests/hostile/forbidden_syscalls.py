# Issue 27, class 7: system calls a benchmark program never needs, tried from inside the jail:
# what each returned (0: it worked, else the errno). NUMBERS maps names to this machine's numbers.
import ctypes
import os
import socket

NUMBERS = []  # replaced by the test
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _call(nr, *args):
    result = _libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return 0 if result >= 0 else ctypes.get_errno()


def _errno(action):
    try:
        action()
    except OSError as e:
        return e.errno
    return 0


def solve():
    found = {
        "ptrace": _call(NUMBERS["ptrace"], 0, 0, 0, 0),  # PTRACE_TRACEME
        "bpf": _call(NUMBERS["bpf"], 0, 0, 0),
        "perf_event_open": _call(NUMBERS["perf_event_open"], 0, 0, -1, -1, 0),
        "userfaultfd": _call(NUMBERS["userfaultfd"], 0),
        "keyctl": _call(NUMBERS["keyctl"], 0, -3, 0),  # KEYCTL_GET_KEYRING_ID, session keyring
        "io_uring_setup": _call(NUMBERS["io_uring_setup"], 1, 0),
        "unshare": _call(NUMBERS["unshare"], 0x10000000),  # CLONE_NEWUSER
        "sched_setaffinity": _errno(lambda: os.sched_setaffinity(0, range(os.cpu_count() or 1))),
        "AF_VSOCK": _errno(lambda: socket.socket(40, socket.SOCK_STREAM).close()),
        "AF_NETLINK": _errno(lambda: socket.socket(16, socket.SOCK_RAW, 0).close()),
        "AF_PACKET": _errno(lambda: socket.socket(17, socket.SOCK_RAW, 0).close()),
    }
    # what a program does need still works
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.close()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    found["fork"] = os.waitpid(pid, 0)[1]
    return found
