"""The state seam: what faxops needs from wherever a campaign's state is kept.

``open_store`` picks the backend from the manifest's ``state:`` block. Today there is one, ``local``
(the lockfile, its write-ahead journal and a ``flock`` beside the manifest: ``faxops.state``); a
PostgreSQL one plugs in here (an append-only journal table, the current record per recipient kept by
the writer, a session advisory lock with a holder row, lock-free readers).

The contract every backend keeps:

* readers (``read``, ``records``, ``header``) take no lock and see every event recorded so far;
* one writer at a time (``writer``): ``record`` returns only once the event is durable, because the
  engine calls the provider right after an intent is recorded; closing folds what was recorded;
* ``push_inbox`` keeps accepted status pushes durably until a writer takes them in (no lock to append);
* ``identity`` names this copy of the state, so that a saved plan cannot be applied to another copy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from faxops.errors import FaxopsError

if TYPE_CHECKING:
    from faxops.state import RecordedState
    from faxops.state.inbox import PushInbox
    from faxops.state.lock import LockInfo
    from faxops.state.lockfile import Header
    from faxops.state.records import Event, Record


class WriterLock(Protocol):
    """What every backend's writer lock tells: who holds it now, and what a dead holder left."""

    info: LockInfo | None
    stale: LockInfo | None


class StateWriter(ABC):
    """The single writer of a campaign's state, between taking the lock and folding."""

    lock: WriterLock  # set by each backend's writer when it takes its lock

    @abstractmethod
    def record(self, event: Event) -> int:
        """Append one event (from ``faxops.state.events``); returns its sequence number once it is durable."""

    @abstractmethod
    def state(self, detail: Collection[str] = ()) -> RecordedState:
        """The state as recorded so far, this writer's events included (``detail``: numbers read in full)."""

    @property
    def holder(self) -> LockInfo | None:
        """Who holds the lock: this writer (id, host, pid, operation, since, user)."""
        return self.lock.info

    @property
    def stale(self) -> LockInfo | None:
        """The previous holder, when it died without releasing the lock (its events were recovered)."""
        return self.lock.stale

    @abstractmethod
    def close(self, applied_with: Mapping[str, object] | None = None) -> Header | None:
        """Fold what was recorded into the current state and release the lock.

        ``applied_with`` (manifest and document digests) is recorded only by a run that completed: a run
        that failed on a broken input must leave the recorded digests (and the lockfile's bytes) alone.
        """

    @abstractmethod
    def abandon(self) -> None:
        """Release the lock without folding; the next writer folds (used when folding itself failed)."""


class StateStore(ABC):
    """One campaign's recorded state, wherever it is kept."""

    campaign: str

    @abstractmethod
    def read(self, detail: Collection[str] = ()) -> RecordedState:
        """A summary per recorded number (what ``plan`` needs); ``detail`` numbers are parsed in full."""

    @abstractmethod
    def records(self) -> Iterator[tuple[str, Record]]:
        """Every full record, sorted by number (for ``status``, reports, refresh)."""

    def raw_records(self) -> Iterator[tuple[str, bytes | Record]]:
        """Like ``records``, but a backend may hand over a record it did not have to touch as its stored JSON
        bytes (``parse_raw`` reads one): ``status`` counts a million settled records without parsing them."""
        return self.records()

    def parse_raw(self, raw: bytes) -> Record:
        """A record that ``raw_records`` handed over as bytes."""
        raise NotImplementedError(f"{type(self).__name__} hands over no records as bytes")

    @abstractmethod
    def header(self) -> Header | None:
        """Lineage, serial and audit trail of the folded state; None before the first fold."""

    @abstractmethod
    def open_writer(self, operation: str, lock_timeout: float = 0.0) -> StateWriter:
        """Take the writer lock (waiting up to ``lock_timeout`` s, else ``StateLockedError``).

        Prefer ``writer``, which also closes it.
        """

    @contextmanager
    def writer(
        self, operation: str, lock_timeout: float = 0.0, applied_with: Mapping[str, object] | None = None
    ) -> Iterator[StateWriter]:
        """The writer for one command: folded and released however the block ends.

        ``applied_with`` is recorded when the block completes. If the block fails and folding fails too,
        the lock is released without folding (the next writer folds) and the block's error propagates
        with a note saying so: the first error is the one to fix.
        """
        writer = self.open_writer(operation, lock_timeout)
        try:
            yield writer
        except BaseException as exc:
            try:
                writer.close()
            except FaxopsError as fold_error:
                writer.abandon()
                exc.add_note(f"The state was not folded ({fold_error.message}); the next run will fold it.")
            raise
        try:
            writer.close(applied_with)
        except FaxopsError:
            writer.abandon()
            raise

    @abstractmethod
    def lock_info(self) -> LockInfo | None:
        """Who holds (or last held without releasing) the writer lock; None when nobody does."""

    @abstractmethod
    def force_unlock(self, lock_id: str) -> LockInfo:
        """Clear a lock whose holder is gone; refuses while a live local process holds it."""

    @abstractmethod
    def push_inbox(self) -> PushInbox:
        """Where ``webhook serve`` keeps accepted status pushes until the writer takes them in."""

    @abstractmethod
    def identity(self) -> str:
        """Names this copy of the state (what a saved plan binds to)."""
