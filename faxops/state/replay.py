"""Replaying a whole journal in one sequential pass: the fold's way to read what an apply recorded.

The general reader (``JournalIndex``) notes where each number's events are and reads them back with one
``pread`` and one parse per event when that number's turn comes in the sorted merge with the lockfile:
every event is parsed twice and read twice. A fold sees every event anyway, so here the journal is read
once, front to back, a block at a time, and each event is applied as it comes to its numbers' records.

A record stays a dict while it is being sent (its intent and answer are a few lines apart); after any
other event than an intent it is serialised at once (keys sorted, as the lockfile holds it) into a
spill file beside the lockfile, and only its place there is kept. That keeps the memory of a million
sends below what the index needed, without one Python object per event. A record touched again after
it was spilled (a late status) is read back and parsed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

import orjson

from faxops.state.journal import JournalTail, journal_blocks
from faxops.state.records import BATCH_EVENTS, Event, Record, apply_event

#: bytes of journal parsed at once: ~1,000 events (a block's parsed events are all alive together)
_BLOCK = 1 << 18


@dataclass
class Replayed:
    """A journal replayed over the records it touched: each one's final JSON bytes, by number."""

    lineage: str | None = None
    last_seq: int = 0
    events: int = 0
    resolves: list[Event] = field(default_factory=list)
    torn_tail: bool = False
    _places: dict[str, int] = field(default_factory=dict)  # number -> (offset << 32 | length) in the spill
    _spill: int = -1

    def numbers(self) -> list[str]:
        """Every number the journal touched, sorted."""
        return sorted(self._places)

    def record_bytes(self, number: str) -> bytes:
        """``number``'s record after the journal, as the lockfile writes it."""
        packed = self._places[number]
        return os.pread(self._spill, packed & 0xFFFFFFFF, packed >> 32)

    def close(self) -> None:
        if self._spill >= 0:
            os.close(self._spill)
            self._spill = -1


def replay(
    path: Path,
    after_seq: int,
    old: Callable[[str], Record | None],
    check_lineage: Callable[[str | None], None],
) -> Replayed:
    """Apply every event of the journal at ``path`` after ``after_seq`` to its numbers' records, starting
    from ``old(number)`` (the lockfile's record, or None). ``check_lineage`` sees the journal's header
    first, before anything else is read. Raises ``FileNotFoundError`` when there is no journal."""
    result = Replayed(last_seq=after_seq)
    with path.open("rb") as fh:
        try:
            spill = tempfile.TemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".fold")  # noqa: SIM115 (closed by the with below)
        except OSError as exc:
            raise SpillError(exc) from exc
        with spill:
            # Already unlinked (a crash leaves nothing behind); a duplicate descriptor outlives the object.
            result._spill = os.dup(spill.fileno())
            try:
                _replay(fh, path, after_seq, old, check_lineage, result, _Spill(spill))
            except BaseException:
                result.close()
                raise
    return result


class SpillError(Exception):
    """The spill file could not be written (a full disk?): the caller folds the general way, which needs none."""


class _Spill:
    def __init__(self, file: IO[bytes]) -> None:
        self.file = file

    def write(self, data: bytes) -> None:
        try:
            self.file.write(data)
            self.file.flush()
        except OSError as exc:
            raise SpillError(exc) from exc

    def fileno(self) -> int:
        return self.file.fileno()


def _replay(
    fh: BinaryIO,
    path: Path,
    after_seq: int,
    old: Callable[[str], Record | None],
    check_lineage: Callable[[str | None], None],
    result: Replayed,
    spill: _Spill,
) -> None:
    places = result._places
    pending: dict[str, Record] = {}  # records whose last event was an intent: their answer is a few lines on
    position = 0
    buffered: list[bytes] = []
    tail = JournalTail()
    loads, dumps, sort_keys = orjson.loads, orjson.dumps, orjson.OPT_SORT_KEYS

    for events, _, _ in journal_blocks(fh, path, tail, _BLOCK):
        for event in events:
            kind = event.get("t")
            if kind == "header":
                result.lineage = event.get("lineage")
                check_lineage(result.lineage)
                continue
            seq = int(event.get("seq", 0))
            if seq <= after_seq:
                continue
            result.events += 1
            if seq > result.last_seq:
                result.last_seq = seq
            if kind == "resolve":
                result.resolves.append(event)
            # ``event_numbers`` spelt out (no call, no copy of the list): once per event of a million sends.
            numbers = event["numbers"] if kind in BATCH_EVENTS else ([event["number"]] if "number" in event else ())
            for number in numbers:
                record = pending.pop(number, None)
                if record is None:
                    packed = places.pop(number, None)
                    if packed is None:
                        record = old(number)
                    else:  # touched again after it was spilled (a later status): read it back
                        spill.write(b"".join(buffered))
                        buffered.clear()
                        record = loads(os.pread(spill.fileno(), packed & 0xFFFFFFFF, packed >> 32))
                record = apply_event(number, record, event)
                if kind == "intent":
                    pending[number] = record
                else:
                    # Serialised at once, while the record is still in the CPU's caches (serialised a
                    # window of events later, the whole pass took twice as long), and its objects freed.
                    data = dumps(record, option=sort_keys)
                    places[number] = (position << 32) | len(data)
                    position += len(data)
                    buffered.append(data)
        spill.write(b"".join(buffered))
        buffered.clear()
    for number, record in pending.items():
        data = dumps(record, option=sort_keys)
        places[number] = (position << 32) | len(data)
        position += len(data)
        buffered.append(data)
    spill.write(b"".join(buffered))
    result.torn_tail = tail.torn
