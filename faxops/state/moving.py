"""Moving a campaign's state between backends, and writing it out in the lockfile format.

``migrate`` holds the writer lock of both sides, so nothing sends while the state moves. It carries the
lineage, serial, journal position, applied-with digests, audit trail and every record (attempts and
unknown outcomes included) unchanged, so local → postgres → local gives back the same lockfile. It
refuses a target that holds another lineage of the campaign (another copy of its history: merging
them could send twice), or the same lineage further along than the source (moving would lose sends).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from faxops.errors import StateError
from faxops.state import LocalStore
from faxops.state.lockfile import Header, write_lockfile
from faxops.state.store import StateStore


def pull(store: StateStore, out: BinaryIO) -> Header:
    """Write the campaign's state to ``out`` in the lockfile format (review, backup, ``git diff``)."""
    header = store.header()
    if header is None:
        raise StateError(f"campaign {store.campaign} has no recorded state at {store.identity()}")
    with tempfile.TemporaryDirectory(prefix="faxops-pull-") as tmp:
        # write_lockfile writes files only (atomically); a file in a private directory, then copied
        # out, keeps one writer of the format and memory flat for a million records.
        path = Path(tmp) / "state.lock.json"
        write_lockfile(path, header, store.records())
        with path.open("rb") as fh:
            shutil.copyfileobj(fh, out, 1 << 20)
    return header


def _check_target(source: Header, target: Header | None, where: str) -> None:
    if target is None:
        return
    if target.lineage != source.lineage:
        raise StateError(
            f"{where} already holds campaign {source.campaign!r} with another lineage ({target.lineage}; "
            f"the source's is {source.lineage}); nothing was moved",
            hint="that is another history of this campaign: merging them could send twice. Remove it first "
            "if it is obsolete",
        )
    if (target.serial, target.journal_seq) > (source.serial, source.journal_seq):
        raise StateError(
            f"{where} holds a newer state of campaign {source.campaign!r} (serial {target.serial}, the "
            f"source's is {source.serial}); nothing was moved",
            hint="migrate the other way round",
        )


def migrate(source: StateStore, target: StateStore) -> tuple[Header, int]:
    """Copy the state of ``source`` to ``target``; returns the header and the number of records."""
    from faxops.state.postgres import PostgresStore

    if source.identity() == target.identity():
        raise StateError(f"the source and the target are the same state ({target.identity()})")
    source_writer = source.open_writer("migrate")  # folds a local journal first; nothing sends meanwhile
    try:
        header = source.header()
        if header is None:
            raise StateError(f"campaign {source.campaign} has no recorded state at {source.identity()}")
        target_writer = target.open_writer("migrate")
        try:
            _check_target(header, target.header(), target.identity())
            if isinstance(target, PostgresStore):
                from faxops.state.pg_writer import PostgresWriter

                assert isinstance(target_writer, PostgresWriter)
                count = target_writer.load(header, source.records())
            else:
                assert isinstance(target, LocalStore)
                counted = _Counter(source.records())
                write_lockfile(target.paths.lockfile, header, counted)
                count = counted.count
        except BaseException:
            target_writer.abandon()
            raise
        target_writer.close()
    except BaseException:
        source_writer.abandon()
        raise
    source_writer.close()
    return header, count


class _Counter:
    def __init__(self, items: Iterator[tuple[str, dict[str, object]]]) -> None:
        self.items = items
        self.count = 0

    def __iter__(self) -> Iterator[tuple[str, dict[str, object]]]:
        for item in self.items:
            self.count += 1
            yield item
