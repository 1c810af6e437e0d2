"""The local backend: the lockfile, its write-ahead journal and a ``flock``, in files beside the manifest.

Readers (``plan``, ``status``) take no lock: they read the lockfile and replay the journal in memory.
The one writer (``apply``) holds the lock, appends to the journal while it sends, and folds the journal
into a new lockfile (atomic replace) at the start and end of its run.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Collection, Iterator, Mapping
from dataclasses import replace
from itertools import islice
from typing import TYPE_CHECKING, Any

import orjson

from faxops import secrets
from faxops.bulk import bulk
from faxops.errors import StateError

# StatePaths and RecordedState are defined in the package before it imports this module (they are
# shared with the PostgreSQL backend), so this import of a package still initialising is safe.
from faxops.state import RecordedState, StatePaths
from faxops.state.events import check
from faxops.state.fastread import BlockRead, record_blocks
from faxops.state.files import fsync_dir
from faxops.state.indexed_read import indexed_summaries, read_general
from faxops.state.journal import Journal, JournalIndex
from faxops.state.lock import LockInfo, StateLock, force_unlock, read_lock_info
from faxops.state.lockfile import Header, iter_raw_records, parse_record, read_header, write_lockfile
from faxops.state.records import Event, Record, Summary, fold_events, summarise
from faxops.state.replay import Replayed, SpillError, replay
from faxops.state.store import StateStore, StateWriter
from faxops.state.summary_index import IndexBuilder, Moved, lines_reader, load_index

if TYPE_CHECKING:
    from faxops.state.inbox import FileInbox


def _check_lineage(paths: StatePaths, header: Header | None, lineage: str | None) -> None:
    if header is not None and lineage and lineage != header.lineage:
        raise StateError(
            f"{paths.journal} belongs to another lockfile (lineage {lineage}, the lockfile's is {header.lineage})",
            hint="was the lockfile replaced? restore the matching one; the journal holds job IDs",
        )


def check_owner(paths: StatePaths, header: Header | None) -> None:
    """Refuse a lockfile recorded for another campaign (a copy-paste, a wrong merge), touching nothing.

    Folding into it would rewrite it under this campaign's name, and planning against it would send
    again to every recipient it does not hold.
    """
    if header is None or not header.campaign or paths.campaign is None or header.campaign == paths.campaign:
        return
    aside = paths.lockfile.with_name(f"{paths.lockfile.name}.{header.campaign}")
    raise StateError(
        f"{paths.lockfile} belongs to campaign {header.campaign!r} (lineage {header.lineage}), not to "
        f"{paths.campaign!r}; faxops has not touched it",
        hint=f"if you renamed the campaign, put `campaign.name: {header.campaign}` back (moving the lockfile would "
        f"send every fax again); if the file was copied from another campaign, move it aside: "
        f"mv {paths.lockfile} {aside}",
    )


def _pending(paths: StatePaths) -> tuple[Header | None, JournalIndex | None]:
    """The lockfile's header and an index of the journal events it does not hold yet."""
    header = read_header(paths.lockfile)
    check_owner(paths, header)
    try:
        index = JournalIndex(paths.journal, header.journal_seq if header else 0)
    except FileNotFoundError:
        return header, None
    except OSError as exc:
        raise StateError(f"{paths.journal}: cannot read the journal: {exc.strerror}") from None
    try:
        _check_lineage(paths, header, index.lineage)
    except BaseException:
        index.close()
        raise
    return header, index


