# Connects to a loopback port (PORT is filled in by the test) and sends a message.
import socket

PORT = 0  # replaced by the test


def solve():
    with socket.create_connection(("127.0.0.1", PORT), timeout=2) as conn:
        conn.sendall(b"escaped")
    return 2


solve()
