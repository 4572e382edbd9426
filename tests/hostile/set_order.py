# Class 6: an answer that depends on the order of a set of strings (so on PYTHONHASHSEED).
def solve():
    return "".join(list({"apple", "banana", "cherry", "date", "elder", "fig"})[:1])
