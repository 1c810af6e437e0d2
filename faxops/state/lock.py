"""The state lock: one writer per campaign at a time.

``.NAME.state-lock`` beside the manifest is locked with ``flock``, which the kernel releases when the
holder dies, however it dies. The file also holds who took the lock (id, host, pid, operation, since),
which is what a second run reports; it is emptied on release, so a non-empty file found unlocked is the
trace of a holder that was killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from faxops.clock import now_iso
from faxops.errors import JournalWriteError, StateError, StateLockedError


@dataclass(frozen=True)
class LockInfo:
    id: str
    host: str
    pid: int
    operation: str
    since: str
    who: str
    ci_url: str | None = None  # the CI run that holds it, when the environment names one

    def describe(self) -> str:
        where = f", CI run {self.ci_url}" if self.ci_url else ""
        return (
            f"lock {self.id}: {self.operation} by {self.who} on {self.host} (pid {self.pid}{where}) since {self.since}"
        )

    @classmethod
    def parse(cls, data: bytes) -> LockInfo | None:
        try:
            raw: dict[str, Any] = orjson.loads(data)
            return cls(
                str(raw["id"]),
                str(raw["host"]),
                int(raw["pid"]),
                str(raw["operation"]),
                str(raw["since"]),
                str(raw.get("who", "?")),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        return True
    return True


class StateLock:
    """Hold with ``with StateLock(path).acquire(...)``; ``stale`` tells what a dead holder left."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.info: LockInfo | None = None
        self.stale: LockInfo | None = None

    def acquire(self, operation: str, timeout: float = 0.0) -> StateLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(f"{self.path}: cannot create the state lock: {exc.strerror}") from None
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = LockInfo.parse(os.pread(fd, 4096, 0))
                    os.close(fd)
                    who = holder.describe() if holder else "another faxops process"
                    raise StateLockedError(
                        f"the campaign state is locked: {who}",
                        hint="wait for it to finish, or pass --lock-timeout 5m to wait",
                    ) from None
                # Real time, not the program's clock: another process holds the lock in the real world.
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        previous = LockInfo.parse(os.pread(fd, 4096, 0))
        if previous is not None:
            self.stale = previous  # its holder died without releasing; the kernel freed the flock
        self.info = LockInfo(
            id=str(uuid.uuid4()),
            host=socket.gethostname(),
            pid=os.getpid(),
            operation=operation,
            since=now_iso(),
            who=_user(),
        )
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, orjson.dumps(self.info.__dict__), 0)
        except OSError as exc:  # a full disk: the flock still holds, but nothing may be written after it
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise JournalWriteError(
                f"{self.path}: cannot write the state lock: {exc.strerror}; nothing was sent",
                hint="free disk space in the campaign directory, then run the command again",
            ) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def read_lock_info(path: Path) -> tuple[LockInfo | None, bool]:
    """(who the file names, whether it is held right now)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None, False
    try:
        info = LockInfo.parse(os.pread(fd, 4096, 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            held = False
        except BlockingIOError:
            held = True
        return info, held
    finally:
        os.close(fd)


def force_unlock(path: Path, lock_id: str) -> LockInfo:
    """Clear a lock record whose holder is gone. Refuses while a live process on this host holds it."""
    info, held = read_lock_info(path)
    if info is None:
        raise StateError(f"{path}: no lock is recorded")
    if info.id != lock_id:
        raise StateError(f"{path}: the lock id is {info.id}, not {lock_id}")
    if held and info.host == socket.gethostname() and _pid_alive(info.pid):
        raise StateLockedError(
            f"{info.describe()} is held by a running process",
            hint=f"stop pid {info.pid} first (it saves state on SIGINT/SIGTERM)",
        )
    with open(path, "r+b") as fh:
        fh.truncate(0)
    return info
