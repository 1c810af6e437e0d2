"""Crash-safe file primitives: atomic replace and durable append."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (the entry lives in the directory)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, chunks: Iterable[bytes], *, mode: int = 0o600) -> int:
    """Write ``chunks`` to a temporary file beside ``path``, fsync it, rename it over ``path``.

    A crash at any point leaves either the old file or the new one, never a mix. An existing file's
    permissions are kept. Returns the number of bytes written.
    """
    return atomic_write_stat(path, chunks, mode=mode)[0]


def atomic_write_stat(path: Path, chunks: Iterable[bytes], *, mode: int = 0o600) -> tuple[int, os.stat_result | None]:
    """``atomic_write``, also returning the new file's ``stat`` taken after the rename (which changes its
    ctime), or None when ``path`` is by then not the file written (replaced by someone else)."""
    with contextlib.suppress(FileNotFoundError):
        mode = os.stat(path).st_mode & 0o777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    written = 0
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as fh:
            for chunk in chunks:
                fh.write(chunk)
                written += len(chunk)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
            inode = os.fstat(fh.fileno()).st_ino
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    try:
        st: os.stat_result | None = os.stat(path)
    except OSError:
        st = None
    return written, st if st is not None and st.st_ino == inode else None
