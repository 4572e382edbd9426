"""How the in-jail code gets into a jail that holds no project files.

The interpreter starts with ``-c`` :data:`BOOT`; it reads one length-prefixed blob from the request
channel: the compiled modules it needs (``marshal``, made by the same interpreter binary), installs
them under their own names (``faulttune.sandbox.wire`` ...) and calls the role's ``main``.
"""

from __future__ import annotations

import functools
import importlib.util
import marshal

# argv after -c: in fd, out fd, role, then the role's own arguments
BOOT = """#faulttune-jail
import builtins, marshal, os, sys, types
def _read(fd, size):
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            os._exit(70)
        data += chunk
    return data
_fd = int(sys.argv[1])
for _name, _code in marshal.loads(_read(_fd, int.from_bytes(_read(_fd, 4), "big"))):
    _parent = None
    for _depth, _part in enumerate(_name.split(".")):
        _full = ".".join(_name.split(".")[:_depth + 1])
        if _full not in sys.modules:
            _mod = sys.modules[_full] = types.ModuleType(_full)
            _mod.__path__ = []
            if _parent is not None:
                setattr(_parent, _part, _mod)
        _parent = sys.modules[_full]
    _parent.__file__ = "/faulttune/" + _name.replace(".", "/") + ".py"
    _parent.__builtins__ = dict(builtins.__dict__)  # a program that rebinds builtins.x later
    exec(_code, _parent.__dict__)                     # does not reach this code
sys.modules["faulttune.sandbox." + sys.argv[3]].main(sys.argv[1:3] + sys.argv[4:])
"""

ROLE_MODULES = {
    "server": ("framing", "opcodes", "hashing", "wire", "fallback_guard", "server"),
    "judge": ("framing", "opcodes", "hashing", "wire", "fallback_guard", "server", "judge"),
    "checker": ("framing", "opcodes", "hashing", "wire", "comparison", "checker"),
    "zygote": ("framing", "opcodes", "hashing", "wire", "fallback_guard", "server", "judge",
               "zygote"),
}


@functools.cache
def bundle(role: str) -> bytes:
    """The length-prefixed blob of compiled modules that :data:`BOOT` reads for ``role``."""
    compiled = []
    for short in ROLE_MODULES[role]:
        name = f"faulttune.sandbox.{short}"
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ImportError(f"cannot find {name}")
        with open(spec.origin, encoding="utf-8") as f:
            source = f.read()
        compiled.append((name, compile(source, f"/faulttune/sandbox/{short}.py", "exec",
                                       dont_inherit=True)))
    blob = marshal.dumps(compiled)
    return len(blob).to_bytes(4, "big") + blob
