"""The jail's system-call filter: a classic BPF program that bubblewrap installs (``--seccomp``)
before the interpreter starts, for the program's and the judge's processes alike.

What a Python program needs for the benchmarks is allowed; refused are (anchored on the default
lists of Flatpak and Docker):

* with EPERM: debugging and reading other processes (``ptrace``, ``process_vm_*``, ``kcmp``,
  ``pidfd_getfd``), kernel interfaces a program has no use for and that widen the kernel's attack
  surface (``bpf``, ``perf_event_open``, ``userfaultfd``, ``keyctl`` and the key calls,
  ``io_uring_*``, ``memfd_secret``, NUMA placement), modules, kexec, mounts and namespaces
  (``mount``, the new mount API, ``unshare``, ``setns``, ``clone`` with a namespace flag), clock
  and system settings, ``personality``, ``sched_setaffinity`` (the jail's CPU bound where no
  cgroup holds it);
* sockets of any family but ``AF_UNIX``, ``AF_INET``, ``AF_INET6`` (``AF_VSOCK``, the door from a
  virtual machine to its host, ``AF_NETLINK``, ``AF_PACKET`` ...): EAFNOSUPPORT;
* with ENOSYS (so that the C library falls back, as it does on older kernels): ``clone3``, whose
  flags a filter cannot read, and every system call newer than this table;
* another architecture's calls (x32, i386 on x86_64): the process is killed.

Standard library only; the numbers are the kernel's (x86_64: ``asm/unistd_64.h``, aarch64:
``asm-generic/unistd.h``, Linux 6.1). On other architectures there is no filter
(:func:`program` returns None) and the jail says so.
"""

from __future__ import annotations

import functools
import platform
import struct

# the denied calls, by name; each architecture's numbers below
DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "bpf",
    "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "memfd_secret", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "create_module", "get_kernel_syms",
    "query_module", "mount", "umount2", "pivot_root", "chroot", "mount_setattr", "move_mount",
    "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "unshare", "setns", "swapon",
    "swapoff", "reboot", "acct", "quotactl", "quotactl_fd", "syslog", "uselib", "personality",
    "vhangup", "lookup_dcookie", "open_by_handle_at", "name_to_handle_at", "fanotify_init",
    "move_pages", "mbind", "migrate_pages", "set_mempolicy", "set_mempolicy_home_node",
    "clock_settime", "clock_adjtime", "settimeofday", "adjtimex", "iopl", "ioperm", "modify_ldt",
    "nfsservctl", "_sysctl", "sched_setaffinity", "tuxcall", "security", "afs_syscall",
    "putpmsg", "getpmsg", "vserver",
)


def numbers(arch: str) -> dict[str, int]:
    """System-call numbers of ``arch`` by name (those the filter names)."""
    return dict(_numbers()[arch])


@functools.cache
def _numbers() -> dict[str, dict[str, int]]:
    x86_64 = dict(zip(DENIED, (
        101, 310, 311, 312, 438, 321, 298, 323, 250, 248, 249, 425, 426, 427, 447, 246, 320, 175,
        313, 176, 174, 177, 178, 165, 166, 155, 161, 442, 429, 428, 430, 431, 432, 433, 272, 308,
        167, 168, 169, 163, 179, 443, 103, 134, 135, 153, 212, 304, 303, 300, 279, 237, 256, 238,
        450, 227, 305, 164, 159, 172, 173, 154, 180, 156, 203, 184, 185, 183, 182, 181, 236)))
    x86_64.update(socket=41, socketpair=53, clone=56, clone3=435)
    aarch64 = dict(zip(DENIED, (
        117, 270, 271, 272, 438, 280, 241, 282, 219, 217, 218, 425, 426, 427, 447, 104, 294, 105,
        273, 106, -1, -1, -1, 40, 39, 41, 51, 442, 429, 428, 430, 431, 432, 433, 97, 268, 224,
        225, 142, 89, 60, 443, 116, -1, 92, 58, 18, 265, 264, 262, 239, 235, 238, 237, 450, 112,
        266, 170, 171, -1, -1, -1, 42, -1, 122, -1, -1, -1, -1, -1, -1)))
    aarch64 = {name: nr for name, nr in aarch64.items() if nr >= 0}
    aarch64.update(socket=198, socketpair=199, clone=220, clone3=435)
    return {"x86_64": x86_64, "aarch64": aarch64}


AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
NEWEST = 450  # set_mempolicy_home_node, Linux 6.1: anything later is ENOSYS
X32_BIT = 0x40000000
ALLOWED_FAMILIES = (1, 2, 10)  # AF_UNIX, AF_INET, AF_INET6
NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
EPERM, ENOSYS, EAFNOSUPPORT = 1, 38, 97

# classic BPF (linux/filter.h, linux/seccomp.h)
LD_ABS, JEQ, JGT, JSET, RET = 0x20, 0x15, 0x25, 0x45, 0x06
RET_ALLOW, RET_ERRNO, RET_KILL = 0x7FFF0000, 0x00050000, 0x80000000
NR, ARCH, ARG0 = 0, 4, 16  # offsets in struct seccomp_data (the low half of args[0], little-endian)

Instruction = tuple[int, str, str, int]  # code, label if true, label if false ("": next), k


def assemble(lines: list[Instruction | str]) -> bytes:
    """``struct sock_filter`` array of ``lines``: instructions, and labels (strings) that jumps
    name; a jump's offset must fit in 0..255 instructions."""
    places: dict[str, int] = {}
    code: list[Instruction] = []
    for line in lines:
        if isinstance(line, str):
            places[line] = len(code)
        else:
            code.append(line)
    out = []
    for i, (op, if_true, if_false, k) in enumerate(code):
        jumps = []
        for label in (if_true, if_false):
            offset = places[label] - i - 1 if label else 0
            if not 0 <= offset <= 255:
                raise ValueError(f"jump to {label!r} from instruction {i} is out of range")
            jumps.append(offset)
        out.append(struct.pack("=HBBI", op, jumps[0], jumps[1], k))
    return b"".join(out)


def instructions(arch: str) -> list[Instruction | str]:
    """The filter for ``arch`` ("x86_64" or "aarch64") as labelled instructions."""
    numbers = _numbers()[arch]
    lines: list[Instruction | str] = [
        (LD_ABS, "", "", ARCH), (JEQ, "", "kill", AUDIT_ARCH[arch]), (LD_ABS, "", "", NR)]
    if arch == "x86_64":
        lines.append((JSET, "kill", "", X32_BIT))
    lines.append((JGT, "enosys", "", NEWEST))
    lines += [(JEQ, "eperm", "", numbers[name]) for name in DENIED if name in numbers]
    lines += [(JEQ, "enosys", "", numbers["clone3"]), (JEQ, "family", "", numbers["socket"]),
              (JEQ, "family", "", numbers["socketpair"]), (JEQ, "clone", "", numbers["clone"]),
              (RET, "", "", RET_ALLOW),
              "family", (LD_ABS, "", "", ARG0)]
    lines += [(JEQ, "allow", "", family) for family in ALLOWED_FAMILIES]
    lines += [(RET, "", "", RET_ERRNO | EAFNOSUPPORT),
              "clone", (LD_ABS, "", "", ARG0), (JSET, "eperm", "", NAMESPACE_FLAGS),
              "allow", (RET, "", "", RET_ALLOW),
              "eperm", (RET, "", "", RET_ERRNO | EPERM),
              "enosys", (RET, "", "", RET_ERRNO | ENOSYS),
              "kill", (RET, "", "", RET_KILL)]
    return lines


def machine() -> str:
    name = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(name, name)


@functools.cache
def program() -> bytes | None:
    """The filter for this machine, or None where there is none (another architecture)."""
    arch = machine()
    return assemble(instructions(arch)) if arch in AUDIT_ARCH else None
