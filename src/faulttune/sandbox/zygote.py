"""In-jail code (standard library only): the fork server. One booted interpreter in a jail of its
own starts each program's server or judge as a fork, in namespaces of its own, so that a program
costs a fork and a few mounts instead of a fresh jail and interpreter (see :mod:`.forkserver`).

The zygote runs none of the programs' code. It keeps, inside its jail's user namespace, the
capabilities it needs to make namespaces and mounts; every program runs without any. For each
request (the program's pipes, passed over the control socket):

    zygote ──fork──▶ monitor: waits until the scorer has put it in the program's cgroup, then
                     new mount, PID, network, IPC, UTS and cgroup namespaces; private /tmp, /dev/shm
                      └─fork─▶ init (PID 1): its own /proc, loopback up, every capability dropped
                                └─fork─▶ the server or judge (PID 2): a new session, only its
                                         pipes open, no new privileges, the system-call filter

as a bwrap jail is laid out (bwrap, its init, the command). The monitor tells the scorer how the
init ended (a 4-byte status: the exit code, or 128 + the signal) over the program's own status
socket. Killing the init kills every process of the program's PID namespace.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import fcntl
import gc
import os
import signal
import socket
import struct
import sys
import traceback

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x08000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 0x1, 0x2, 0x4, 0x8, 0x20
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
_PROC_COVERS = (b"/proc/sys", b"/proc/sysrq-trigger", b"/proc/irq", b"/proc/bus")
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_CAPBSET_DROP = 1, 4, 22, 24
PR_SET_NO_NEW_PRIVS, SECCOMP_MODE_FILTER = 38, 2
ROLES = {b"S": "server", b"J": "judge"}
FDS_PER_REQUEST = 5  # request (read end), reply (write end), stdout, stderr, status socket

_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: bytes, target: bytes, kind: bytes | None, flags: int,
           data: bytes | None = None) -> None:
    _check(_libc.mount(source, target, kind, flags, data), f"mount {target.decode()}")


def _drop_capabilities() -> None:
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the kernel's last capability
    _check(_libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), (_CapData * 2)()), "capset")


def _loopback_up() -> None:
    """As bwrap does: the jail's own loopback, up (no route leaves the namespace)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, 0x8913, request))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 0x1))  # SIOCSIFFLAGS, IFF_UP


def _install_filter(program: bytes) -> None:
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buffer))
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")


def _exit_code(status: int) -> int:
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _server(role: str, fds: list[int], owner: str, program: bytes) -> None:
    """The program's server or judge: PID 2, its pipes as fds 3 and 4, stdin from /dev/null."""
    request, reply, out, err, _ = fds
    os.setsid()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as a new interpreter has it
    null = os.open("/dev/null", os.O_RDONLY)
    # first out of the way of fds 0-4 (a source may be another's target), then into place
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (null, out, err, request, reply)]
    for target, source in enumerate(moved):
        os.dup2(source, target)
    os.closerange(5, os.sysconf("SC_OPEN_MAX"))
    os.chdir("/tmp")
    _install_filter(program)
    sys.modules["faulttune.sandbox." + role].main(["3", "4", "jail", owner])


