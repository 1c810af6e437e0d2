"""Reading lists (recipients and suppressions): CSV, TSV, XLSX and plain text, streamed, every error located.

One reader for both kinds of list, so that a suppression list takes the same ``delimiter``,
``encoding`` and ``columns`` as a recipient list and fails the same way. Files come from other teams'
exports, so every way a file can be broken is an ``InputError`` naming the file and line (and the
column where there is one), never a silent shrink of the list:

- an unclosed quote (which would swallow the rest of the file into one field) is a malformed-CSV
  error at the line where the quote opened;
- bytes that are not in the list's encoding, and fields over the size limit, name line and column;
- an XLSX whose archive would unpack to far more than its size (a zip bomb) is refused before reading.

Rows are streamed: a million-row list is read in one pass with memory bounded by one row.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import add, sub
from pathlib import Path

from faxops.errors import InputError, Problem

#: Longest CSV field read. A phone number is at most 15 digits; names and fields are short. The limit
#: is what makes an unclosed quote near the top of a big file an error instead of a 2 GB string.
FIELD_LIMIT = 1 << 20
#: Longest text a number cell may hold once stripped. Formatted numbers ("+49 (0)30 / 901 820-00")
#: are longer than 15 digits, but nothing that reads as one is 40 characters long.
MAX_NUMBER_TEXT = 40
#: What an XLSX may unpack to in total, and the largest ratio of unpacked to packed size of a member
#: that unpacks to more than ``_RATIO_FLOOR``. Real sheets compress 5-20x; zip bombs 1000x and more.
MAX_XLSX_UNPACKED = 1 << 30
MAX_XLSX_RATIO = 100
_RATIO_FLOOR = 16 << 20
#: Delimiters tried when a list does not name one, most common first (ties go to the first).
SNIFF_DELIMITERS = (",", ";", "\t", "|")

#: Read after the last line of a CSV (see ``iter_table``); record separators never occur in real lists.
_END = "\x1efaxops:end-of-file\x1e"
_END_ROW = [_END]

csv.field_size_limit(FIELD_LIMIT)


@dataclass(frozen=True)
class ListFile:
    """Where a list is and how to read it."""

    path: Path
    format: str  # csv, tsv, xlsx or txt
    encoding: str = "utf-8-sig"
    delimiter: str | None = None
    sheet: str | None = None


def file_format(path: Path, named: str | None = None) -> str:
    """The list format: as named in the manifest, else by extension (CSV when in doubt)."""
    if named:
        return named
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix == ".txt":
        return "txt"
    return "csv"


def _error(path: Path, message: str, line: int | None = None, column: int | None = None) -> InputError:
    where = f"{path}:{line}" if line else str(path)
    return InputError(f"{where}: {message}", [Problem(message, file=path, line=line, column=column)])


def sniff_delimiter(path: Path, encoding: str) -> str:
    """The delimiter of a CSV from its header line: the candidate seen most often outside quotes.

    ``csv.Sniffer`` guesses from character frequencies across several lines and is known to pick
    letters or spaces on short samples; a header line is enough, and counting is predictable.
    """
    try:
        with path.open(encoding=encoding, newline="") as fh:
            header = fh.readline(64 * 1024)
    except (UnicodeDecodeError, OSError):
        return ","  # the reader reports the real problem, located
    counts = dict.fromkeys(SNIFF_DELIMITERS, 0)
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(SNIFF_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def iter_table(source: ListFile) -> Iterator[tuple[int, list[str]]]:
    """(line where the row starts, cells) for each row of a CSV/TSV/XLSX file, header first."""
    if source.format == "xlsx":
        yield from _iter_xlsx(source)
        return
    if source.format == "txt":
        yield from _iter_text(source)
        return
    sep = source.delimiter or ("\t" if source.format == "tsv" else sniff_delimiter(source.path, source.encoding))
    line = 1
    header: list[str] = []
    try:
        with source.path.open(newline="", encoding=source.encoding) as fh:
            # The csv module silently ends a field left open at the end of the file. A sentinel line
            # after the file tells: it arrives as a row of its own unless an open quote swallowed it.
            # (strict=True would also tell, but it refuses sloppy exports such as `=HYPERLINK("a","b")`.)
            reader = csv.reader(itertools.chain(fh, [_END]), delimiter=sep)
            for cells in reader:
                end = reader.line_num
                # Only a row over several lines can hold the sentinel, or a one-cell row be it (a million
                # rows are read per plan: the common case must cost nothing more).
                if (end != line or len(cells) == 1) and cells == [_END]:
                    break
                if end != line and cells and cells[-1].endswith(_END):
                    name = f" ({header[len(cells) - 1]})" if len(cells) <= len(header) else ""
                    raise _error(
                        source.path,
                        f"malformed CSV: a quote opened in column {len(cells)}{name} of the row starting on this "
                        "line is never closed; it swallowed the rest of the file",
                        line,
                        len(cells),
                    )
                if not header:
                    header = cells
                yield line, cells
                line = end + 1
    except UnicodeDecodeError:
        at_line, column, byte = _undecodable(source.path, source.encoding)
        raise _error(
            source.path,
            f"byte {byte} is not {source.encoding} text; set `encoding:` for this list (e.g. cp1252, latin-1)",
            at_line,
            column,
        ) from None
    except csv.Error as exc:
        if "field limit" in str(exc):
            field, field_line = _long_field(source.path, source.encoding, sep, line)
            name = f" ({header[field - 1]})" if 0 < field <= len(header) else ""
            raise _error(
                source.path,
                f"malformed CSV: column {field}{name} of the row starting here holds more than "
                f"{FIELD_LIMIT:,} characters (up to line {field_line}): an unclosed quote?",
                line,
                field,
            ) from None
        raise _error(source.path, f"malformed CSV in the row starting on this line: {exc}", line) from None


Batch = tuple[Sequence[int], list[list[str]]]


def iter_table_batches(source: ListFile, size: int) -> Iterator[Batch]:
    """``iter_table`` in batches: (line where each row starts, cells of each row), the header alone first,
    then up to ``size`` rows at a time; the same rows, lines and errors.

    A CSV of a million rows is read in C, ``size`` rows per call: ``iter_table``'s per-row checks cost
    several times the csv module's own reading. Each batch is checked in bulk instead. When its rows took
    as many lines as there are rows, every row is one line: no quote was left open, the sentinel can only
    be a row of its own, and the lines follow from the first. Otherwise the line breaks inside the cells
    say where each row starts (``_row_lines``), provided they add up to the lines the reader took and the
    sentinel is nowhere in the batch. Anything else (the sentinel inside a cell, a field over the limit,
    undecodable bytes) hands the file over to ``iter_table`` from that batch on, whose row-by-row checks
    say where.
    """
    if source.format in ("xlsx", "txt"):
        yield from _batched(iter_table(source), size, 0)
        return
    sep = source.delimiter or ("\t" if source.format == "tsv" else sniff_delimiter(source.path, source.encoding))
    done, line = 0, 1  # rows yielded so far (the header included); the line the next row starts on
    try:
        with source.path.open(newline="", encoding=source.encoding) as fh:
            reader = csv.reader(itertools.chain(fh, [_END]), delimiter=sep)
            want = 1  # the header alone: callers take it apart from the rows
            while batch := list(itertools.islice(reader, want)):
                taken = reader.line_num - line + 1
                lines: Sequence[int] | None
                if taken == len(batch):
                    lines = range(line, line + len(batch))
                    end = batch.index(_END_ROW) if _END_ROW in batch else None  # where iter_table stops too
                else:
                    lines = _row_lines(batch, line, taken)
                    if lines is None:
                        break
                    end = len(batch) - 1 if batch[-1] == _END_ROW else None
                if end is not None:
                    del batch[end:]
                    if batch:
                        yield lines[:end], batch
                    return
                yield lines, batch
                done, line, want = done + len(batch), line + taken, size
            else:
                return
    except (UnicodeDecodeError, csv.Error):
        pass  # iter_table reads up to the same place again and raises the located error
    rows = iter_table(ListFile(source.path, source.format, source.encoding, sep))
    yield from _batched(rows, size, done)


def _row_lines(batch: list[list[str]], first: int, taken: int) -> list[int] | None:
    """The line each row of ``batch`` starts on, from the line breaks inside its cells (C-level passes).

    The reader is given the file's lines as the text layer splits them (newline="": at CR LF, CR or LF)
    and keeps a break inside a quoted cell as it was, so a row spans one line more than the breaks in its
    cells. None when the sentinel is in the batch other than as its last row (a quote left open swallowed
    it: only ``iter_table`` says where it opened) or when the count does not add up to the lines the reader took.
    """
    # A separator between cells, so that a cell ending in \r and the next starting with \n count as two breaks.
    texts = list(map("\x1f".join, batch))
    if _END[0] in "".join(texts[:-1] if batch[-1] == _END_ROW else texts):
        return None
    breaks = map(
        sub,
        map(add, map(str.count, texts, repeat("\n")), map(str.count, texts, repeat("\r"))),
        map(str.count, texts, repeat("\r\n")),
    )
    spans = list(map(add, breaks, repeat(1)))
    if sum(spans) != taken:
        return None
    return list(itertools.accumulate(spans[:-1], initial=first))


def _batched(rows: Iterator[tuple[int, list[str]]], size: int, skip: int) -> Iterator[Batch]:
    """Rows of ``iter_table`` as batches (the header alone first), from row ``skip`` on."""
    for _ in itertools.islice(rows, skip):
        pass
    want = 1 if skip == 0 else size
    while batch := list(itertools.islice(rows, want)):
        yield [line for line, _ in batch], [cells for _, cells in batch]
        want = size


def _iter_text(source: ListFile) -> Iterator[tuple[int, list[str]]]:
    """A plain list: one entry per line; ``#`` comments and blank lines skipped, no header."""
    yield 0, ["number"]
    try:
        with source.path.open(encoding=source.encoding) as fh:
            for line, text in enumerate(fh, start=1):
                text = text.strip()
                if text and not text.startswith("#"):
                    yield line, [text]
    except UnicodeDecodeError:
        at_line, column, byte = _undecodable(source.path, source.encoding)
        raise _error(source.path, f"byte {byte} is not {source.encoding} text", at_line, column) from None


