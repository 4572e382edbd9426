"""Generation backends behind one interface (see :mod:`faulttune.generate.base`)."""

from faulttune.generate.base import Backend, GenerationParams, ScriptedBackend, make_backend

__all__ = ["Backend", "GenerationParams", "ScriptedBackend", "make_backend"]
