"""What the weak fallback adds inside the program's process when no jail surrounds it.

Without user namespaces there is no private network, PID or mount namespace: the program keeps
the caller's file permissions and can reach the network through ``_socket`` or ``ctypes``. This
only makes honest mistakes fail loudly and ties the process to its scorer. Standard library only.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when the scorer's thread that started it ends."""
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the scorer died before the signal was armed
        os._exit(70)


def disable_sockets() -> None:
    """Refuse the socket module's connecting and binding calls (``_socket`` still works)."""
    import socket

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError("network access is disabled in the sandbox")

    for name in ("connect", "connect_ex", "bind", "sendto", "sendmsg"):
        setattr(socket.socket, name, refuse)
    socket.create_connection = refuse  # type: ignore[assignment]
    socket.getaddrinfo = refuse  # type: ignore[assignment]


def apply(parent: int) -> None:
    die_with_parent(parent)
    disable_sockets()
