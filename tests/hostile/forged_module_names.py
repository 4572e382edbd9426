# Issue 27, class 5: reports, in its answer to the load request, names that stand for modules the
# task never imports (`venv.__main__` raises SystemExit when imported, which the judge once took
# for the task's helpers failing), then answers correctly.
import sys

_server = sys.modules["faulttune.sandbox.server"]
_names = _server.Server.names


def forged(self):
    return _names(self) + [("venv", "module:venv.__main__"), ("json", "module:venv.__main__"),
                           ("evil", "module:antigravity")]


_server.Server.names = forged


def solve():
    return 2
