"""The write-ahead journal: ``NAME.journal`` beside the lockfile, one JSON event per line.

Every intent is durable (written and fsynced) before its provider call starts, and every answer as
soon as it arrives. Concurrent appenders share fsyncs (group commit): whoever finds no flush under way
writes everything queued so far in one ``write`` + ``fsync`` while the others wait for it. That keeps
the cost per send constant and far below one fsync per event.

The journal is folded into the lockfile at safe points (start and end of an apply) and then removed.
Its first line names the lockfile lineage it belongs to; events carry a sequence number, and the
lockfile records the last one it holds, so replaying a journal twice changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC
from itertools import accumulate
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from faxops import clock, secrets
from faxops.errors import JournalWriteError, StateError
from faxops.state.files import fsync_dir
from faxops.state.group_commit import GroupCommit
from faxops.state.records import Event, event_numbers


@dataclass(frozen=True)
class JournalContents:
    lineage: str | None
    events: list[Event]
    torn_tail: bool  # the last line was cut short by a crash (it was never acknowledged)


def read_journal(path: Path) -> JournalContents | None:
    """All events of a journal; None when there is none. A torn last line is dropped, nothing else is."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"{path}: cannot read the journal: {exc.strerror}") from None
    lines = data.split(b"\n")
    torn = bool(lines and lines[-1])  # a complete journal ends with a newline
    if not torn:
        lines = lines[:-1]
    lineage = None
    events: list[Event] = []
    for index, line in enumerate(lines):
        if not line:
            continue
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            if index == len(lines) - 1:
                torn = True
                break
            raise StateError(
                f"{path}:{index + 1}: the journal is damaged in its middle; faxops will not guess",
                hint="keep the file; it holds job IDs. Ask for help before deleting it.",
            ) from None
        if index == len(lines) - 1 and torn:
            torn = False  # a complete JSON event that only lacks its newline is kept
        if event.get("t") == "header":
            lineage = event.get("lineage")
            continue
        events.append(event)
    return JournalContents(lineage=lineage, events=events, torn_tail=torn)


class Journal(GroupCommit):
    """An open journal for appending. Thread-safe; ``append`` returns once the event is durable."""

    def __init__(self, path: Path, lineage: str, next_seq: int) -> None:
        self.path = path
        self._next_seq = next_seq
        self._cond = threading.Condition()
        self._queue: list[bytes] = []
        self._enqueued = 0
        self._durable = 0
        self._flushing = False
        self._broken: OSError | None = None
        self.bytes_written = 0
        self.events_written = 0
        existed = path.exists()
        try:
            if existed:
                self._drop_torn_tail()
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise JournalWriteError(
                f"{path}: cannot open the journal for writing: {exc.strerror}; nothing was sent",
                hint="check free space and permissions of the campaign directory",
            ) from None
        if not existed:
            self.append({"t": "header", "lineage": lineage, "format_version": 1}, numbered=False)
            fsync_dir(path.parent)

    def _drop_torn_tail(self) -> None:
        # A line cut by a crash was never acknowledged (its send never started, or its answer is
        # also in a rescue file); appending after it would bury it mid-file, so cut it off.
        with self.path.open("rb+") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if size == 0:
                return
            fh.seek(max(0, size - 65536))
            tail = fh.read()
            if tail.endswith(b"\n"):
                return
            cut = tail.rfind(b"\n")
            fh.truncate(size - len(tail) + cut + 1 if cut >= 0 else 0)
            os.fsync(fh.fileno())

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def append(self, event: Event, *, numbered: bool = True) -> int:
        """Add an event and wait until it is on disk. Raises ``JournalWriteError`` when it cannot be."""
        with self._cond:
            if self._broken is not None:
                raise self._error()
            seq = 0
            if numbered:
                seq = self._next_seq
                self._next_seq += 1
                event = {"seq": seq, **event}
            self._queue.append(orjson.dumps(event) + b"\n")
            self._enqueued += 1
            ticket = self._enqueued
            self._wait_durable(ticket)
            return seq

    def _flush_locked(self) -> None:
        batch, self._queue = self._queue, []
        upto = self._enqueued
        self._flushing = True
        self._cond.release()
        error: OSError | None = None
        try:
            data = b"".join(batch)
            os.write(self._fd, data)
            os.fsync(self._fd)
        except OSError as exc:
            error = exc
        finally:
            self._cond.acquire()
            self._flushing = False
        if error is not None:
            # A partial write may have left a torn line: never write after it in this run.
            self._broken = error
        else:
            self._durable = upto
            self.bytes_written += len(data)
            self.events_written += len(batch)
        self._cond.notify_all()

    def _error(self) -> JournalWriteError:
        assert self._broken is not None
        return JournalWriteError(
            f"{self.path}: cannot write the journal: {self._broken.strerror}",
            hint="free disk space or fix permissions; state recorded so far is safe",
        )

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def rescue(campaign: str, events: list[dict[str, Any]], directories: Sequence[Path]) -> Path | None:
    """Last resort when a job ID cannot be journalled: put it anywhere else that will take it.

    Returns the file written, or None when even that failed (the caller then prints the events).
    """
    stamp = clock.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"faxops-rescue-{campaign}-{stamp}-{os.getpid()}.jsonl"
    data = b"".join(orjson.dumps(secrets.scrub_event(e)) + b"\n" for e in events)
    for directory in directories:  # ``StatePaths.rescue``
        try:
            directory.mkdir(parents=True, exist_ok=True)
            target = directory / name
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            return target
        except OSError:
            continue
    sys.stderr.buffer.write(b"faxops: could not save these job records anywhere:\n" + data)
    sys.stderr.flush()
    return None


