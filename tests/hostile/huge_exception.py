# Issue 27, class 5: raises an exception whose class name and message are SIZE characters long,
# so that a judge repeating them would send a frame too large for the scorer (which would then
# blame the sandbox). The server clips the message; the class name it sends as it is.
SIZE = 0  # replaced by the test

Huge = type("E" * SIZE, (Exception,), {})


def solve(*args):
    raise Huge("m" * SIZE)
