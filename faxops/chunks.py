"""Rows of a recipient file held column by column, so that a plan builds objects only where it must.

A warm plan of a million rows decides almost every row from its number alone (recorded as delivered,
nothing to do). Building a ``Row``, a fields dictionary and a ``Recipient`` for each row cost several
times the reading of the file itself. A ``Chunk`` keeps the cells as the CSV reader returned them,
resolves its numbers in one pass over a column, and builds a ``Recipient`` (with its name and fields)
only for a row that is to be sent, retried or shown.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from faxops.domain import Invalid, Recipient


@dataclass(slots=True)
class Row:
    """A recipient as written in a list, before its number is normalised."""

    raw: str
    region: str | None
    name: str | None
    fields: dict[str, str] | None
    source: str


@dataclass(slots=True)
class Chunk:
    """Consecutive rows of one list file (never a blank one), column by column."""

    label: str  # the file's name and a colon: a row's source is the label and its line number
    region: str | None
    lines: Sequence[int]  # a range while every row is one line
    cells: list[list[str]]  # each row padded to the columns the manifest maps
    raws: list[str]  # the number cell of each row, stripped
    name_index: int | None
    field_names: list[str]
    field_indexes: list[int]
    numbers: list[str] = field(default_factory=list)  # E.164 per row, "" when invalid (set by resolve)
    # Which entry of the manifest's ``files`` the rows are from, and the file: where its number column is kept.
    origin: tuple[int, Path] | None = None

    def __len__(self) -> int:
        return len(self.raws)

    def source(self, i: int) -> str:
        return self.label + str(self.lines[i])

    def name(self, i: int) -> str | None:
        return self.cells[i][self.name_index].strip() or None if self.name_index is not None else None

    def names(self) -> list[str | None]:
        """Every row's name, as ``name`` gives it (one column, read in one pass)."""
        if self.name_index is None:
            return [None] * len(self.raws)
        j = self.name_index
        return [cells[j].strip() or None for cells in self.cells]

    def fields(self, i: int) -> dict[str, str] | None:
        if not self.field_indexes:
            return None
        cells = self.cells[i]
        return dict(zip(self.field_names, [cells[j] for j in self.field_indexes], strict=True))

    def row(self, i: int) -> Row:
        return Row(self.raws[i], self.region, self.name(i), self.fields(i), self.source(i))

    def rows(self) -> Iterator[Row]:
        for i in range(len(self.raws)):
            yield self.row(i)

    def recipient(self, i: int, source: str | None = None) -> Recipient:
        """Row ``i`` as a recipient (its number must be valid); ``source`` when the caller built it already
        (a million sources are a million strings: sharing one per row saves ~70 MB)."""
        return Recipient(self.numbers[i], self.name(i), self.fields(i), source or self.source(i))

    def invalid(self, i: int) -> Invalid:
        """Row ``i`` as an invalid entry, with the reason its number was refused."""
        from faxops.recipients import normalise  # the reader of numbers imports this module

        _, reason = normalise(self.raws[i], self.region)
        return Invalid(self.raws[i], self.source(i), reason or "not a valid number")

    def item(self, i: int) -> Recipient | Invalid:
        return self.recipient(i) if self.numbers[i] else self.invalid(i)

    def items(self) -> Iterator[Recipient | Invalid]:
        """Every row, resolved (after ``NumberCache.resolve_chunk``)."""
        for i in range(len(self.raws)):
            yield self.item(i)
