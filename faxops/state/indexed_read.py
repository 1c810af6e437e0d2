"""``load_state``'s reading of the lockfile: from its summaries index when that is valid, else whole.

The index (``faxops.state.summary_index``) holds every record's summary; the records the unfolded
journal touched, or that a caller wants in detail, are read back from the lockfile by their offsets and
replayed. A lockfile read whole (no index yet, or a stale one) leaves a fresh index behind.
"""

from __future__ import annotations

import contextlib
import os
from array import array
from collections.abc import Collection
from typing import TYPE_CHECKING

from faxops.errors import StateError
from faxops.state.fastread import read_summaries
from faxops.state.journal import JournalIndex
from faxops.state.lockfile import Header, iter_raw_records, parse_record, read_header
from faxops.state.records import Summary, fold_events, summarise, summarise_raw
from faxops.state.summary_index import SummaryIndex, binding, load_index, read_lines, write_index

if TYPE_CHECKING:
    from faxops.state import StatePaths


def indexed_summaries(
    paths: StatePaths,
    header: Header,
    touched: dict[str, list[int]],
    detail: Collection[str],
    index: JournalIndex | None,
) -> dict[str, Summary] | None:
    """The lockfile's summaries (for ``load_state``) from its index (or, missing or stale, from one
    block-wise read, which then writes the index), with the records the journal touched or ``detail``
    asks for read back by offset and replayed; None when neither works (not faxops' layout): the caller
    reads the lockfile whole."""
    known = summary_index(paths, header)
    if known is None:
        return None
    wanted = set(touched).union(detail)
    lines = read_lines(known, wanted) if wanted else {}
    if lines is None:
        return None
    summaries = known.summaries
    for number, raw in lines.items():
        record = parse_record(paths.lockfile, raw)
        if number in touched and index is not None:
            record = fold_events(number, record, index.events_of(number))
        summaries[number] = summarise(record)
    return summaries


def summary_index(paths: StatePaths, header: Header) -> SummaryIndex | None:
    """The lockfile's valid index, or one made by reading the lockfile whole (and written for the next
    reader); None when the lockfile is not in faxops' own layout."""
    known = load_index(paths.summaries, paths.lockfile, header)
    if known is not None:
        return known
    try:
        before = os.stat(paths.lockfile)
    except OSError:
        return None
    whole = read_summaries(paths.lockfile, lambda raw: summarise(parse_record(paths.lockfile, raw)))
    if whole is None:
        return None
    known = SummaryIndex(
        paths.lockfile, binding(before), whole.summaries, whole.numbers, memoryview(array("Q", whole.offsets))
    )
    # Written only when the file read is the one stat-ed, its header unchanged: an index bound to another
    # file's bytes would be trusted by the next reader.
    with contextlib.suppress(OSError, StateError):
        if binding(os.stat(paths.lockfile)) == known.binding and read_header(paths.lockfile) == header:
            write_index(paths.summaries, header, before, whole.numbers, whole.summaries, whole.offsets)
    return known


def read_general(
    paths: StatePaths, touched: dict[str, list[int]], detail: Collection[str], index: JournalIndex | None
) -> dict[str, Summary]:
    """Every record of a lockfile in any layout, read one by one (a file reformatted by hand)."""
    summaries: dict[str, Summary] = {}
    for number, raw in iter_raw_records(paths.lockfile):
        pending = number in touched
        fast = not pending and isinstance(raw, bytes) and number not in detail
        summary = summarise_raw(raw) if fast and isinstance(raw, bytes) else None
        if summary is None:
            record = raw if isinstance(raw, dict) else parse_record(paths.lockfile, raw)
            if pending and index is not None:
                record = fold_events(number, record, index.events_of(number))
            summary = summarise(record)
        summaries[number] = summary
    return summaries
