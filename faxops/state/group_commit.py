"""Group commit, shared by the journal file and the PostgreSQL writer.

Concurrent senders each wait until their own event is durable. Whoever finds no flush under way writes
everything queued so far in one flush (one ``write`` + ``fsync``, or one transaction) while the others
wait for it: the cost per send stays constant and far below one flush per event.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

from faxops.errors import JournalWriteError


class GroupCommit(ABC):
    """The waiting half of group commit; a subclass queues events and implements ``_flush_locked``."""

    _cond: threading.Condition
    _durable: int  # the last ticket known to be durable
    _flushing: bool
    _broken: BaseException | None  # once a flush failed nothing more is accepted: order would be lost

    @abstractmethod
    def _flush_locked(self) -> None:
        """Flush the queue; called with ``_cond`` held (it may release it while writing)."""

    @abstractmethod
    def _error(self) -> JournalWriteError:
        """The error to raise once a flush has failed."""

    def _wait_durable(self, ticket: int) -> None:
        """Return once the event with ``ticket`` is durable, flushing if nobody else is. ``_cond`` is held."""
        while self._durable < ticket:
            if self._broken is not None:
                raise self._error()
            if self._flushing:
                self._cond.wait()
                continue
            self._flush_locked()
