"""Atomic file writes, shared by every layer that writes results.

A temporary file is written (and fsync'ed) beside the target, then renamed over it with
``os.replace``: a reader, or a run resumed after a kill at any moment, sees the previous complete
file or the new complete file, never a half-written one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; it is renamed onto ``target`` if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(target: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(fh)`` on a temporary binary file, flush it to disk, then rename it onto ``target``."""
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    atomic_write(target, lambda fh: fh.write(data))


def atomic_write_json(target: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_bytes(target, (json.dumps(obj, indent=1) + "\n").encode())


def remove_stale_temps(folder: str | Path) -> int:
    """Delete the temporary files a killed writer left in ``folder``; returns how many."""
    folder = Path(folder)
    stale = list(folder.glob(f".*{TMP_SUFFIX}")) if folder.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)