@bulk
def load_state(paths: StatePaths, detail: Collection[str] = ()) -> RecordedState:
    """The recorded state as the lockfile plus any journal not yet folded into it. Reads only.

    Settled records are summarised from their bytes (status and attempt count only); numbers in
    ``detail`` are parsed in full (``apply --resend`` needs when they were last sent). The lockfile's
    summaries come from its summaries index when that is valid (``faxops.state.summary_index``)."""
    header, index = _pending(paths)
    touched: dict[str, list[int]] = dict(index.by_number) if index else {}
    summaries: dict[str, Summary] | None = None
    try:
        if header is not None:
            summaries = indexed_summaries(paths, header, touched, detail, index)
            if summaries is None:
                summaries = read_general(paths, touched, detail, index)
        else:
            summaries = {}
        if index is not None:
            for number in touched:
                if number not in summaries:
                    summaries[number] = summarise(fold_events(number, None, index.events_of(number)))
    finally:
        if index is not None:
            index.close()
    return RecordedState(
        header=header,
        summaries=summaries,
        journal_seq=index.last_seq if index else (header.journal_seq if header else 0),
        journal_events=index.events if index else 0,
        torn_tail=bool(index and index.torn_tail),
    )


def read_records(paths: StatePaths) -> Iterator[tuple[str, Record]]:
    """Full records, sorted by number, with the unfolded journal applied (for status and reports)."""
    for numbers, raws in _raw_batches(paths):
        if all(raw.__class__ is bytes for raw in raws):
            # A block parsed by one C-level pass (a report parses every record of a million).
            try:
                records = list(map(orjson.loads, raws))  # type: ignore[arg-type]  # all bytes, checked above
            except orjson.JSONDecodeError:
                records = []
            if len(records) == len(raws) and all(record.__class__ is dict for record in records):
                yield from zip(numbers, records, strict=True)
                continue
        # Some record is not JSON, or not an object: parse_record says which.
        for number, raw in zip(numbers, raws, strict=True):
            yield number, raw if isinstance(raw, dict) else parse_record(paths.lockfile, raw)


def read_raw_records(paths: StatePaths) -> Iterator[tuple[str, bytes | Record]]:
    """Like ``read_records``, but a record the journal did not touch stays as its JSON bytes (keys sorted,
    ``status`` last) where the lockfile is in faxops' layout: a reader that needs only some records'
    details (``status``) parses only those."""
    for numbers, raws in _raw_batches(paths):
        yield from zip(numbers, raws, strict=True)


def _raw_batches(paths: StatePaths) -> Iterator[tuple[list[str], list[bytes | Record]]]:
    """``read_raw_records`` a batch at a time: a lockfile with no journal to replay is read in blocks."""
    header, index = _pending(paths)
    try:
        if header is not None and index is None:
            reading = BlockRead()
            done = 0
            # Blocks of 1 MB (~3,000 records): the caller may hold every record of a block parsed at once.
            for numbers, raws, _ in record_blocks(paths.lockfile, reading, 1 << 20):
                done += len(numbers)
                yield numbers, raws  # type: ignore[misc]  # list[bytes] is a list[bytes | Record] here
            if reading.end is not None:
                return
            # Not (all) in faxops' layout: the general reader goes on where the blocks stopped.
            rest: Iterator[tuple[str, bytes | Record]] = islice(iter_raw_records(paths.lockfile), done, None)
        else:
            rest = _merged(paths, header, index)
        while batch := list(islice(rest, 4096)):
            yield [number for number, _ in batch], [raw for _, raw in batch]
    finally:
        if index is not None:
            index.close()


def _merged(
    paths: StatePaths, header: Header | None, index: JournalIndex | None
) -> Iterator[tuple[str, bytes | Record]]:
    # A merge of two sorted streams (the lockfile's records, the numbers the journal touched): the output
    # stays sorted, which the lockfile writer requires, and no more than one record is held at a time.
    touched = sorted(index.by_number) if index else []
    i = 0

    def folded(number: str, record: Record | None) -> Record:
        assert index is not None
        return fold_events(number, record, index.events_of(number))

    if header is not None:
        for number, raw in iter_raw_records(paths.lockfile):
            while i < len(touched) and touched[i] < number:
                yield touched[i], folded(touched[i], None)
                i += 1
            if i < len(touched) and touched[i] == number:
                raw = folded(number, raw if isinstance(raw, dict) else parse_record(paths.lockfile, raw))
                i += 1
            yield number, raw
    for number in touched[i:]:
        yield number, folded(number, None)