def _enter_own_user_namespace(monitor: socket.socket) -> None:
    """A user namespace of the program's own, made after the mounts (which it then cannot
    change), as bwrap makes one per jail: the kernel counts the processes of each program
    apart (``RLIMIT_NPROC``), and under a scorer run by root the program is a random
    unprivileged uid (bwrap's ``--uid``). Its map is written by the monitor, which holds
    ``CAP_SETFCAP`` where it is."""
    _check(_libc.unshare(CLONE_NEWUSER), "unshare user")
    _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # the monitor must open our map files
    monitor.sendall(b"u")
    uid = int.from_bytes(receive_exact(monitor, 4), "big")
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def _map_user_namespace(channel: socket.socket, random_uid: bool) -> None:
    """The monitor's half: the init has mounted its namespace's /proc over the one the monitor
    shares with it, where the init is PID 1. The program keeps the uid it has here, or gets a
    random one."""
    if channel.recv(1) != b"u":
        return
    uid = os.geteuid()
    if random_uid:
        uid = 1_000_000 + int.from_bytes(os.urandom(4), "big") % 1_000_000_000
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {os.geteuid()} 1"),
                       ("gid_map", f"{uid} {os.getegid()} 1")):
        fd = os.open(f"/proc/1/{name}", os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    channel.sendall(uid.to_bytes(4, "big"))


def receive_exact(sock: socket.socket, size: int, sender: str = "the monitor") -> bytes:
    """``size`` bytes from ``sock``, or OSError when ``sender`` closes its end first (the scorer's
    side of the zygote's socket uses it too)."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError(f"{sender} has gone")
        data += chunk
    return data


def _init(role: str, fds: list[int], owner: str, program: bytes,
          monitor: socket.socket) -> None:
    """PID 1 of the program's namespace: starts the server, reaps what ends, and ends with it."""
    _mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for cover in _PROC_COVERS:  # read-only, as bwrap leaves them
        if os.path.exists(cover):
            _mount(cover, cover, None, MS_BIND | MS_REC)
            _mount(cover, cover, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _loopback_up()
    _drop_capabilities()
    _enter_own_user_namespace(monitor)
    monitor.close()
    _drop_capabilities()  # those the new user namespace gave
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    # as PID 1 it gets only the signals it handles from inside its namespace: none
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    server = os.fork()
    if server == 0:
        _run_or_exit(_server, role, fds, owner, program)
    os.closerange(0, os.sysconf("SC_OPEN_MAX"))
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == server:
            os._exit(_exit_code(status))


def _monitor(role: str, fds: list[int], owner: str, program: bytes, tmpfs: str,
             random_uid: bool) -> None:
    """Between the zygote and the program: the namespaces, the private folders, the status."""
    status = socket.socket(fileno=fds[4])
    os.dup2(fds[3], 2)  # what goes wrong from here on is in the program's stderr
    os.setsid()
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    if status.recv(1) != b"g":  # the scorer has put this process in the program's cgroup
        os._exit(1)
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
                         | CLONE_NEWCGROUP), "unshare")
    _mount(b"none", b"/", None, MS_REC | MS_PRIVATE)
    for folder in (b"/tmp", b"/dev/shm"):
        _mount(b"tmpfs", folder, b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=1777,size=" + tmpfs.encode())
    ours, theirs = socket.socketpair()
    init = os.fork()
    if init == 0:
        ours.close()
        _run_or_exit(_init, role, fds, owner, program, theirs)
    for fd in fds[:4]:
        os.close(fd)
    theirs.close()
    _map_user_namespace(ours, random_uid)
    ours.close()
    _, code = os.waitpid(init, 0)
    status.sendall(_exit_code(code).to_bytes(4, "big"))
    os._exit(0)


def _run_or_exit(step, *args) -> None:  # type: ignore[no-untyped-def]
    """Run one forked process's part and end the process as an interpreter would end (0, the
    code of a SystemExit, 1 after an exception's traceback): it never returns to the zygote's
    code."""
    code = 1
    try:
        step(*args)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    except BaseException:  # noqa: BLE001 - reported, then this process ends
        with contextlib.suppress(BaseException):
            os.write(2, ("faulttune zygote: " + traceback.format_exc()).encode())
    finally:
        os._exit(code)


def _receive(control: socket.socket) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    message, ancillary, _, _ = control.recvmsg(1, socket.CMSG_SPACE(FDS_PER_REQUEST * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return message, list(fds)


def main(argv: list[str]) -> None:
    """``argv``: the control socket's fd (twice), "jail", the fd of the system-call filter, the
    size of each program's /tmp and /dev/shm (bytes), "uid" where each program runs as a random
    uid of its own user namespace (a scorer run by root) or "-", and the scorer's pid."""
    control = socket.socket(fileno=int(argv[0]))
    program_fd, tmpfs, random_uid, owner = int(argv[3]), argv[4], argv[5] == "uid", argv[6]
    program = os.pread(program_fd, 1 << 20, 0)
    os.close(program_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # monitors are reaped by the kernel
    gc.freeze()  # the collector of a fork then leaves the zygote's objects (and pages) alone
    control.sendall(b"H")
    while True:
        message, fds = _receive(control)
        if not message:
            os._exit(0)  # the scorer has gone
        if message not in ROLES or len(fds) != FDS_PER_REQUEST:
            os._exit(72)
        monitor = os.fork()
        if monitor == 0:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _run_or_exit(_monitor, ROLES[message], fds, owner, program, tmpfs, random_uid)
        for fd in fds:
            os.close(fd)
        control.sendall(monitor.to_bytes(4, "big"))
