"""The summaries of a whole lockfile read a block at a time: a warm plan's reading of the state.

``load_state`` needs, per recorded number, only its status and attempt count, and at a million
recipients almost every record is settled (delivered, queued, sending). Reading the file line by line
and summarising each line with a function call cost more than the plan itself; here each block of
lines goes through a few list comprehensions of C-level calls, and only a record that is not settled
is parsed. The same summarising serves the fold, which writes the summaries index
(``faxops.state.summary_index``) from the records it has just written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path

from faxops.domain import Status
from faxops.state.records import Summary, shared_summary

_BLOCK = 8 << 20
_OPEN = b'  "recipients": {'
_CLOSE = (b"  }", b"}")
_TAILS = {f',"status":"{s}"}}'.encode(): s for s in (Status.DELIVERED, Status.QUEUED, Status.SENDING)}


@dataclass
class WholeRead:
    """A whole lockfile's summaries in file order, and where each record's line starts (``offsets`` has
    one more entry: where the recipients end), so that a record can be read back with one ``pread``."""

    summaries: dict[str, Summary] = field(default_factory=dict)
    numbers: list[str] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)


def read_summaries(path: Path, parse: Callable[[bytes], Summary]) -> WholeRead | None:
    """Every record's summary, in file order; None when the file is not in faxops' own layout (then
    the caller reads it the general way, which also reports what is wrong with it).

    ``parse`` summarises a record that is not settled from its JSON bytes."""
    whole = WholeRead()
    reading = BlockRead()
    for numbers, raws, starts in record_blocks(path, reading):
        whole.summaries.update(zip(numbers, summarise_raws(raws, parse), strict=True))
        whole.numbers += numbers
        whole.offsets += starts
    if reading.end is None:
        return None
    whole.offsets.append(reading.end)
    return whole


@dataclass
class BlockRead:
    """How ``record_blocks`` ended: ``end`` is where the recipients end, None when the file is not (or not
    all) in faxops' own layout: the records yielded so far are right, the rest is for the general reader."""

    end: int | None = None


def record_blocks(path: Path, reading: BlockRead, block: int = 0) -> Iterator[tuple[list[str], list[bytes], list[int]]]:
    """A lockfile's records a block of lines at a time (``block`` bytes, by default ``_BLOCK``): numbers,
    JSON bytes, and where each line starts."""
    with path.open("rb") as fh:
        position = 0
        for line in fh:
            position += len(line)
            if line.rstrip(b"\r\n") == _OPEN:
                break
        else:
            return
        rest = b""
        while True:
            data = fh.read(block or _BLOCK)
            if not data:
                return  # ends inside the recipients: the general reader says so
            data = rest + data
            cut = data.rfind(b"\n") + 1
            lines, rest = data[: cut - 1].split(b"\n") if cut else [], data[cut:]
            done = False
            if _CLOSE[0] in lines:
                lines = lines[: lines.index(_CLOSE[0])]
                done = True
            starts = list(accumulate((len(line) + 1 for line in lines), initial=position))
            position = starts.pop()
            split = _split_block(lines)
            if split is None:
                return
            yield split[0], split[1], starts
            if done:
                reading.end = position
                return


def _split_block(lines: list[bytes]) -> tuple[list[str], list[bytes]] | None:
    if not all(line[:5] == b'    "' for line in lines):
        return None  # indented otherwise, a blank line, a carriage return...: not faxops' own layout
    ends = [line.find(b'": {', 5) for line in lines]
    if -1 in ends:
        return None
    raws = [line[end + 3 :] for line, end in zip(lines, ends, strict=True)]
    raws = [raw[:-1] if raw[-1:] == b"," else raw for raw in raws]
    if not all(raw[-1:] == b"}" for raw in raws):
        return None
    numbers = [line[5:end].decode("utf-8", "replace") for line, end in zip(lines, ends, strict=True)]
    return numbers, raws


def summarise_raws(raws: list[bytes], parse: Callable[[bytes], Summary]) -> list[Summary]:
    """The summaries of records given as their JSON bytes (keys sorted, as faxops writes them); a settled
    one is read off its bytes and shared (see ``summarise_raw``), any other is given to ``parse``."""
    tails = [_TAILS.get(raw[raw.rfind(b',"status":"') :]) for raw in raws]
    # "n": is only ever an attempt's key (a quote inside a JSON string is escaped), as in summarise_raw.
    counts = [raw.count(b'"n":') - raw.count(b'"status":"not_sent"') for raw in raws]
    table = _SHARED_BY_COUNT
    found = [
        None if status is None else table[status][count] if 0 <= count < _COUNTS else shared_summary(status, count)
        for status, count in zip(tails, counts, strict=True)
    ]
    if None in found:
        found = [summary or parse(raw) for summary, raw in zip(found, raws, strict=True)]
    return found  # type: ignore[return-value]  # no None left


_COUNTS = 16
_SHARED_BY_COUNT = {status: [shared_summary(status, n) for n in range(_COUNTS)] for status in _TAILS.values()}
