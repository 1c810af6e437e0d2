"""One group commit of the postgres writer: a batch of events folded into the current records, written together.

What a newcomer could undo by accident (each was measured: ``bench/README.md``, "PostgreSQL state backend"):

* **One statement per group commit.** The journal rows, the changed records and the campaign's position
  travel in a single ``INSERT … ; INSERT … ; UPDATE`` made of data-modifying CTEs. On an autocommit
  connection a statement is its own transaction, so it is atomic and costs one round trip and one commit,
  without the ``BEGIN``/``COMMIT`` and pipeline bookkeeping of a multi-statement transaction.
* **Parameters in binary** (``%b``). Arrays dumped as text were escaped element by element in Python: most
  of the writer's CPU per flush.
* **No copy of the state, no cache of what was written.** The writer keeps only the records of intents whose
  answer has not come yet (an answer follows its intent within seconds): memory follows the sends in
  flight, not the campaign's size. Every other number is looked up when the state read under the lock
  (``hint``, held by reference, never copied) says it is in the table; a number it does not name is taken
  for new and *inserted* without ``ON CONFLICT``, so that if it was there after all (the hint was out of
  date) the primary key refuses the whole statement and the batch is written again from the stored
  records. The hint can make a commit slower, never wrong: a recorded attempt is never overwritten.
"""

from __future__ import annotations

from collections.abc import Container

import orjson
import psycopg
from psycopg import sql

from faxops.state.postgres import Conn, PgLocation
from faxops.state.records import Event, Record, apply_event, attempts_of_raw, event_numbers

#: the records table's primary key: the constraint that refuses a number taken for new by mistake
_RECORDS_KEY = "records_pkey"


class RecordWriter:
    """Folds batches of events into the current records and writes journal, records and position at once."""

    def __init__(self, loc: PgLocation) -> None:
        # Numbers in the table when the writer last read the state under its lock (None: look every number up).
        self.hint: Container[str] | None = None
        # Stored records of intents committed and not answered yet: their answer needs no look-up.
        self._pending: dict[str, bytes] = {}
        records = loc.table("records")
        self._q_select = sql.SQL("SELECT number, record FROM {} WHERE campaign_id = %s AND number = ANY(%b)").format(
            records
        )
        self._q_write = sql.SQL(
            "WITH journal AS ("
            "INSERT INTO {journal} (campaign_id, seq, event) "
            "SELECT %(cid)s, s, e::jsonb FROM unnest(%(seqs)b::bigint[], %(events)b::text[]) AS u(s, e)"
            "), changed AS ("
            "INSERT INTO {records} (campaign_id, number, status, attempts, record) "
            "SELECT %(cid)s, n, s, a, r FROM unnest(%(numbers)b::text[], %(statuses)b::text[], "
            "%(attempts)b::integer[], %(records)b::bytea[]) AS u(n, s, a, r) "
            "ON CONFLICT (campaign_id, number) DO UPDATE SET status = EXCLUDED.status, attempts = EXCLUDED.attempts, "
            "record = EXCLUDED.record"
            "), added AS ("
            # No ON CONFLICT here: a number taken for new that is in the table must fail the statement.
            "INSERT INTO {records} (campaign_id, number, status, attempts, record) "
            "SELECT %(cid)s, n, s, a, r FROM unnest(%(new_numbers)b::text[], %(new_statuses)b::text[], "
            "%(new_attempts)b::integer[], %(new_records)b::bytea[]) AS u(n, s, a, r)"
            ") UPDATE {campaigns} SET journal_seq = %(seq)s, audit = audit || %(audit)s::jsonb, updated_at = now() "
            "WHERE id = %(cid)s"
        ).format(journal=loc.table("journal"), records=records, campaigns=loc.table("campaigns"))

    @property
    def pending(self) -> int:
        """How many records the writer holds in memory (intents waiting for their answer)."""
        return len(self._pending)

    def write(self, conn: Conn, cid: int, batch: list[Event], *, in_transaction: bool = False) -> None:
        """Commit ``batch`` (its journal rows, the records it changes, the campaign's position).

        ``in_transaction``: the caller's transaction holds other statements, which a refused statement
        would abort; every number is then looked up first, so that none is refused.
        """
        if in_transaction:
            self._write(conn, cid, batch, look_up_all=True)
            return
        try:
            self._write(conn, cid, batch, look_up_all=False)
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name != _RECORDS_KEY:
                raise
            # The statement changed nothing: write the batch again, this time from the stored records.
            self._write(conn, cid, batch, look_up_all=True)

    def _stored(self, conn: Conn, cid: int, numbers: list[str], look_up_all: bool) -> dict[str, bytes]:
        """The stored records of ``numbers`` that may be in the table (the rest are taken for new)."""
        current: dict[str, bytes] = {}
        hint = self.hint
        missing = []
        for number in numbers:
            raw = self._pending.get(number)
            if raw is not None:
                current[number] = raw
            elif look_up_all or hint is None or number in hint:
                missing.append(number)
        if missing:
            rows = conn.execute(self._q_select, (cid, missing), binary=True)
            current.update((n, bytes(r)) for n, r in rows)
        return current

    def _write(self, conn: Conn, cid: int, batch: list[Event], *, look_up_all: bool) -> None:
        touched = list(dict.fromkeys(n for e in batch for n in event_numbers(e)))
        stored = self._stored(conn, cid, touched, look_up_all)
        working: dict[str, Record] = {}
        last_kind: dict[str, str] = {}
        for event in batch:
            for number in event_numbers(event):
                record = working.get(number)
                if record is None and number in stored:
                    record = orjson.loads(stored[number])  # a fresh dict: a retried batch starts from the bytes
                working[number] = apply_event(number, record, event)
                last_kind[number] = event["t"]
        old: tuple[list[str], list[str], list[bytes], list[int]] = ([], [], [], [])
        new: tuple[list[str], list[str], list[bytes], list[int]] = ([], [], [], [])
        for number in sorted(working):  # one order for every writer: row locks are taken in it
            record = working[number]
            columns = old if number in stored else new
            columns[0].append(number)
            columns[1].append(str(record.get("status")))
            raw = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
            columns[2].append(raw)
            columns[3].append(attempts_of_raw(raw))
        resolves = [{k: v for k, v in e.items() if k not in ("t", "seq")} for e in batch if e["t"] == "resolve"]
        conn.execute(
            self._q_write,
            {
                "cid": cid,
                "seqs": [e["seq"] for e in batch],
                "events": [orjson.dumps(e).decode() for e in batch],
                "numbers": old[0],
                "statuses": old[1],
                "records": old[2],
                "attempts": old[3],
                "new_numbers": new[0],
                "new_statuses": new[1],
                "new_records": new[2],
                "new_attempts": new[3],
                "seq": batch[-1]["seq"],
                "audit": orjson.dumps(resolves).decode(),
            },
        )
        for columns in (old, new):
            for number, raw in zip(columns[0], columns[2], strict=True):
                if last_kind[number] == "intent":
                    self._pending[number] = raw  # its answer comes next: keep what it will change
                else:
                    self._pending.pop(number, None)
