"""The batch reader of lists (bulk checks, C-level reading) against the row-by-row reader it stands in for.

``iter_table_batches`` must give exactly ``iter_table``'s rows and line numbers, and its errors, whatever
the batch size and wherever in the file a row turns odd (a cell over several lines, an open quote, bytes
that do not decode, a field over the limit): it hands over to the row-by-row reader from that batch on.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from faxops.errors import InputError
from faxops.tables import FIELD_LIMIT, ListFile, iter_table, iter_table_batches

ROWS = "".join(f"+49 30 {20000000 + i},Company {i}\n" for i in range(12))
CASES = {
    "plain": "fax,company\n" + ROWS,
    "no-final-newline": "fax,company\n" + ROWS.rstrip("\n"),
    "crlf-and-blank-lines": "fax,company\r\n\r\n" + ROWS.replace("\n", "\r\n") + "\r\n\r\n",
    "multi-line-cells-late": "fax,company\n"
    + ROWS
    + '+1 202 555 0123,"Two\r\nlines"\n030 1,"three\nmore\rlines"\n+44,x\n',
    "multi-line-cell-first": 'fax,company\n030 1,"a\nb"\n' + ROWS,
    "multi-line-header": 'fax,"com\npany"\n' + ROWS,
    "sentinel-text-in-the-file": "fax,company\n" + ROWS + "\x1efaxops:end-of-file\x1e\n+33 1 42,after\n",
    "short-and-long-rows": "fax,company,extra\n+49 30 1\n+49 30 2,a,b,c,d\n,\n" + ROWS,
    "quotes-and-formulas": 'fax,company\n"+49 30 1","=HYPERLINK(""a"",""b"")"\n+49 30 2,"x ""y"" z"\n' + ROWS,
    "only-a-header": "fax,company\n",
    "empty": "",
}
ERRORS = {
    "unclosed-quote-late": "fax,company\n" + ROWS + '+49 30 3,"never closed\n' + ROWS,
    "unclosed-quote-in-the-last-line": "fax,company\n" + ROWS + '+49 30 3,"never closed',
    "field-over-the-limit": "fax,company\n" + ROWS + '+49 30 4,"' + "x" * (FIELD_LIMIT + 10) + '"\n' + ROWS,
}


Rows = list[tuple[int, list[str]]]


def _both(path: Path, size: int, encoding: str = "utf-8") -> tuple[Rows, Rows]:
    source = ListFile(path, "csv", encoding)
    rows = list(iter_table(source))
    batches = list(iter_table_batches(source, size))
    if batches:
        assert len(batches[0][1]) == 1  # the header alone
    assert all(len(lines) == len(cells) and 0 < len(cells) <= max(size, 1) for lines, cells in batches)
    return rows, [(line, row) for lines, cells in batches for line, row in zip(lines, cells, strict=True)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 50_000])
@pytest.mark.parametrize("case", list(CASES))
def test_batches_are_the_rows_and_lines_of_the_row_by_row_reader(tmp_path: Path, case: str, size: int) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(CASES[case].encode())
    rows, batched = _both(path, size)
    assert batched == rows
    if case == "multi-line-cells-late":
        assert rows[-3:] == [
            (14, ["+1 202 555 0123", "Two\r\nlines"]),
            (16, ["030 1", "three\nmore\rlines"]),
            (19, ["+44", "x"]),
        ]
    if case == "sentinel-text-in-the-file":
        assert rows[-1][1][0] == "+49 30 20000011"  # both stop at it, as they always did


@pytest.mark.parametrize("size", [1, 4, 50_000])
@pytest.mark.parametrize("case", list(ERRORS))
def test_batches_raise_the_row_by_row_readers_located_error(tmp_path: Path, case: str, size: int) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(ERRORS[case].encode())
    with pytest.raises(InputError) as expected:
        list(iter_table(ListFile(path, "csv", "utf-8")))
    with pytest.raises(InputError) as got:
        list(iter_table_batches(ListFile(path, "csv", "utf-8"), size))
    assert got.value.message == expected.value.message
    assert [(p.line, p.column, p.message) for p in got.value.problems] == [
        (p.line, p.column, p.message) for p in expected.value.problems
    ]
    assert f"list.csv:{14}" in got.value.message  # the row where the quote opened, not where reading stopped


@pytest.mark.parametrize("size", [1, 50_000])
def test_bytes_that_do_not_decode_are_located(tmp_path: Path, size: int) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(("fax,company\n" + ROWS).encode() + b"+49 30 5,M\xfcller\n" + ROWS.encode())
    with pytest.raises(InputError) as got:
        list(iter_table_batches(ListFile(path, "csv", "utf-8"), size))
    assert got.value.problems[0].line == 14
    assert "0xfc" in got.value.message


def test_a_byte_order_mark_and_a_sniffed_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ("fax;company\n" + ROWS.replace(",", ";")).encode())
    rows, batched = _both(path, 4, "utf-8-sig")
    assert batched == rows
    assert rows[0] == (1, ["fax", "company"])


@pytest.mark.parametrize("seed", range(6))
def test_cells_over_several_lines_keep_the_fast_reader_and_their_lines(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every kind of break inside quoted cells (CR LF, CR, LF, several, a CR ending one cell and an LF starting
    # the next), blank lines and line ends of each kind between rows, at random places.
    rng = random.Random(seed)
    breaks = ["\r\n", "\r", "\n", "\n\n", "\r\r\n", "\n\r"]
    parts = ["fax,company,note\n"]
    for i in range(400):
        end = rng.choice(["\n", "\r\n", "\r"])
        kind = rng.random()
        if kind < 0.15:
            parts.append(f'+49 30 {20000000 + i},"a{rng.choice(breaks)}b","{rng.choice(breaks)}x\r"{end}')
        elif kind < 0.2:
            parts.append(f'+49 30 {20000000 + i},"x\r","\ny"{end}')
        elif kind < 0.25:
            parts.append(end)  # a blank line
        else:
            parts.append(f"+49 30 {20000000 + i},Company {i},n{end}")
    path = tmp_path / "list.csv"
    path.write_bytes("".join(parts).encode())
    expected = list(iter_table(ListFile(path, "csv", "utf-8")))
    assert len({line for line, _ in expected}) == len(expected)

    def no_fallback(*args: object) -> object:
        raise AssertionError("the batch reader handed over to the row-by-row reader")

    monkeypatch.setattr("faxops.tables._batched", no_fallback)
    for size in (1, 7, 50_000):
        batches = list(iter_table_batches(ListFile(path, "csv", "utf-8"), size))
        assert [(line, row) for lines, cells in batches for line, row in zip(lines, cells, strict=True)] == expected
