"""The summaries index: a lockfile's per-number summaries kept compactly beside it, so that a warm plan
need not read the whole lockfile (300 MB at a million recipients) to learn that everyone was delivered.

It lives in the campaign's ``.faxops/`` folder (not in Git) and is a cache, never a source of truth:
it is bound to the exact lockfile it summarises (campaign, lineage, serial, journal sequence, and the
file's device, inode, size, mtime and ctime) and checksummed, and anything that does not match — a
lockfile edited, copied or checked out by Git, a truncated or damaged index, one of another campaign —
makes the reader ignore it and read the lockfile as before. A wrong summary could mean a fax sent twice.

The file is parsed as data (no pickle: a pull request can commit files into a checkout)::

    faxops-summaries 1\\n
    {"campaign": ..., "lineage": ..., "lockfile": {...}, "count": N, "kinds": [[status, attempts], ...],
     "sizes": [numbers, codes, offsets, spelled], "crc32": ...}\\n
    numbers   the numbers in lockfile order, joined by \\n (UTF-8)
    codes     one byte per number: k > 0 is kinds[k - 1] (a settled record), 0 means "spelled out"
    offsets   N + 1 little-endian uint64: where each record's line starts in the lockfile, and where they end
    spelled   a JSON object: number -> every field of its Summary (the few records that are not settled)

It is written by the fold right after it renames the new lockfile, and by a reader that had to read
the whole lockfile anyway. Writing it is best effort (a read-only checkout just goes without).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import zlib
from array import array
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, cast

import orjson

from faxops.domain import FailureClass, Status
from faxops.state.fastread import summarise_raws
from faxops.state.lockfile import Header
from faxops.state.records import Summary, shared_summary

MAGIC = b"faxops-summaries 1\n"
_MAX_KINDS = 255
_STATUSES = {str(s): s for s in Status}
_FAILURES = {str(f): f for f in FailureClass}


def binding(st: os.stat_result) -> dict[str, int]:
    """What ties an index to one lockfile file: device, inode, size, mtime and ctime."""
    # ctime cannot be set by hand (mtime can, with touch -d), and a rename or checkout changes inode or ctime.
    return {
        "dev": st.st_dev,
        "ino": st.st_ino,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
    }


def _header_binding(header: Header) -> dict[str, Any]:
    return {
        "campaign": header.campaign,
        "lineage": header.lineage,
        "serial": header.serial,
        "journal_seq": header.journal_seq,
    }


def _spell(summary: Summary) -> list[Any]:
    return [
        str(summary.status),
        summary.attempts,
        summary.retryable,
        summary.reason,
        summary.reference,
        summary.job_id,
        summary.provider,
        summary.updated_at,
        None if summary.failure is None else str(summary.failure),
        summary.send_at,
    ]


def _unspell(fields: Any) -> Summary:
    if not isinstance(fields, list) or len(fields) != 10 or not isinstance(fields[1], int):
        raise ValueError("bad summary")
    status, attempts, retryable, reason, reference, job_id, provider, updated_at, failure, send_at = fields
    return Summary(
        _STATUSES[status],
        attempts,
        retryable,
        reason,
        reference,
        job_id,
        provider,
        updated_at,
        None if failure is None else _FAILURES[failure],
        send_at,
    )


def write_index(
    path: Path,
    header: Header,
    lockfile_stat: os.stat_result,
    numbers: list[str],
    summaries: dict[str, Summary],
    offsets: list[int],
) -> bool:
    """Write the index of a lockfile whose records (in file order) are ``numbers`` with ``summaries``,
    their lines starting at ``offsets`` (one more: the end). Returns False when it was not written."""
    if len(summaries) != len(numbers) or len(offsets) != len(numbers) + 1:
        return False  # a number twice in the file: the reader's dict would not say which line is whose
    # By identity (a Summary is mutable, hence not hashable): the settled records share a few summaries.
    values = list(map(summaries.__getitem__, numbers))
    ids = list(map(id, values))
    distinct = dict(zip(ids, values, strict=True))
    kinds: list[Summary] = []
    code_of: dict[int, int] = {}
    for key, summary in distinct.items():
        # Only the shared summaries of settled records (status and count, nothing else) get a code: they
        # are what ``shared_summary`` gives back for the same pair on reading.
        if shared_summary(summary.status, summary.attempts) is summary and len(kinds) < _MAX_KINDS:
            kinds.append(summary)
            code_of[key] = len(kinds)
        else:
            code_of[key] = 0
    codes = bytes(map(code_of.__getitem__, ids))
    spelled = {number: _spell(summaries[number]) for number, code in zip(numbers, codes, strict=True) if not code}
    offsets_array = array("Q", offsets)
    if sys.byteorder != "little":
        offsets_array.byteswap()
    sections = [
        "\n".join(numbers).encode(),
        bytes(codes),
        offsets_array.tobytes(),
        orjson.dumps(spelled),
    ]
    crc = 0
    for section in sections:
        crc = zlib.crc32(section, crc)
    meta = {
        **_header_binding(header),
        "lockfile": binding(lockfile_stat),
        "count": len(numbers),
        "kinds": [[str(s.status), s.attempts] for s in kinds],
        "sizes": [len(s) for s in sections],
        "crc32": crc,
    }
    return _replace(path, [MAGIC, orjson.dumps(meta), b"\n", *sections])


def _replace(path: Path, chunks: list[bytes]) -> bool:
    # No fsync: a crash can leave the index torn or empty, which its checksum and sizes reveal (it is then
    # ignored and rebuilt); paying an fsync for a cache would slow every fold.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False
    return True


def remove_index(path: Path) -> None:
    """Drop an index (best effort): a lockfile about to change makes it stale anyway."""
    with contextlib.suppress(OSError):
        path.unlink()


@dataclass
class SummaryIndex:
    """A valid index, loaded: every record's summary, and where its line is in the lockfile."""

    lockfile: Path
    binding: dict[str, int]  # of the lockfile it summarises: a line is read back only from that file
    summaries: dict[str, Summary]
    numbers: list[str]
    _offsets: memoryview
    _positions: dict[str, int] | None = None

    def line_of(self, number: str) -> tuple[int, int] | None:
        """Start and end of ``number``'s line in the lockfile; None when the lockfile has no such record."""
        if self._positions is None:
            self._positions = dict(zip(self.numbers, range(len(self.numbers)), strict=True))
        i = self._positions.get(number)
        if i is None:
            return None
        return self._offsets[i], self._offsets[i + 1]


