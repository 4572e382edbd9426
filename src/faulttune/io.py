"""Reading and writing the files that flow between rules.

Every reader checks the columns it needs and names the file, the row and the field when something
is wrong; every writer creates parent folders. Rows that a stage cannot use are never dropped
silently: they go to ``<output>.rejected.parquet`` (see :func:`rejected_path`) with a ``reason``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pyarrow is imported where a table is read or written (0.2 s: not for scoring)
    import pyarrow as pa

log = logging.getLogger(__name__)


class DataError(ValueError):
    """Bad input data; the message names the file, the row and the field."""


def read_jsonl(path: str | os.PathLike[str], required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """All rows of a JSONL file; a malformed line or a row without a ``required`` key raises."""
    return list(iter_jsonl(path, required))


def iter_jsonl(
    path: str | os.PathLike[str], required: Sequence[str] = ()
) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            row = parse_jsonl_line(path, lineno, line)
            for key in required:
                if key not in row:
                    raise DataError(f"{path} line {lineno}: missing '{key}'")
            yield row


def parse_jsonl_line(path: str | os.PathLike[str], lineno: int, line: str) -> dict[str, Any]:
    """One line of a JSONL file as its JSON object; anything else raises naming file and line."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{path} line {lineno}: not valid JSON ({e.msg})") from e
    except RecursionError:
        raise DataError(f"{path} line {lineno}: JSON nested too deeply to read") from None
    if not isinstance(row, dict):
        raise DataError(f"{path} line {lineno}: expected a JSON object, got {type(row).__name__}")
    return row


def read_appended_jsonl(path: str | os.PathLike[str]) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) of a JSONL file that a killed run may have been appending to (absent:
    none). A torn last line is dropped, and removed from the file so that new rows are not glued
    to it; any other bad line raises naming the file and line."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    rows: list[tuple[int, dict[str, Any]]] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if lineno == len(lines) and not _is_json(line):
            log.warning("%s line %d: torn last line dropped (a run killed mid-write)", path, lineno)
            write_jsonl([row for _, row in rows], path)
            break
        rows.append((lineno, parse_jsonl_line(path, lineno, line)))
    return rows


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return False
    return True


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | os.PathLike[str]) -> None:
    """Write rows atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    tmp.replace(path)


def append_jsonl(row: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Append one row and flush, so a killed run keeps everything already written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()


def write_parquet(
    rows: Sequence[dict[str, Any]],
    path: str | os.PathLike[str],
    schema: pa.Schema | None = None,
) -> None:
    """Write rows as Parquet, atomically (a temporary file renamed into place: a killed job never
    leaves a half-written table). With ``schema`` an empty table still gets its columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if schema is not None:
        table = pa.Table.from_pylist(list(rows), schema=schema)
    elif rows:
        table = pa.Table.from_pylist(list(rows))
    else:
        table = pa.table({})
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def read_parquet(
    path: str | os.PathLike[str], required: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """All rows of a Parquet file as dicts; a missing ``required`` column raises."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; has {table.column_names}")
    return table.to_pylist()


def rejected_path(output: str | os.PathLike[str]) -> Path:
    """``x/pairs.parquet`` -> ``x/pairs.rejected.parquet``."""
    output = Path(output)
    return output.with_name(output.name.removesuffix(".parquet") + ".rejected.parquet")


def write_rejected(
    rows: Sequence[dict[str, Any]],
    output: str | os.PathLike[str],
    stage: str,
    schema: pa.Schema | None = None,
) -> Path:
    """Write rejected rows beside ``output``; each row must carry a ``reason``.

    ``schema`` (the rejected rows' own columns, ``reason`` included) keeps the columns typed when
    the list is empty or a column is all null; ``stage`` is added.
    """
    for i, row in enumerate(rows):
        if not row.get("reason"):
            raise ValueError(f"rejected row {i} of stage {stage!r} has no reason")
    import pyarrow as pa

    path = rejected_path(output)
    enriched = [{**row, "stage": stage} for row in rows]
    if schema is None:
        schema = pa.schema([("reason", pa.string())]) if not enriched else None
    if schema is not None and "stage" not in schema.names:
        schema = schema.append(pa.field("stage", pa.string()))
    write_parquet(enriched, path, schema)
    return path


# --- output paths the command line takes -----------------------------------------------------

_NOT_A_FILE = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
               stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket",
               stat.S_IFDIR: "a folder"}


def output_problem(path: Path, inputs: Sequence[Path] = ()) -> str:
    """Why ``path`` may not be written as an output ('' when it may): only a new file, or a
    regular file that is none of ``inputs``, is ever replaced."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # a new file (or a parent that is no folder)
        return ""
    except OSError as e:
        return f"cannot be looked at ({e.strerror or e})"
    if stat.S_ISLNK(st.st_mode):
        return (f"is a symbolic link (to {os.readlink(path)}); name the file itself: the link "
                "would be replaced, not what it points to")
    if not stat.S_ISREG(st.st_mode):
        return f"is {_NOT_A_FILE.get(stat.S_IFMT(st.st_mode), 'not a regular file')}, not a file"
    for source in inputs:
        with contextlib.suppress(OSError):
            if os.path.samefile(path, source):
                return f"is the input file {source} itself: writing it would destroy the input"
    return ""


def check_output_file(path: str | os.PathLike[str], flag: str = "--out",
                      inputs: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """``path`` as a Path if an output may be written there, else a :class:`DataError` naming
    why: a symlink, a device, a FIFO, a socket, a folder or one of ``inputs`` is refused, and so
    is a folder that cannot be written (checked by creating and removing a file in it)."""
    path = Path(path)
    problem = output_problem(path, [Path(p) for p in inputs])
    if problem:
        raise DataError(f"{path}: {flag} {problem}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise DataError(f"{path}: {flag}: cannot write there ({e.strerror or e})") from None
    return path


def replace_file(path: Path, data: bytes, flag: str = "--out") -> None:
    """Write ``data`` to a new temporary file beside ``path`` and rename it over ``path``
    (atomic); ``path`` is checked again just before, so a link or device put there meanwhile is
    refused rather than replaced."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        problem = output_problem(path)
        if problem:
            raise DataError(f"{path}: {flag} {problem}")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cache_dir() -> Path:
    """Where built things are kept between runs (models, expected outputs):
    ``$FAULTTUNE_CACHE`` or ``~/.cache/faulttune``."""
    return Path(os.environ.get("FAULTTUNE_CACHE") or Path.home() / ".cache" / "faulttune")


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold ``<path>.lock`` (a file lock): one process at a time builds ``path``, the others wait
    and then find it built."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