def _replayed(paths: StatePaths, header: Header | None) -> tuple[bool, Replayed | None]:
    """The journal replayed in one sequential pass (``faxops.state.replay``); None when there is no journal;
    False when the lockfile's records cannot be read by offset (no valid summaries index): then the caller
    folds the general way."""
    after = header.journal_seq if header else 0

    def check(lineage: str | None) -> None:
        _check_lineage(paths, header, lineage)

    try:
        if header is None:
            return True, replay(paths.journal, after, lambda number: None, check)
        known = load_index(paths.summaries, paths.lockfile, header)
        if known is None:
            return False, None
        with lines_reader(known) as read:

            def old(number: str) -> Record | None:
                raw = read(number)
                return None if raw is None else parse_record(paths.lockfile, raw)

            return True, replay(paths.journal, after, old, check)
    except FileNotFoundError:
        return True, None
    except (Moved, SpillError):
        return False, None
    except OSError as exc:
        raise StateError(f"{paths.journal}: cannot read the journal: {exc.strerror}") from None


def _merged_replayed(
    paths: StatePaths, header: Header | None, replayed: Replayed
) -> Iterator[tuple[str, bytes | Record]]:
    """``_merged`` for a journal replayed whole: the records it touched come as their final bytes."""
    touched = replayed.numbers()
    i = 0
    if header is not None:
        for number, raw in iter_raw_records(paths.lockfile):
            while i < len(touched) and touched[i] < number:
                yield touched[i], replayed.record_bytes(touched[i])
                i += 1
            if i < len(touched) and touched[i] == number:
                raw = replayed.record_bytes(number)
                i += 1
            yield number, raw
    for number in touched[i:]:
        yield number, replayed.record_bytes(number)


@bulk
def fold(paths: StatePaths, campaign: str, applied_with: dict[str, Any] | None = None) -> Header | None:
    """Write the journal's events into a new lockfile and remove the journal. Caller holds the lock.

    Crash-safe at every step: until the rename, the old lockfile plus the journal is the state; after
    it, the new lockfile records the journal's last sequence number, so a journal left behind by a
    crash before its removal is recognised as already folded.
    """
    header = read_header(paths.lockfile)
    check_owner(paths, header)
    replayable, replayed = _replayed(paths, header)
    index: JournalIndex | Replayed | None = replayed
    if not replayable:
        header, index = _pending(paths)
    try:
        unchanged = applied_with is None or header is None or header.applied_with == applied_with
        # Nothing new: do not rewrite (a serial that moves without a change would stale every saved plan).
        if (index is None or not index.events) and unchanged:
            if index is not None:
                paths.journal.unlink()
                fsync_dir(paths.journal.parent)
            return header
        lineage = header.lineage if header else (index.lineage if index and index.lineage else str(uuid.uuid4()))
        new_header = Header(
            lineage=lineage,
            serial=(header.serial if header else 0) + 1,
            campaign=campaign,
            journal_seq=index.last_seq if index else (header.journal_seq if header else 0),
            applied_with=applied_with if applied_with is not None else (header.applied_with if header else {}),
            audit=list(header.audit) if header else [],
        )
        if index is not None:
            new_header.audit.extend({k: v for k, v in e.items() if k not in ("t", "seq")} for e in index.resolves)
        builder = IndexBuilder(lambda raw: summarise(parse_record(paths.lockfile, raw)))
        try:
            if isinstance(index, Replayed):
                records = _merged_replayed(paths, header, index)
            else:
                records = _merged(paths, header, index)
            write_lockfile(paths.lockfile, new_header, records, builder)
        except ValueError as exc:
            raise StateError(f"{paths.lockfile}: {exc}") from None
        except OSError as exc:
            raise StateError(
                f"{paths.lockfile}: cannot write the lockfile: {exc.strerror}; the journal "
                f"{paths.journal} still holds everything",
                hint="free disk space, then run the command again",
            ) from None
    finally:
        if index is not None:
            index.close()
    # Right after the rename: a crash before this line leaves the old index, bound to the old file, which
    # every reader then ignores.
    builder.write(paths.summaries, new_header)
    if index is not None:
        paths.journal.unlink()
        fsync_dir(paths.journal.parent)
    return new_header


