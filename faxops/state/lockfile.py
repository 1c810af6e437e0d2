"""The lockfile: a campaign's recorded state, ``NAME.lock.json`` beside its manifest.

It is one JSON document, written so that every recipient sits on its own line, sorted by number::

    {
      "format_version": 1,
      "lineage": "...",
      "serial": 7,
      ...
      "recipients": {
        "+33142685300": {"attempts": [...], "status": "delivered"},
        ...
      }
    }

That keeps Git diffs one line per changed recipient, and lets faxops stream a million entries instead
of building one huge object. A file edited by hand (other whitespace) is still read, just not streamed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any, Protocol

import orjson

from faxops.errors import StateError
from faxops.state.files import atomic_write_stat
from faxops.state.records import Record

FORMAT_VERSION = 1
_RECIPIENTS_OPEN = b'  "recipients": {'


@dataclass
class Header:
    """Everything in the lockfile except the recipients."""

    lineage: str
    serial: int = 0
    campaign: str = ""
    journal_seq: int = 0
    applied_with: dict[str, Any] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "lineage": self.lineage,
            "serial": self.serial,
            "campaign": self.campaign,
            "journal_seq": self.journal_seq,
            "applied_with": self.applied_with,
            "audit": self.audit,
        }


def _corrupt(path: Path, detail: str) -> StateError:
    return StateError(
        f"{path}: the lockfile is corrupt ({detail}); faxops will not overwrite it",
        hint=(
            "restore it from Git (`git checkout -- <lockfile>`) or a backup; sends recorded only in it "
            "are otherwise forgotten and could be repeated"
        ),
    )


def _header_from(path: Path, data: Any) -> Header:
    if not isinstance(data, dict):
        raise _corrupt(path, "not a JSON object")
    version = data.get("format_version")
    # A newer format is refused, not guessed at: reading it wrongly could forget sends and repeat them.
    if version != FORMAT_VERSION:
        raise StateError(
            f"{path}: lockfile format_version {version!r} is not supported by this faxops "
            f"(it reads version {FORMAT_VERSION})",
            hint="upgrade faxops",
        )
    try:
        return Header(
            lineage=str(data["lineage"]),
            serial=int(data["serial"]),
            campaign=str(data.get("campaign", "")),
            journal_seq=int(data.get("journal_seq", 0)),
            applied_with=dict(data.get("applied_with") or {}),
            audit=list(data.get("audit") or []),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _corrupt(path, f"bad header field {exc}") from None


def read_header(path: Path) -> Header | None:
    """The header only (cheap even for a million recipients); None when there is no lockfile."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"{path}: cannot read the lockfile: {exc.strerror}") from None
    with fh:
        # faxops writes the header first and the recipients after one known line: read up to it only.
        head = bytearray()
        for line in fh:
            if line.rstrip(b"\r\n") == _RECIPIENTS_OPEN:
                try:
                    return _header_from(path, orjson.loads(bytes(head).rstrip().rstrip(b",") + b"}"))
                except orjson.JSONDecodeError:
                    break
            head += line
    # Not in faxops' own layout (reformatted by hand or by a merge tool): read the whole document.
    header, _ = _read_whole(path)
    return header


def _read_whole(path: Path) -> tuple[Header, dict[str, Record]]:
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise _corrupt(path, f"invalid JSON: {exc}") from None
    header = _header_from(path, data)
    recipients = data.get("recipients")
    if not isinstance(recipients, dict) or not all(isinstance(r, dict) for r in recipients.values()):
        raise _corrupt(path, "no recipients object")
    return header, recipients


def iter_records(path: Path) -> Iterator[tuple[str, Record]]:
    """Stream ``(number, record)`` in file order (sorted by number in files faxops wrote)."""
    for number, raw in iter_raw_records(path):
        yield number, raw if isinstance(raw, dict) else parse_record(path, raw)


def parse_record(path: Path, raw: bytes) -> Record:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _corrupt(path, f"recipient entry {raw[:40]!r}... is not valid JSON") from None
    if not isinstance(record, dict):
        raise _corrupt(path, "a recipient entry is not an object")
    return record


