"""The report as files: CSV (safe to open in a spreadsheet), JSON and HTML, each streamed in pieces
so that a million rows are never one string in memory."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from itertools import compress, repeat
from operator import attrgetter, itemgetter, methodcaller
from typing import Any

import orjson

from faxops.report_model import CSV_COLUMNS, Report, mask_number, masked

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run: text starting like a formula gets a leading quote.

    E.164 numbers and timestamps are left as they are: digits after a '+' evaluate to nothing harmful.
    """
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    text = str(value)
    if text.startswith(_FORMULA_START) and not (text[0] == "+" and text[1:].isdigit()):
        return "'" + text
    return text


def render_csv(report: Report, *, mask: bool = False) -> str:
    return b"".join(iter_csv(report, mask=mask)).decode()


def iter_csv(report: Report, *, mask: bool = False, rows_per_chunk: int = 10_000) -> Iterator[bytes]:
    """The CSV report in pieces: a million rows are never one string (nor its encoded copy) in memory."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    rows = report.rows
    for start in range(0, len(rows), rows_per_chunk):
        part = rows[start : start + rows_per_chunk]
        columns = [list(map(_GET[c], part)) for c in CSV_COLUMNS]
        if mask:  # as ``masked`` does, before the cells are made
            columns[0] = [mask_number(str(n)) if str(n).startswith("+") else "***" for n in columns[0]]
        writer.writerows(zip(*map(_csv_column, columns), strict=True))
        yield out.getvalue().encode()
        out.seek(0)
        out.truncate()
    if not rows:
        yield out.getvalue().encode()


_GET = {c: attrgetter(c) for c in CSV_COLUMNS}
_TEXT_TYPES = {str, type(None)}
_COUNT_TYPES = {int, type(None)}
_starts_like_a_formula = methodcaller("startswith", _FORMULA_START)
_starts_with_plus = methodcaller("startswith", "+")
_TAIL = itemgetter(slice(1, None))


def _csv_column(values: list[Any]) -> list[Any]:
    """A column of CSV cells as ``_cell`` makes them, a column at a time: the csv module writes None as
    an empty cell and an int as its digits, so only text that starts like a formula (and a list of job
    IDs) needs ``_cell``, and C-level passes find whether a column holds any. Per cell, ``_cell`` on
    twelve columns was a quarter of a report of a million rows."""
    kinds = set(map(type, values))
    if kinds == {list}:
        values = list(map(" ".join, map(map, repeat(str), values)))
        kinds = {str}
    if kinds <= _TEXT_TYPES:
        texts = list(filter(None, values))
        flagged = list(compress(texts, map(_starts_like_a_formula, texts)))
        # The number column: every cell starts with '+', and '+' and digits are left as they are.
        if not flagged or (all(map(_starts_with_plus, flagged)) and all(map(str.isdigit, map(_TAIL, flagged)))):
            return values
    if kinds <= _COUNT_TYPES and min(filter(None, values), default=0) >= 0:
        return values
    return list(map(_cell, values))


def render_json(report: Report, *, mask: bool = False) -> bytes:
    return b"".join(iter_json(report, mask=mask))


def iter_json(report: Report, *, mask: bool = False, rows_per_chunk: int = 10_000) -> Iterator[bytes]:
    """The JSON report in pieces, byte for byte what ``orjson`` writes with ``OPT_INDENT_2`` for the whole
    document, without the whole document (hundreds of megabytes at a million rows) in memory at once."""
    head = orjson.dumps(report.to_json(mask=mask, recipients=False) | {"recipients": []}, option=orjson.OPT_INDENT_2)
    if not report.rows:
        yield head
        return
    yield head[: -len(b"[]\n}")] + b"[\n"
    rows = report.rows
    for start in range(0, len(rows), rows_per_chunk):
        part = rows[start : start + rows_per_chunk]
        # One orjson call per chunk: the chunk as an indented list, its brackets cut, two more spaces of
        # indent on every line (the rows sit one level deeper in the report than in a bare list).
        body = orjson.dumps([masked(r) for r in part] if mask else part, option=orjson.OPT_INDENT_2)
        yield (b",\n  " if start else b"  ") + body[2:-2].replace(b"\n", b"\n  ")
    yield b"\n  ]\n}"


def render_html(report: Report, *, mask: bool = False) -> str:
    """The HTML report: one self-contained page (see ``faxops.report_html``)."""
    from faxops.report_html import render

    return render(report, mask=mask)
