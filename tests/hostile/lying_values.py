# Class 3: returns values whose comparisons always say yes: a float subclass, a list subclass,
# a plain object with __eq__, and an int subclass; KIND (filled in by the test) picks one.
KIND = 0  # replaced by the test


class Yes:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__


class YesFloat(float):
    __eq__ = Yes.__eq__
    __ne__ = Yes.__ne__
    __hash__ = float.__hash__

    def __sub__(self, other):
        return YesFloat(0.0)

    def __abs__(self):
        return YesFloat(0.0)

    def __lt__(self, other):
        return True


class YesList(list):
    __eq__ = Yes.__eq__
    __ne__ = Yes.__ne__


class YesInt(int):
    __eq__ = Yes.__eq__
    __ne__ = Yes.__ne__
    __hash__ = int.__hash__


def solve(*args):
    return [YesFloat(0.0), YesList(), Yes(), YesInt(0)][KIND]
