# Class 1: writes well-formed "pass" frames of every kind the harness might use to every file
# descriptor, from the top level and from a background thread, then answers wrongly.
import os
import pickle
import threading


def frames():
    for kind in (b"V", b"R", b"O", b"H"):
        for body in (pickle.dumps(("pass", "")), pickle.dumps(2), pickle.dumps([("solve", "callable")])):
            data = kind + body
            yield len(data).to_bytes(4, "big") + data


def spray():
    for fd in range(0, 64):
        for frame in frames():
            try:
                os.write(fd, frame)
            except OSError:
                pass


spray()
threading.Thread(target=lambda: [spray() for _ in range(50)], daemon=True).start()


def solve():
    spray()
    return 1
