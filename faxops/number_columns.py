"""A list file's numbers as the last run resolved them, in file order, taken by position when its cells match.

The number cache (``faxops.recipients.NumberCache``) maps each number as written to its E.164 form; a
warm plan of a million rows still loaded a million entries and looked each row up in them (a third of
reading the list). Most plans read a list that has not changed since the last one, so this keeps, per
list file, what that reading produced: every row's E.164 number (or "" for an invalid one), and for each
batch of rows a digest of their number cells as written with the numbers kept for them. A batch whose
cells, with the numbers kept for the same rows, hash to that digest takes those numbers by slicing,
without a look-up per row; any other batch is resolved through the number cache, and the columns are
written again once every list has been read.

The digest covers the cells exactly as they were checked and stripped (they never hold a line break,
which ``tables.number_text`` refuses) and the numbers; a column is kept under the list's path and the
region it was read in, in a file that names the phonenumbers version whose metadata decided them. A
column cut short, damaged or left by another release is resolved again, so it only ever gives the
numbers the number cache would give.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import phonenumbers

from faxops.chunks import Chunk

# Part of the format: another phonenumbers release may judge a number differently (see ``NumberCache``).
_FORMAT = f"faxops-number-columns 1 phonenumbers {phonenumbers.__version__}"
_END = "end"

_Kept = tuple[list[str], dict[int, tuple[int, str]]]  # numbers; first row -> (rows, digest) of each batch


def _digest(raws: list[str], numbers: list[str]) -> str:
    # Neither a number cell nor an E.164 number holds "\n", so for a given count of rows the joined text tells
    # every cell and number apart: the digest pins each number to the cell it was resolved from.
    return hashlib.blake2b("\n".join(raws + numbers).encode(), digest_size=16).hexdigest()


class NumberColumns:
    """The number columns of a campaign's list files, all in one file (``StatePaths.number_columns``).

    Read on first use; written once every list was read to its end, and only when a column differs
    from the one kept (or a list came or went), with the columns of the lists read in this run.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._kept: dict[str, _Kept] | None = None
        self._read: dict[str, NumberColumn] = {}

    def column(self, list_file: Path, region: str | None) -> NumberColumn:
        """The column of ``list_file`` read in ``region``, as kept (empty when none is)."""
        key = hashlib.blake2b(f"{list_file.resolve()}\0{region or ''}".encode(), digest_size=8).hexdigest()
        numbers, blocks = self._load().get(key, ([], {}))
        return NumberColumn(key, numbers, blocks)

    def done(self, column: NumberColumn) -> None:
        """``column``'s file was read to its end: its column is to be kept."""
        self._read[column.key] = column

    def save(self) -> None:
        """Every list was read: write the columns of this run if they are not the ones kept."""
        if self._read.keys() == self._load().keys() and not any(c.changed for c in self._read.values()):
            return
        from faxops.state.files import atomic_write

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # 0o600: the columns hold every recipient's number, like the number cache.
            atomic_write(self.path, self._lines(), mode=0o600)
        except OSError:
            pass  # a cache that cannot be written costs the next run its speed, nothing else

    def _lines(self) -> Iterator[bytes]:
        yield f"{_FORMAT}\n{len(self._read)}\n".encode()
        for column in self._read.values():
            yield from column.lines()
        yield f"{_END}\n".encode()

    def _load(self) -> dict[str, _Kept]:
        # One split, then slices: no Python code per row. Anything unexpected leaves the columns empty, so that
        # every batch is resolved through the number cache (and the columns written again): it is only a cache.
        if self._kept is None:
            self._kept = {}
            try:
                parts = self.path.read_bytes().decode("utf-8").split("\n")
                self._kept = _parse(parts)
            except (OSError, UnicodeDecodeError, IndexError, ValueError):
                pass
        return self._kept


def _parse(parts: list[str]) -> dict[str, _Kept]:
    if parts[0] != _FORMAT:
        return {}
    found: dict[str, _Kept] = {}
    at = 2
    for _ in range(int(parts[1])):
        key, rows = parts[at], int(parts[at + 1])
        numbers = parts[at + 2 : at + 2 + rows]
        at += 2 + rows
        count = int(parts[at])
        blocks, start = {}, 0
        for entry in parts[at + 1 : at + 1 + count]:
            size, digest = entry.split(" ")
            blocks[start] = (int(size), digest)
            start += int(size)
        if len(numbers) != rows or start != rows:
            return {}
        found[key] = (numbers, blocks)
        at += 1 + count
    return found if parts[at:] == [_END, ""] else {}


class NumberColumn:
    """One list file's column: consulted batch by batch as the file is read."""

    def __init__(self, key: str, numbers: list[str], blocks: dict[int, tuple[int, str]]) -> None:
        self.key = key
        self._numbers = numbers
        self._blocks = blocks
        self._read: list[tuple[int, str, list[str]]] = []  # (rows, digest, numbers) of each batch read now
        self._next = 0  # the row the next batch starts at
        self._changed = False

    @property
    def changed(self) -> bool:
        """Whether this reading differs from the column kept."""
        return self._changed or self._next != len(self._numbers)

    def resolve(self, chunk: Chunk, resolve: Callable[[Chunk], object]) -> None:
        """Set ``chunk.numbers``: from the column when these rows are the ones it holds, else by ``resolve``."""
        rows = len(chunk.raws)
        start = self._next
        self._next = start + rows
        kept = self._blocks.get(start)
        if kept is not None and kept[0] == rows:
            numbers = self._numbers[start : start + rows]
            if _digest(chunk.raws, numbers) == kept[1]:
                chunk.numbers = numbers
                self._read.append((rows, kept[1], numbers))
                return
        resolve(chunk)
        self._changed = True
        self._read.append((rows, _digest(chunk.raws, chunk.numbers), chunk.numbers))

    def lines(self) -> Iterator[bytes]:
        """This reading as a section of the columns file."""
        yield f"{self.key}\n{self._next}\n".encode()
        for _, _, numbers in self._read:
            yield ("\n".join(numbers) + "\n").encode()
        yield f"{len(self._read)}\n".encode()
        yield "".join(f"{rows} {digest}\n" for rows, digest, _ in self._read).encode()
