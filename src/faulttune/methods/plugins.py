"""Methods, examples and mask kinds defined outside this package.

A plugin is a Python file or an importable module that defines ``register_entries(register)``;
loading it calls that function with :func:`faulttune.methods.registry.register`, so that the
entries are added exactly once however often the plugin is named. The ``plugins:`` key of the
workflow config lists them (relative files against the working directory); the config check and
every stage that looks a method up load them first.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from faulttune.methods.registry import register

_LOADED: dict[str, ModuleType] = {}
HOOK = "register_entries"


def _import(spec: str) -> ModuleType:
    if not spec.endswith(".py"):
        return importlib.import_module(spec)
    path = Path(spec).resolve()
    if not path.is_file():
        raise ValueError(f"plugin {spec!r}: no such file")
    name = f"faulttune_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    found = importlib.util.spec_from_file_location(name, path)
    if found is None or found.loader is None:
        raise ValueError(f"plugin {spec!r}: not a Python file")
    module = importlib.util.module_from_spec(found)
    sys.modules[name] = module
    found.loader.exec_module(module)
    return module


def load_plugins(specs: Iterable[str] | None) -> list[ModuleType]:
    """Import each plugin once and register its entries; returns the plugin modules."""
    out = []
    for spec in specs or ():
        key = str(Path(spec).resolve()) if spec.endswith(".py") else spec
        if key not in _LOADED:
            module = _import(spec)
            hook = getattr(module, HOOK, None)
            if not callable(hook):
                raise ValueError(f"plugin {spec!r} defines no function {HOOK}(register)")
            hook(register)
            _LOADED[key] = module
        out.append(_LOADED[key])
    return out
