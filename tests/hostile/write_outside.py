# Tries to create TARGETS (filled in by the test) outside its temporary folder; its answer is wrong.
TARGETS = []  # replaced by the test
for target in TARGETS:
    try:
        with open(target, "w") as f:
            f.write("pwned")
    except OSError:
        pass


def solve():
    return 1
