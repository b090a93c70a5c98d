"""File-system plumbing shared by every layer that writes: atomic writes, destination checks,
one-line file-system errors and exclusive folder locks.

A temporary file is written (and fsync'ed) beside the target, then renamed over it with
``os.replace``: a reader, or a run resumed after a kill at any moment, sees the previous complete
file or the new complete file, never a half-written one. A full disk, a read-only file system or a
missing permission while writing becomes one :class:`UserError` line naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

from qkf_snn.errors import UserError, first_line

TMP_SUFFIX = ".tmp"
LOCK_FILE = ".qkf.lock"
# Faults of the file system (not bugs): they become one line naming the path instead of a traceback.
FS_ERRNOS = frozenset(
    {
        errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO,
        errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ENOENT,
    }
)  # fmt: skip


def fs_error(err: OSError, path: str | Path | None = None, temporary: Path | None = None) -> UserError:
    """``err`` as one line: the file it concerns (its own, else ``path``; ``path`` too when the error
    names the ``temporary`` file an atomic write stands in for) and what is wrong."""
    name = err.filename
    if name is None or (temporary is not None and Path(os.fsdecode(name)) == temporary):
        name = path
    # the system's own words: some libraries (h5py) put a multi-line report in strerror
    what = os.strerror(err.errno) if err.errno else first_line(err)
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        what += " (free some space and run the command again)"
    return UserError(f"{name}: {what}")


@contextlib.contextmanager
def writing(dest: str | Path) -> Iterator[None]:
    """Within the block, a file-system fault (full disk, read-only, permission...) becomes one
    :class:`UserError` line naming the file, or ``dest`` when the error names none."""
    try:
        yield
    except OSError as err:
        if err.errno not in FS_ERRNOS:
            raise
        raise fs_error(err, dest) from None


def check_destination(path: str | Path, option: str, kind: Literal["file", "dir"]) -> Path:
    """Refuse, before any work starts, a destination that cannot be written: an existing folder
    where a file goes (or the reverse), a parent that is a file, a read-only or unwritable place.
    Nothing is created. Returns ``path``."""
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise UserError(f"{option} {path}: is a directory (give a file name)")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise UserError(f"{option} {path}: exists and is not a directory")
    # the nearest existing folder on the way is where the first new entry would be created
    existing = path if kind == "dir" and path.is_dir() else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{option} {path}: {existing} is a file, not a directory")
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        raise UserError(f"{option} {path}: {existing} is on a read-only file system")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: {existing} is not writable (permission denied)")
    return path


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; it is renamed onto ``target`` if the block succeeds."""
    target = Path(target)
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
        os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as err:
        if err.errno not in FS_ERRNOS:
            raise
        raise fs_error(err, target, temporary=tmp) from None  # the target, not a file never seen
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


def atomic_savefig(fig: Any, target: str | Path, **kwargs: Any) -> None:
    """``fig.savefig`` (matplotlib) to ``target`` atomically; the format is the file's suffix."""
    target = Path(target)
    atomic_write(target, lambda fh: fig.savefig(fh, format=target.suffix.lstrip("."), **kwargs))


def remove_stale_temps(folder: str | Path) -> int:
    """Delete the temporary files a killed writer left in ``folder``; returns how many."""
    folder = Path(folder)
    stale = list(folder.glob(f".*{TMP_SUFFIX}")) if folder.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)


class FolderLock:
    """An exclusive lock on a folder (run directory, cache) for the life of one writer.

    ``fcntl.flock`` on ``<folder>/.qkf.lock``: the kernel releases it when the holder exits in any way
    (SIGKILL included), so a dead process never blocks the next one. The file stays (deleting a lock
    file lets a waiting and a new process lock two different files); it records the holder's pid, host
    and command for the refusal message.
    """

    def __init__(self, folder: str | Path, what: str, hint: str) -> None:
        self.folder, self.what, self.hint = Path(folder), what, hint
        self.fd: int | None = None

    def acquire(self) -> None:
        if self.fd is not None:
            return
        with writing(self.folder):
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UserError(f"{self.what} {self.folder}: in use by {holder}; {self.hint}") from None
        self.fd = fd
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}  # fmt: skip
        with contextlib.suppress(OSError):  # the lock holds even if the note cannot be written
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _holder(fd: int) -> str:
    """Who holds the lock, as recorded in the lock file (it may not be written yet)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info.get("pid"):
        return "another qkf process"
    where = f"pid {info['pid']} on {info.get('host', '?')} since {info.get('since', '?')}"
    return f"{where} ({info['command']})" if info.get("command") else where