class JournalIndex:
    """Where each number's events sit in a journal, without holding the events themselves.

    A journal of a million sends is hundreds of megabytes; parsed whole it would take gigabytes. The
    index keeps, per number, the offset and length of its event lines (a packed int each) and reads
    them back with ``pread`` when that number's turn comes in the sorted merge with the lockfile.
    """

    def __init__(self, path: Path, after_seq: int) -> None:
        self.path = path
        self.lineage: str | None = None
        self.torn_tail = False
        self.last_seq = after_seq
        self.events = 0
        self.by_number: dict[str, list[int]] = {}
        self.resolves: list[Event] = []
        self._fd = os.open(path, os.O_RDONLY)
        try:
            self._scan(after_seq)
        except BaseException:
            os.close(self._fd)
            raise

    def _scan(self, after_seq: int) -> None:
        by_number = self.by_number
        tail = JournalTail()
        with os.fdopen(os.dup(self._fd), "rb") as fh:
            for events, starts, lengths in journal_blocks(fh, self.path, tail):
                for event, start, length in zip(events, starts, lengths, strict=True):
                    kind = event.get("t")
                    if kind == "header":
                        self.lineage = event.get("lineage")
                        continue
                    seq = int(event.get("seq", 0))
                    if seq <= after_seq:
                        continue
                    self.events += 1
                    if seq > self.last_seq:
                        self.last_seq = seq
                    if kind == "resolve":
                        self.resolves.append(event)
                    packed = (start << 24) | length
                    for number in event_numbers(event):
                        entries = by_number.get(number)
                        if entries is None:
                            by_number[number] = [packed]
                        else:
                            entries.append(packed)
        self.torn_tail = tail.torn

    def events_of(self, number: str) -> list[Event]:
        """The events of ``number``, in journal order."""
        return [
            orjson.loads(os.pread(self._fd, packed & 0xFFFFFF, packed >> 24))
            for packed in self.by_number.get(number, ())
        ]

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> JournalIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_BLOCK = 16 << 20


@dataclass
class JournalTail:
    """Set by ``journal_blocks`` when the last line was cut short by a crash (it was never acknowledged)."""

    torn: bool = False


def journal_blocks(
    fh: BinaryIO, path: Path, tail: JournalTail, block: int = _BLOCK
) -> Iterator[tuple[list[Event], list[int], list[int]]]:
    """A journal's events parsed a block of lines at a time (one C-level pass per block), with where each
    line starts and its length (newline included). A torn last line ends the reading (``tail.torn``); a
    line that cannot be read anywhere else is an error: the journal holds job IDs, faxops will not guess."""
    offset = 0
    line_no = 0
    rest = b""
    while True:
        chunk = fh.read(block)
        data = rest + chunk if rest else chunk
        if not chunk:
            if data:  # a last line without its newline: kept when it is a complete event
                try:
                    yield [orjson.loads(data)], [offset], [len(data)]
                except orjson.JSONDecodeError:
                    tail.torn = True
            return
        cut = data.rfind(b"\n") + 1
        if not cut:
            rest = data
            continue
        lines, rest = data[: cut - 1].split(b"\n"), data[cut:]
        lengths = [len(line) + 1 for line in lines]
        starts = list(accumulate(lengths[:-1], initial=offset))
        try:
            events = list(map(orjson.loads, lines))
        except orjson.JSONDecodeError:
            events = []
            for i, line in enumerate(lines):
                try:
                    events.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    if i < len(lines) - 1 or rest or fh.read(1):
                        raise StateError(
                            f"{path}:{line_no + i + 1}: the journal is damaged in its middle; faxops will not guess",
                            hint="keep the file; it holds job IDs. Ask for help before deleting it.",
                        ) from None
                    tail.torn = True  # cut by a crash after its newline was written? never acknowledged
                    yield events, starts[:i], lengths[:i]
                    return
        yield events, starts, lengths
        offset += cut
        line_no += len(lines)
