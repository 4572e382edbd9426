# Class 4: reads the file at SECRET (filled in by the test, a file on the host) and raises its
# content, so that it would leave through the result's detail.
SECRET = []  # replaced by the test

for path in SECRET:
    with open(path) as f:
        raise RuntimeError("leaked: " + f.read())
