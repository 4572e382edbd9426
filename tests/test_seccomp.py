"""faulttune.sandbox.seccomp: the jail's filter, run here by a small classic-BPF interpreter on
hand-picked calls (the jail tests in test_jail.py make the same calls in a real jail)."""

from __future__ import annotations

import struct

import pytest

from faulttune.sandbox import seccomp


def run_filter(program: bytes, nr: int, arch: int, arg0: int = 0) -> int:
    """What the kernel would do: the classic BPF machine over struct seccomp_data."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    code = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        op, jt, jf, k = code[pc]
        if op == seccomp.LD_ABS:
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif op == seccomp.RET:
            return k
        else:
            taken = {seccomp.JEQ: acc == k, seccomp.JGT: acc > k, seccomp.JSET: bool(acc & k)}[op]
            pc += 1 + (jt if taken else jf)


ALLOW, KILL = seccomp.RET_ALLOW, seccomp.RET_KILL
EPERM, ENOSYS = seccomp.RET_ERRNO | 1, seccomp.RET_ERRNO | 38
EAFNOSUPPORT = seccomp.RET_ERRNO | 97
X86 = seccomp.AUDIT_ARCH["x86_64"]


@pytest.mark.parametrize("nr, arg0, verdict", [
    (0, 0, ALLOW),  # read
    (9, 0, ALLOW),  # mmap
    (57, 0, ALLOW),  # fork
    (58, 0, ALLOW),  # vfork
    (59, 0, ALLOW),  # execve
    (334, 0, ALLOW),  # rseq
    (101, 0, EPERM),  # ptrace
    (321, 0, EPERM),  # bpf
    (298, 0, EPERM),  # perf_event_open
    (323, 0, EPERM),  # userfaultfd
    (250, 0, EPERM),  # keyctl
    (425, 0, EPERM),  # io_uring_setup
    (272, 0, EPERM),  # unshare
    (203, 0, EPERM),  # sched_setaffinity
    (41, 1, ALLOW), (41, 2, ALLOW), (41, 10, ALLOW),  # socket: AF_UNIX, AF_INET, AF_INET6
    (41, 40, EAFNOSUPPORT), (41, 16, EAFNOSUPPORT), (41, 17, EAFNOSUPPORT),  # VSOCK, NETLINK, PACKET
    (53, 40, EAFNOSUPPORT), (53, 1, ALLOW),  # socketpair
    (56, 0x003D0F00, ALLOW),  # clone as pthread_create calls it
    (56, 0x01200011, ALLOW),  # clone as fork calls it (CHILD_SETTID | CHILD_CLEARTID | SIGCHLD)
    (56, 0x10000000 | 17, EPERM),  # clone(CLONE_NEWUSER)
    (56, 0x40000000 | 17, EPERM),  # clone(CLONE_NEWNET)
    (435, 0, ENOSYS),  # clone3: its flags cannot be read, glibc falls back to clone
    (451, 0, ENOSYS), (1000, 0, ENOSYS),  # newer than the table
    (0x40000000 | 0, 0, KILL),  # x32
])
def test_x86_64_filter(nr, arg0, verdict):
    program = seccomp.assemble(seccomp.instructions("x86_64"))
    assert run_filter(program, nr, X86, arg0) == verdict


def test_another_architecture_is_killed_and_aarch64_has_its_own_numbers():
    x86 = seccomp.assemble(seccomp.instructions("x86_64"))
    assert run_filter(x86, 0, 0x40000003) == KILL  # i386 through int 0x80
    arm = seccomp.assemble(seccomp.instructions("aarch64"))
    aarch64 = seccomp.AUDIT_ARCH["aarch64"]
    assert run_filter(arm, 117, aarch64) == EPERM  # ptrace
    assert run_filter(arm, 63, aarch64) == ALLOW  # read
    assert run_filter(arm, 198, aarch64, 40) == EAFNOSUPPORT  # socket(AF_VSOCK)
    assert run_filter(arm, 101, aarch64) == ALLOW  # nanosleep (ptrace's number on x86_64)


def test_jumps_out_of_range_are_refused():
    far: list = [(seccomp.JEQ, "end", "", 1)] + [(seccomp.RET, "", "", 0)] * 300 + ["end",
                                                                                  (seccomp.RET, "", "", 0)]
    with pytest.raises(ValueError, match="out of range"):
        seccomp.assemble(far)
