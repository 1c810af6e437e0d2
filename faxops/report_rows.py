"""One recipient's line in a report: a slotted record that reads like the dictionary it replaced."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(slots=True, eq=False)
class ReportRow(Mapping[str, Any]):
    """A report row. A report holds one per recipient: as a dict each cost ~650 bytes, which at a
    million recipients alone passed the 1 GiB a report may use; slotted, it costs ~130. It is a
    ``Mapping`` (renderers and callers read ``row["status"]``), serialised by orjson field by field
    in this order, which is the order of the report's columns."""

    number: str
    name: str | None
    status: str | None
    failure: str | None
    provider_status: str | None
    reason: str | None
    attempts: int
    job_ids: list[str]
    pages: int | None
    first_submitted: str | None
    updated: str | None
    source: str | None

    def __getitem__(self, key: str) -> Any:
        if key not in ROW_FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in ROW_FIELDS:
            raise KeyError(key)
        setattr(self, key, value)

    def __iter__(self) -> Iterator[str]:
        return iter(ROW_FIELDS)

    def __len__(self) -> int:
        return len(ROW_FIELDS)


ROW_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ReportRow))
