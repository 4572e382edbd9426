# Issue 27, class 2: answers with about MB megabytes of distinct ints (7 to 12 times that once
# decoded), which once grew the scorer's own memory by that much per worker. (Built while the
# program loads, so that each call costs only sending it.)
MB = 0  # replaced by the test
ANSWER = list(range(MB * 1024 * 1024 // 5))


def solve(*args):
    return ANSWER
