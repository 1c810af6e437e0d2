"""A list file's numbers as the last run resolved them, in file order, taken by position when its cells match.

The number cache (``faxops.recipients.NumberCache``) maps each number as written to its E.164 form; a
warm plan of a million rows still loaded a million entries and looked each row up in them (a third of
reading the list). Most plans read a list that has not changed since the last one, so this keeps, per
list file, what that reading produced: every row's E.164 number (or "" for an invalid one), and for each
batch of rows a digest of their number cells as written with the numbers kept for them. A batch whose
cells, with the numbers kept for the same rows, hash to that digest takes those numbers by slicing,
without a look-up per row; any other batch is resolved
through the number cache, and the file's column is written again once the file has been read.

The digest covers the cells exactly as they were checked and stripped (they never hold a line break,
which ``tables.number_text`` refuses) and the numbers; the file names the region they were read in and
the phonenumbers version whose metadata decided them. A column cut short, damaged or left by another
release is resolved again, so it only ever gives the numbers the number cache would give.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import phonenumbers

from faxops.chunks import Chunk

# Part of the format: another phonenumbers release may judge a number differently (see ``NumberCache``).
_FORMAT = f"faxops-number-column 1 phonenumbers {phonenumbers.__version__}"
_END = "end"


def column_path(cache: Path, list_file: Path, region: str | None) -> Path:
    """Where the column of ``list_file`` read in ``region`` is kept, beside the number cache ``cache``."""
    key = hashlib.blake2b(f"{list_file.resolve()}\0{region or ''}".encode(), digest_size=8).hexdigest()
    return cache.with_name(f"{cache.name}.{key}")


def _digest(raws: list[str], numbers: list[str]) -> str:
    # Neither a number cell nor an E.164 number holds "\n", so for a given count of rows the joined text tells
    # every cell and number apart: the digest pins each number to the cell it was resolved from.
    return hashlib.blake2b("\n".join(raws + numbers).encode(), digest_size=16).hexdigest()


class NumberColumn:
    """One list file's column of numbers: read once, consulted batch by batch, written when it changed."""

    def __init__(self, path: Path, region: str | None) -> None:
        self.path = path
        self.region = region or ""
        self._numbers: list[str] = []
        self._blocks: dict[int, tuple[int, str]] = {}  # first row -> (rows, digest) as last written
        self._read: list[tuple[int, str, list[str]]] = []  # (rows, digest, numbers) of each batch read now
        self._next = 0  # the row the next batch starts at
        self._changed = False
        self._load()

    def _load(self) -> None:
        # One split, then slices: no Python code per row. Anything unexpected leaves the column empty, so that
        # every batch is resolved through the number cache (and the column written again): it is only a cache.
        try:
            parts = self.path.read_bytes().decode("utf-8").split("\n")
        except (OSError, UnicodeDecodeError):
            return
        try:
            if parts[0] != _FORMAT or parts[1] != self.region:
                return
            rows = int(parts[2])
            blocks = int(parts[3 + rows])
            table = parts[4 + rows : 4 + rows + blocks]
            if parts[4 + rows + blocks :] != [_END, ""]:
                return
            start, found = 0, {}
            for entry in table:
                count, digest = entry.split(" ")
                found[start] = (int(count), digest)
                start += int(count)
            if start != rows:
                return
        except (IndexError, ValueError):
            return
        self._numbers, self._blocks = parts[3 : 3 + rows], found

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

    def finish(self) -> None:
        """The file was read to its end: write its column if this reading differs from the one kept."""
        if not self._changed and self._next == len(self._numbers):
            return
        from faxops.state.files import atomic_write

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # 0o600: the column holds every recipient's number, like the number cache.
            atomic_write(self.path, self._lines(), mode=0o600)
        except OSError:
            pass  # a cache that cannot be written costs the next run its speed, nothing else

    def _lines(self) -> Iterator[bytes]:
        yield f"{_FORMAT}\n{self.region}\n{self._next}\n".encode()
        for _, _, numbers in self._read:
            yield ("\n".join(numbers) + "\n").encode() if numbers else b""
        yield f"{len(self._read)}\n".encode()
        yield "".join(f"{rows} {digest}\n" for rows, digest, _ in self._read).encode()
        yield f"{_END}\n".encode()