def load_index(path: Path, lockfile: Path, header: Header) -> SummaryIndex | None:
    """The index at ``path`` if it summarises exactly this lockfile (whose ``header`` was just read), else None."""
    try:
        before = os.stat(lockfile)
        with path.open("rb") as fh:
            data = fh.read()
    except OSError:
        return None
    try:
        return _parse(data, lockfile, header, before)
    except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError, orjson.JSONDecodeError):
        return None  # damaged or not ours: ignored, the lockfile is read instead


def _parse(data: bytes, lockfile: Path, header: Header, lockfile_stat: os.stat_result) -> SummaryIndex | None:
    if not data.startswith(MAGIC):
        return None
    meta_end = data.index(b"\n", len(MAGIC))
    meta = orjson.loads(data[len(MAGIC) : meta_end])
    if not isinstance(meta, dict):
        return None
    if any(meta.get(key) != value for key, value in _header_binding(header).items()):
        return None
    if meta.get("lockfile") != binding(lockfile_stat):
        return None
    count, sizes, kinds = meta["count"], meta["sizes"], meta["kinds"]
    if not isinstance(count, int) or not isinstance(sizes, list) or len(sizes) != 4:
        return None
    if sum(sizes) != len(data) - meta_end - 1 or not all(isinstance(s, int) and s >= 0 for s in sizes):
        return None  # truncated, or something appended
    body = memoryview(data)[meta_end + 1 :]
    if zlib.crc32(body) != meta["crc32"]:
        return None
    cuts = [0]
    for size in sizes:
        cuts.append(cuts[-1] + size)
    numbers_block, codes, offsets_block, spelled_block = (body[a:b] for a, b in pairwise(cuts))
    numbers = bytes(numbers_block).decode().split("\n") if count else []
    if len(numbers) != count or len(codes) != count or len(offsets_block) != 8 * (count + 1):
        return None
    table: list[Summary | None] = [None]
    for status, attempts in kinds:
        if not isinstance(attempts, int) or attempts < 0:
            return None
        table.append(shared_summary(_STATUSES[status], attempts))
    spelled = orjson.loads(spelled_block)
    if not isinstance(spelled, dict):
        return None
    # An out-of-range code raises IndexError here, which the caller takes as a damaged index.
    summaries = dict(zip(numbers, map(table.__getitem__, codes), strict=True))
    if len(summaries) != count or bytes(codes).count(0) != len(spelled):
        return None
    for number, fields in spelled.items():
        if summaries.get(number, False) is not None:
            return None  # spelled out, yet not a number whose code says so
        summaries[number] = _unspell(fields)
    offsets = array("Q")
    offsets.frombytes(offsets_block)
    if sys.byteorder != "little":
        offsets.byteswap()
    if count and (offsets[-1] > lockfile_stat.st_size or offsets[0] <= 0):
        return None
    # Every code 0 was a number spelled out (counted above, each replaced once): no None is left.
    return SummaryIndex(
        lockfile, binding(lockfile_stat), cast("dict[str, Summary]", summaries), numbers, memoryview(offsets)
    )