def _undecodable(path: Path, encoding: str) -> tuple[int | None, int | None, str]:
    """Line, column and value of the first byte that does not decode (the text reader only says "byte N")."""
    decoder = codecs.getincrementaldecoder(encoding)()
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                decoder.decode(raw)
            except UnicodeDecodeError as exc:
                return number, exc.start + 1, f"0x{raw[exc.start]:02x}" if exc.start < len(raw) else "?"
    return None, None, "?"


def _long_field(path: Path, encoding: str, sep: str, start: int) -> tuple[int, int]:
    """Which field (1-based) of the row starting at line ``start`` is over the limit, and on which line it ends."""
    field, length, quoted, line = 1, 0, False, start
    with path.open(newline="", encoding=encoding, errors="replace") as fh:
        for _ in range(start - 1):
            fh.readline()
        while chunk := fh.read(1 << 16):
            for char in chunk:
                if char == "\n":
                    line += 1
                if char == '"':
                    quoted = not quoted
                elif char == sep and not quoted:
                    field, length = field + 1, 0
                    continue
                length += 1
                if length > FIELD_LIMIT:
                    return field, line
    return field, line


def check_archive(path: Path) -> None:
    """Refuse an XLSX whose members would unpack to far more than is plausible (a zip bomb).

    The sizes checked are the ones the archive declares; Python's zipfile never returns more than
    the declared size of a member, so they also bound what openpyxl can be made to read.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise _error(path, f"cannot read the workbook: {exc}") from None
    total = sum(m.file_size for m in members)
    if total > MAX_XLSX_UNPACKED:
        raise _error(path, f"the workbook would unpack to {total:,} bytes (the limit is {MAX_XLSX_UNPACKED:,})")
    for member in members:
        ratio = member.file_size / max(1, member.compress_size)
        if member.file_size > _RATIO_FLOOR and ratio > MAX_XLSX_RATIO:
            raise _error(
                path,
                f"{member.filename} would unpack {ratio:,.0f} times larger ({member.file_size:,} bytes from "
                f"{member.compress_size:,}): refusing what looks like a zip bomb",
            )


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _iter_xlsx(source: ListFile) -> Iterator[tuple[int, list[str]]]:
    from openpyxl import load_workbook

    check_archive(source.path)
    try:
        book = load_workbook(source.path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises a zoo of exceptions on damaged files
        raise _error(source.path, f"cannot read the workbook: {exc}") from None
    try:
        sheet = source.sheet
        if sheet is not None and sheet not in book.sheetnames:
            raise _error(source.path, f"no sheet named {sheet!r} (sheets: {', '.join(book.sheetnames)})")
        ws = book[sheet] if sheet else book.worksheets[0]
        for index, values in enumerate(ws.iter_rows(values_only=True), start=1):
            yield index, [_cell(v) for v in values]
    finally:
        book.close()


def number_text(path: Path, line: int, column: int, text: str) -> str:
    """A number cell, stripped; a cell no number could fill is a malformed list, not an invalid number.

    Without this, an unclosed quote in the number column turns the rest of the file into one
    "invalid number" row: a warning, and every recipient after it silently gone.
    """
    text = text.strip()
    if "\n" in text or "\r" in text or len(text) > MAX_NUMBER_TEXT:
        what = f"holds {text.count(chr(10)) + 1} lines" if "\n" in text else f"is {len(text):,} characters long"
        raise _error(
            path,
            f"malformed list: the number field of the row starting on this line {what}; a quote opened here "
            "and closed far later (or never)?",
            line,
            column,
        )
    return text
