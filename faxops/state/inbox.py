"""Where accepted status pushes wait until the state's writer takes them in: a store concern.

The receiver answers a provider 200 only once the push is durable here, and it never holds the state lock
(apply and refresh need it). Whoever next holds the writer lock takes the pending pushes into the journal
as ``status`` events. The local backend keeps them in an fsynced file beside the manifest; the postgres
backend in a ``pushes`` table (:mod:`faxops.state.pg_inbox`), so the receiver can run on another machine.
"""

from __future__ import annotations

import fcntl
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from faxops.state.records import Event
from faxops.state.store import StateWriter

#: given the pending pushes in arrival order: the status events to record, and the indices of the pushes
#: to keep waiting (not matched yet); every other push is done with
Matcher = Callable[[list[dict[str, Any]]], tuple[list[Event], list[int]]]


class PushInbox(ABC):
    """Accepted pushes not yet in the state."""

    @abstractmethod
    def append(self, items: list[dict[str, Any]]) -> None:
        """Keep ``items`` (JSON objects, already scrubbed); returns only once they are durable."""

    @abstractmethod
    def waiting(self) -> bool:
        """Whether any push is waiting (cheap: the receiver asks every few seconds)."""

    @abstractmethod
    def take_in(self, writer: StateWriter, match: Matcher) -> int:
        """Record the matched pushes through ``writer`` (whose lock the caller holds) and forget them, so
        that a crash neither loses nor doubles one; returns how many events were recorded."""

    @abstractmethod
    def close(self) -> None:
        """Release what ``append`` keeps open (a connection)."""


class FileInbox(PushInbox):
    """An append-only file of accepted pushes; flock makes appends and the hand-over exclusive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, items: list[dict[str, Any]]) -> None:
        data = b"".join(orjson.dumps(i) + b"\n" for i in items)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, data)
                os.fsync(fd)  # on disk before the provider hears 200
            finally:
                os.close(fd)

    def close(self) -> None:
        """Nothing stays open between appends."""

    def waiting(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def take_in(self, writer: StateWriter, match: Matcher) -> int:
        """The inbox's own ``flock`` keeps the receiver from appending between reading and truncating it.
        A crash between recording and truncating replays the pushes, which is harmless: status events are
        idempotent and never move a recipient backwards."""
        if not self.path.exists():
            return 0
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size == 0:
                return 0
            data = os.pread(fd, size, 0)
            items = []
            for line in data.splitlines():
                try:
                    items.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    continue  # a torn last line: its sender never got 200
            taken, keep = match(items)
            for event in taken:
                writer.record(event)
            kept = b"".join(orjson.dumps(items[i]) + b"\n" for i in keep)
            os.ftruncate(fd, 0)
            if kept:
                os.pwrite(fd, kept, 0)
            os.fsync(fd)
            return len(taken)
        finally:
            os.close(fd)
