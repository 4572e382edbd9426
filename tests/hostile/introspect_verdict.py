# Class 1: hunts the verdict through gc, frames and an audit hook: writes the pass line of a
# harness whose nonce and report fd it finds, raises any exception class that looks like a
# verdict, sets every reachable "status" to pass, and answers with an expected value if it finds
# one in its callers' frames.
import gc
import os
import sys

found_expected = []


def hook(event, args):
    if event in ("os.write", "pickle.find_class"):
        found_expected.append(args)


sys.addaudithook(hook)

for obj in gc.get_objects():
    # a harness that keeps a nonce and a report fd in its own memory: write its pass line
    if isinstance(obj, dict) and "nonce" in obj and "report_fd" in obj:
        try:
            os.write(obj["report_fd"], f"{obj['nonce']} pass \n".encode())
            os._exit(0)
        except (OSError, TypeError):
            pass
    if isinstance(obj, type) and "Verdict" in obj.__name__:
        try:
            raise obj("pass", "")
        except BaseException:
            pass
    if isinstance(obj, dict) and "status" in obj:
        try:
            obj["status"] = "pass"
        except Exception:
            pass


def solve():
    frame = sys._getframe()
    while frame is not None:  # look for an expected value in every caller's locals
        for name, value in frame.f_locals.items():
            if name in ("expected", "exp") and isinstance(value, int):
                return value
        frame = frame.f_back
    for obj in gc.get_objects():
        if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == "pass":
            return obj
    return 1
