"""Atomic file writes for run outputs: a flushed temporary file beside the target, then a rename.

A reader, or a run resumed after a kill at any moment, sees the previous complete file or the new
complete file, never a half-written one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

TMP_SUFFIX = ".tmp"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file (fsync'ed) and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_stale_temps(folder: str | Path) -> int:
    """Delete the temporary files a killed run left in ``folder``; returns how many."""
    stale = list(Path(folder).glob(f".*{TMP_SUFFIX}")) if Path(folder).is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)
