# Class 1: rewrites every function of every harness module it can reach (the server, the wire
# format, anything named like a verdict or a check), then gives a wrong answer.
import sys
import types


def always_pass(*args, **kwargs):
    return True


for name, module in list(sys.modules.items()):
    if not isinstance(module, types.ModuleType) or not name.startswith(("faulttune", "_faulttune")):
        continue
    for attr, value in list(vars(module).items()):
        if callable(value) and not isinstance(value, type):
            try:
                setattr(module, attr, always_pass)
            except Exception:
                pass
        if isinstance(value, type):
            for method in list(vars(value)):
                if not method.startswith("__"):
                    try:
                        setattr(value, method, always_pass)
                    except Exception:
                        pass


def solve():
    return 1
