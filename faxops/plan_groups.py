"""A plan's unchanged recipients, held column by column until someone reads them one by one.

A warm plan of a million recipients finds almost all of them unchanged (recorded as delivered, nothing
to do). Building a ``PlannedAction`` and a source string for each of them cost more than reading the
list; the plan's text output only counts them. ``UnchangedGroup`` therefore keeps, for each chunk of a
list file, the columns the actions would be made from (the file's label, line numbers, numbers, recorded
statuses, names) and which rows are unchanged. The actions are built, identical to the ones the planner
used to append, only when the group is iterated or sliced: ``plan --details``, ``--json``, a saved plan,
the markdown comment, a report.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Generic, Protocol, TypeVar, overload


class _Action(Protocol):
    """What ``UnchangedGroup.entries`` reads of an action appended one by one."""

    @property
    def number(self) -> str: ...
    @property
    def source(self) -> str | None: ...
    @property
    def name(self) -> str | None: ...


_T = TypeVar("_T", bound=_Action)

# number, source, recorded status, name -> the action (``plan.py`` passes the builder: no import cycle).
Build = Callable[[str, str, str, "str | None"], _T]


@dataclass(frozen=True, slots=True)
class Run:
    """Unchanged rows of one chunk: row ``i`` of ``rows`` is ``numbers[i]`` at ``label + str(lines[i])``."""

    label: str
    lines: Sequence[int]
    numbers: Sequence[str]
    statuses: Sequence[str | None]  # the recorded (settled) status of each row of the chunk
    names: Sequence[str | None] | None  # each row's name, only when the plan keeps names
    rows: Sequence[int]  # the chunk's unchanged rows, in file order


class UnchangedGroup(Sequence[_T], Generic[_T]):
    """A list of actions, some appended one by one, others held as ``Run`` columns (see the module)."""

    def __init__(self, build: Build[_T]) -> None:
        self._build = build
        self._parts: list[list[_T] | Run] = []
        self._len = 0

    def append(self, item: _T) -> None:
        """Add one action at the end (a recipient given inline, or a chunk decided row by row)."""
        if not self._parts or isinstance(self._parts[-1], Run):
            self._parts.append([])
        part = self._parts[-1]
        assert isinstance(part, list)
        part.append(item)
        self._len += 1

    def add_run(self, run: Run) -> None:
        """Add a chunk's unchanged rows at the end, without building their actions."""
        if run.rows:
            self._parts.append(run)
            self._len += len(run.rows)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[_T]:
        build = self._build
        for part in self._parts:
            if isinstance(part, list):
                yield from part
                continue
            label, lines, numbers, statuses, names = part.label, part.lines, part.numbers, part.statuses, part.names
            for i in part.rows:
                status = statuses[i]
                assert status is not None  # a run holds settled rows only
                yield build(numbers[i], label + str(lines[i]), status, names[i] if names is not None else None)

    def entries(self) -> Iterator[tuple[str, str | None, str | None]]:
        """(number, source, name) of each action, in order, without building the actions (a report
        needs only these of a million unchanged recipients)."""
        for part in self._parts:
            if isinstance(part, list):
                yield from ((a.number, a.source, a.name) for a in part)
                continue
            label, lines, numbers, names = part.label, part.lines, part.numbers, part.names
            if names is None:
                yield from ((numbers[i], label + str(lines[i]), None) for i in part.rows)
            else:
                yield from ((numbers[i], label + str(lines[i]), names[i]) for i in part.rows)

    @overload
    def __getitem__(self, index: int) -> _T: ...

    @overload
    def __getitem__(self, index: slice) -> list[_T]: ...

    def __getitem__(self, index: int | slice) -> _T | list[_T]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._len)
            if step == 1:
                return list(islice(self, start, max(start, stop)))  # the first rows: no need to build the rest
            return list(self)[index]
        position = index + self._len if index < 0 else index
        if not 0 <= position < self._len:
            raise IndexError("plan group index out of range")
        return next(islice(self, position, None))

    def __add__(self, other: Sequence[_T]) -> list[_T]:
        return [*self, *other]

    def __radd__(self, other: Sequence[_T]) -> list[_T]:
        return [*other, *self]

    def __repr__(self) -> str:
        return f"UnchangedGroup({len(self)} actions)"


class RowSources:
    """Where the rows of columnar chunks were read, found by number only when asked: a million source
    strings, or a million-entry map from number to row, built only to name the first row of a rare
    duplicate cost more than the plan's decisions."""

    def __init__(self) -> None:
        self._chunks: list[tuple[str, Sequence[int], Sequence[str]]] = []
        self._bases: list[int] = []  # the running number of each chunk's first row
        self._rows = 0
        self._index: dict[str, int] = {}  # number -> running row number, for the chunks indexed so far
        self._indexed = 0

    def add(self, label: str, lines: Sequence[int], numbers: Sequence[str]) -> None:
        """Register a chunk's rows (``numbers[i]`` was read at ``label + str(lines[i])``; no number twice)."""
        self._chunks.append((label, lines, numbers))
        self._bases.append(self._rows)
        self._rows += len(numbers)

    def find(self, number: str) -> str | None:
        """The source of the registered row holding ``number``, if any."""
        # The index is built on the first duplicate and extended by the chunks added since: a plan without
        # duplicates never pays for it, one with many pays once.
        for k in range(self._indexed, len(self._chunks)):
            base, numbers = self._bases[k], self._chunks[k][2]
            self._index.update(zip(numbers, range(base, base + len(numbers)), strict=True))
        self._indexed = len(self._chunks)
        row = self._index.get(number)
        if row is None:
            return None
        k = bisect_right(self._bases, row) - 1
        label, lines, _ = self._chunks[k]
        return label + str(lines[row - self._bases[k]])