def iter_raw_records(path: Path) -> Iterator[tuple[str, bytes | Record]]:
    """Like ``iter_records`` but leaves each record as its JSON bytes where the file is in faxops'
    layout, so that a reader that only needs a record's status need not parse a million of them."""
    with path.open("rb") as fh:
        for line in fh:
            if line.rstrip(b"\r\n") == _RECIPIENTS_OPEN:
                break
        else:
            yield from _read_whole(path)[1].items()
            return
        count = 0
        for line_no, line in enumerate(fh, start=1):
            stripped = line.strip()
            if not stripped:
                continue
            if stripped in (b"}", b"},"):
                return
            if not stripped.startswith(b'"'):
                break
            key_end = stripped.find(b'": {')
            if key_end < 0 or not stripped.endswith((b"}", b"},")):
                raise _corrupt(path, f"recipient entry {line_no} is not valid JSON")
            count += 1
            yield stripped[1:key_end].decode("utf-8", "replace"), stripped[key_end + 3 :].rstrip(b",")
        else:
            raise _corrupt(path, "the file ends inside the recipients")
    # Not in faxops' own layout (edited by hand?): read the whole document, skip what was yielded.
    for index, item in enumerate(_read_whole(path)[1].items()):
        if index >= count:
            yield item


class LineObserver(Protocol):
    """Sees every record ``write_lockfile`` writes (the fold builds the summaries index from them)."""

    def lines(self, numbers: list[str], datas: list[bytes], starts: list[int]) -> None:
        """A batch of records in file order: numbers, JSON bytes, where each line starts in the file."""

    def end(self, offset: int, stat: os.stat_result | None) -> None:
        """Where the recipients end; the new lockfile's ``stat`` after its rename (None: replaced since)."""


def write_lockfile(
    path: Path, header: Header, records: Iterable[tuple[str, bytes | Record]], observer: LineObserver | None = None
) -> int:
    """Atomically write a lockfile; ``records`` must come sorted by number. Returns bytes written.

    A record given as bytes is written as it is: a record the journal did not touch is copied from the
    old lockfile without being parsed and serialised again (most of a fold after a small retry run)."""
    end = 0

    def chunks() -> Iterator[bytes]:
        nonlocal end
        head = orjson.dumps(header.to_json(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        # Re-open the header object to append the recipients as the last key.
        opening = head[: head.rstrip().rfind(b"}")].rstrip() + b",\n" + _RECIPIENTS_OPEN + b"\n"
        yield opening
        position = len(opening)
        previous = None
        numbers: list[str] = []
        datas: list[bytes] = []

        def batch() -> bytes:
            nonlocal position
            lines = [b'    "' + number.encode() + b'": ' + data for number, data in zip(numbers, datas, strict=True)]
            # Each line but the first of the file follows the previous one's ",\n".
            first = position + (0 if previous_lines == 0 else 2)
            body = b",\n".join(lines) if previous_lines == 0 else b",\n" + b",\n".join(lines)
            if observer is not None:
                observer.lines(numbers, datas, list(accumulate((len(line) + 2 for line in lines[:-1]), initial=first)))
            position += len(body)
            return body

        previous_lines = 0
        for number, record in records:
            if previous is not None and number <= previous:
                raise ValueError(f"lockfile records out of order: {number} after {previous}")
            previous = number
            numbers.append(number)
            datas.append(record if isinstance(record, bytes) else orjson.dumps(record, option=orjson.OPT_SORT_KEYS))
            if len(numbers) >= 4096:
                yield batch()
                previous_lines += len(numbers)
                numbers, datas = [], []
        if numbers:
            yield batch()
            previous_lines += len(numbers)
        end = position if previous_lines == 0 else position + 1  # past the last record's newline
        yield b"  }\n}\n" if previous_lines == 0 else b"\n  }\n}\n"

    written, stat = atomic_write_stat(path, chunks(), mode=0o600)
    if observer is not None:
        observer.end(end, stat)
    return written