class LocalWriter(StateWriter):
    """The local backend's writer: holds the ``flock`` and the open journal."""

    def __init__(
        self,
        paths: StatePaths,
        campaign: str,
        *,
        operation: str,
        lock_timeout: float = 0.0,
    ) -> None:
        if paths.campaign is None:
            paths = replace(paths, campaign=campaign)
        self.paths = paths
        self.campaign = campaign
        self.lock: StateLock = StateLock(paths.lock).acquire(operation, lock_timeout)
        try:
            # Leftovers of a crashed run become part of the lockfile before anything new happens.
            self.header = fold(paths, campaign)
        except BaseException:
            self.lock.release()
            raise
        self._journal: Journal | None = None
        self._journal_lock = threading.Lock()

    @property
    def journal(self) -> Journal:
        """The journal, created on first use so that a run that sends nothing leaves no trace."""
        with self._journal_lock:  # the first sends race to create it; two journals would reuse sequence numbers
            if self._journal is None:
                lineage = self.header.lineage if self.header else str(uuid.uuid4())
                next_seq = (self.header.journal_seq if self.header else 0) + 1
                self._journal = Journal(self.paths.journal, lineage, next_seq)
            return self._journal

    def record(self, event: Event) -> int:
        check(event)  # a misspelt type must fail here, before the provider is called, not at the next fold
        return self.journal.append(secrets.scrub_event(event))

    def state(self, detail: Collection[str] = ()) -> RecordedState:
        return load_state(self.paths, detail)

    def close(self, applied_with: Mapping[str, object] | None = None) -> Header | None:
        """Fold what was journalled into the lockfile and release the lock."""
        try:
            if self._journal is not None:
                self._journal.close()
            self.header = fold(self.paths, self.campaign, dict(applied_with) if applied_with is not None else None)
            return self.header
        finally:
            self.lock.release()

    def abandon(self) -> None:
        """Release the lock, leaving the journal for the next run to fold (used when folding fails)."""
        if self._journal is not None:
            self._journal.close()
        self.lock.release()


class LocalStore(StateStore):
    """State in files beside the manifest: lockfile, journal and ``flock`` (see the module docstring)."""

    def __init__(self, paths: StatePaths, campaign: str) -> None:
        self.paths = paths
        self.campaign = campaign

    def read(self, detail: Collection[str] = ()) -> RecordedState:
        return load_state(self.paths, detail)

    def records(self) -> Iterator[tuple[str, Record]]:
        return read_records(self.paths)

    def raw_records(self) -> Iterator[tuple[str, bytes | Record]]:
        return read_raw_records(self.paths)

    def parse_raw(self, raw: bytes) -> Record:
        return parse_record(self.paths.lockfile, raw)

    def header(self) -> Header | None:
        header = read_header(self.paths.lockfile)
        check_owner(self.paths, header)  # a lockfile of another campaign is refused, as by every reader
        return header

    def open_writer(self, operation: str, lock_timeout: float = 0.0) -> LocalWriter:
        return LocalWriter(self.paths, self.campaign, operation=operation, lock_timeout=lock_timeout)

    def lock_info(self) -> LockInfo | None:
        return read_lock_info(self.paths.lock)[0]

    def force_unlock(self, lock_id: str) -> LockInfo:
        return force_unlock(self.paths.lock, lock_id)

    def push_inbox(self) -> FileInbox:
        """The ``NAME.inbox`` file beside the manifest."""
        from faxops.state.inbox import FileInbox

        return FileInbox(self.paths.inbox)

    def identity(self) -> str:
        # The lockfile's resolved path: a copied checkout has the same lineage and serial, but not this.
        return str(self.paths.lockfile.resolve())
