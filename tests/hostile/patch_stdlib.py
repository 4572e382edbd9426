# Class 2: patches standard-library functions that checks use (math.fabs, math.isclose,
# random.choice, random.randint, numpy.isclose/allclose, operator.eq) so that any comparison
# they make says "close enough", then answers wrongly.
import math
import operator
import random

math.fabs = lambda x: 0.0
math.isclose = lambda *a, **k: True
random.choice = lambda seq: seq[0]
random.randint = lambda a, b: a
operator.eq = lambda a, b: True
try:
    import numpy

    numpy.isclose = lambda *a, **k: True
    numpy.allclose = lambda *a, **k: True
except ImportError:
    pass


def solve():
    return 1.5
