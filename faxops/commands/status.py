"""``faxops status``: the recorded state, read without a lock and without the network."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from faxops.commands.common import EXIT_OK, number_arg
from faxops.errors import InputError

if TYPE_CHECKING:
    from faxops.manifest import LoadedManifest
    from faxops.output import Output
    from faxops.state import StateStore
    from faxops.state.records import Record

# Without --details a terminal gets the first rows only; the counts always cover everyone.
_ROWS_SHOWN = 50


@dataclass(frozen=True)
class StatusArgs:
    manifest: Path
    number: str | None = None
    json: bool = False
    details: bool = False
    allow_outside: list[Path] = field(default_factory=list)  # --allow-outside


def status_row(number: str, record: Record) -> dict[str, object]:
    """One recipient's line of ``status``: its status and its latest attempt."""
    from faxops.state.records import counted_attempts

    last = (record.get("attempts") or [{}])[-1]
    return {
        "number": number,
        "status": record.get("status"),
        "attempts": counted_attempts(record),
        "job_id": last.get("job_id"),
        "raw_status": last.get("raw_status"),
        "failure": last.get("failure") if record.get("status") in ("failed", "expired") else None,
        "reason": last.get("reason"),
        "updated_at": last.get("updated_at") or last.get("submitted_at"),
    }


class _Tally:
    """Counts by status and failure class, taken while the records stream past (never all in memory)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.counts: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.total = 0

    def account(self, number: str, record: Record) -> dict[str, object]:
        """Count one record and return its row."""
        self.total += 1
        self.counts[str(record.get("status"))] += 1
        item = status_row(number, record)
        if item["failure"]:
            self.failures[str(item["failure"])] += 1
        return item

    def rows(self) -> Iterator[dict[str, object]]:
        """Every record's row (``status --json`` and ``--details``)."""
        for number, record in self.store.records():
            yield self.account(number, record)

    def first_rows(self, limit: int) -> list[dict[str, object]]:
        """The first ``limit`` rows; every record past them only counted, settled ones off their bytes."""
        from faxops.bulk import paused_gc
        from faxops.state.records import settled_status

        rows: list[dict[str, object]] = []
        with paused_gc():
            for number, raw in self.store.raw_records():
                if isinstance(raw, bytes) and len(rows) >= limit:
                    status = settled_status(raw)
                    if status is not None:
                        # Past the rows shown, a settled record is only counted (it has no failure class):
                        # read off its bytes, not parsed, which is most of `status` at a million recipients.
                        self.total += 1
                        self.counts[status] += 1
                        continue
                item = self.account(number, raw if isinstance(raw, dict) else self.store.parse_raw(raw))
                if len(rows) < limit:
                    rows.append(item)
        return rows


def run(args: StatusArgs, output: Output) -> int:
    """Show counts and rows of the recorded state, one recipient's attempts, or the JSON document."""
    from faxops.manifest import load_manifest
    from faxops.state import open_store

    loaded = load_manifest(args.manifest, allow_outside=args.allow_outside)
    store = open_store(args.manifest, loaded.name, loaded.model.state)
    header = store.header()
    if args.number:
        return _status_of_one(args.number, args.json, output, loaded, store)
    tally = _Tally(store)
    if args.json:
        # Streamed by hand so that a million-recipient state never sits in memory as one document.
        write = sys.stdout.write
        write('{"format_version": 1, "campaign": ' + orjson.dumps(loaded.name).decode())
        write(', "lineage": ' + orjson.dumps(header.lineage if header else None).decode())
        write(', "serial": ' + str(header.serial if header else 0) + ', "recipients": [')
        for i, item in enumerate(tally.rows()):
            write(("," if i else "") + "\n  " + orjson.dumps(item).decode())
        write('\n], "counts": ' + orjson.dumps(dict(sorted(tally.counts.items()))).decode() + "}\n")
        return EXIT_OK
    rows = list(tally.rows()) if args.details else tally.first_rows(_ROWS_SHOWN)
    output.status(loaded.name, header, rows, tally.counts, tally.total, details=args.details, failures=tally.failures)
    return EXIT_OK


def _status_of_one(text: str, as_json: bool, output: Output, loaded: LoadedManifest, store: StateStore) -> int:
    number = number_arg(text, loaded)
    record = next((r for n, r in store.records() if n == number), None)
    if record is None:
        raise InputError(
            f"{number} has no record in the state of {loaded.name} (not sent yet, or not in this campaign)"
        )
    if as_json:
        output.json(orjson.dumps({"number": number, **record}).decode())
    else:
        output.recipient(number, record)
    return EXIT_OK
