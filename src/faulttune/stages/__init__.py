"""One module per rules file (``workflow/rules/<stage>.smk``), one function per rule.

``workflow/scripts/*.py`` only rebuild the rule's settings from ``snakemake.params.settings``
(:mod:`faulttune.settings`) and call these, so every stage is importable and testable without
Snakemake, and what a stage reads from the config is exactly its settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

# Every rule's script imports this package before torch starts OpenMP. Jobs share the cores
# (sandbox workers, another model job): spinning OpenMP threads then stall each other (measured on
# 2 shared cores: 5.4 tokens/s with 2 spinning threads, 32 with passive ones).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@contextlib.contextmanager
def log_to(path: str | os.PathLike[str]) -> Iterator[None]:
    """Send logging and stderr (progress bars, warnings) of a rule to its log file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f, contextlib.redirect_stderr(f):
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield
        except BaseException:
            logging.getLogger("faulttune").exception("stage failed")
            raise
        finally:
            root.removeHandler(handler)


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))