class Moved(Exception):
    """A record's line is not where the index says: the lockfile is to be read the general way."""


@contextlib.contextmanager
def lines_reader(index: SummaryIndex) -> Iterator[Callable[[str], bytes | None]]:
    """A function giving a number's record as JSON bytes read from the lockfile by offset, or None when the
    lockfile holds no such number; it raises ``Moved`` when a line is not where the index says."""
    try:
        fh = index.lockfile.open("rb")
    except OSError:
        raise Moved from None  # gone since the index was read: whoever reads it whole says what is wrong
    with fh:
        fd = fh.fileno()
        if binding(os.fstat(fd)) != index.binding:
            raise Moved  # replaced since the index was read (a fold ran)

        def read(number: str) -> bytes | None:
            where = index.line_of(number)
            if where is None:
                return None
            start, end = where
            line = os.pread(fd, end - start, start)
            prefix = b'    "' + number.encode() + b'": '
            raw = line[len(prefix) :].rstrip(b"\n").rstrip(b",")
            if not line.startswith(prefix) or not raw.startswith(b"{") or not raw.endswith(b"}"):
                raise Moved
            return raw

        yield read


def read_lines(index: SummaryIndex, numbers: Collection[str]) -> dict[str, bytes] | None:
    """The JSON bytes of these numbers' records, read from the lockfile by offset (a number it does not hold
    is left out); None when a line is not where the index says (the caller then reads the lockfile)."""
    found: dict[str, bytes] = {}
    # In file order: the reads go forward through the file.
    wanted = sorted((where, number) for number in numbers if (where := index.line_of(number)) is not None)
    if not wanted:
        return found
    try:
        with lines_reader(index) as read:
            for _, number in wanted:
                raw = read(number)
                assert raw is not None
                found[number] = raw
    except Moved:
        return None
    return found


class IndexBuilder:
    """Collects the index of a lockfile while ``write_lockfile`` writes it (a ``LineObserver``): the
    summaries come from the very bytes written, as a reader of the new lockfile would compute them."""

    def __init__(self, parse: Callable[[bytes], Summary]) -> None:
        self._parse = parse
        self.numbers: list[str] = []
        self.summaries: dict[str, Summary] = {}
        self.offsets: list[int] = []
        self.stat: os.stat_result | None = None

    def lines(self, numbers: list[str], datas: list[bytes], starts: list[int]) -> None:
        self.numbers += numbers
        self.summaries.update(zip(numbers, summarise_raws(datas, self._parse), strict=True))
        self.offsets += starts

    def end(self, offset: int, stat: os.stat_result | None) -> None:
        self.offsets.append(offset)
        self.stat = stat

    def write(self, path: Path, header: Header) -> bool:
        """Write the index of the lockfile just written (not when it was replaced before its ``stat``)."""
        if self.stat is None:
            return False
        return write_index(path, header, self.stat, self.numbers, self.summaries, self.offsets)
