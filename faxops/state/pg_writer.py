"""The postgres backend's writer: the advisory lock, its holder row, and group-committed events.

See :mod:`faxops.state.postgres` for why one connection both holds the lock and writes: a writer that
lost its connection can no longer record an intent, so it can no longer send.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping

import orjson
import psycopg
from psycopg import sql

from faxops import secrets
from faxops.clock import now_iso
from faxops.errors import JournalWriteError, StateError, StateLockedError
from faxops.state import RecordedState
from faxops.state.events import check
from faxops.state.group_commit import GroupCommit
from faxops.state.lock import LockInfo, _user
from faxops.state.lockfile import Header
from faxops.state.pg_batch import RecordWriter
from faxops.state.pg_schema import LOCK_NAMESPACE, migrate
from faxops.state.postgres import (
    Conn,
    PostgresStore,
    campaign_row,
    ci_run_url,
    current_holder,
    db_error,
    header_of,
    lock_holder,
    read_state,
)
from faxops.state.records import Event, Record, attempts_of_raw
from faxops.state.store import StateWriter

HEARTBEAT_SECONDS = 15.0


class _Lock:
    """What ``StateWriter.lock`` offers: who holds it now, and what a dead holder left."""

    def __init__(self, info: LockInfo, stale: LockInfo | None) -> None:
        self.info: LockInfo | None = info
        self.stale = stale


class PostgresWriter(StateWriter, GroupCommit):
    """The single writer of a campaign on PostgreSQL: holds the advisory lock and its connection."""

    def __init__(self, store: PostgresStore, operation: str, lock_timeout: float = 0.0) -> None:
        self.store = store
        self.loc = store.location
        self.campaign = store.campaign
        self.conn = self.loc.connect()
        self._db = threading.Lock()  # one statement or transaction at a time on the connection
        self._cond = threading.Condition()
        self._queue: list[Event] = []
        self._then: Callable[[Conn], None] | None = None  # run in the next group commit's transaction
        self._enqueued = 0
        self._durable = 0
        self._flushing = False
        self._broken: BaseException | None = None
        self._records = RecordWriter(self.loc)
        self._changed = False
        self._stop_heartbeat = threading.Event()
        try:
            migrate(self.conn, self.loc.schema, self.loc.where)
            self.lock = self._acquire(operation, lock_timeout)
            row = campaign_row(self.conn, self.loc, self.campaign)
        except psycopg.Error as exc:
            self.conn.close()
            raise db_error(exc, self.loc.where, "taking the state lock") from None
        except BaseException:
            self.conn.close()
            raise
        self.campaign_id: int | None = int(row[0]) if row else None
        self.header = header_of(row, self.campaign)
        self._next_seq = (self.header.journal_seq if self.header else 0) + 1
        self._heartbeat = threading.Thread(target=self._beat, name="faxops-heartbeat", daemon=True)
        self._heartbeat.start()

    # -- the lock ---------------------------------------------------------------------------------

    def _acquire(self, operation: str, timeout: float) -> _Lock:
        key = f"{self.loc.schema}.{self.campaign}"
        deadline = time.monotonic() + timeout
        freed = 0
        while True:
            got = self.conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (LOCK_NAMESPACE, key)).fetchone()
            if got and got[0]:
                break
            if time.monotonic() >= deadline:
                holder = current_holder(self.conn, self.loc, self.campaign)
                if holder is None and freed < 3:
                    freed += 1  # released while we looked for its holder: the lock is free, try again
                    continue
                who = holder.describe() if holder else "another faxops process"
                raise StateLockedError(
                    f"the campaign state at {self.loc.where} is locked: {who}",
                    hint="wait for it to finish, or pass --lock-timeout 5m to wait",
                )
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        stale = lock_holder(self.conn, self.loc, self.campaign)  # a row left by a holder whose connection died
        info = LockInfo(
            id=str(uuid.uuid4()),
            host=socket.gethostname(),
            pid=os.getpid(),
            operation=operation,
            since=now_iso(),
            who=_user(),
            ci_url=ci_run_url(),
        )
        self.conn.execute(
            sql.SQL(
                "INSERT INTO {} (campaign, id, host, pid, who, operation, since, heartbeat, ci_url, backend_pid) "
                "VALUES (%s, %s, %s, %s, %s, %s, now(), now(), %s, pg_backend_pid()) "
                "ON CONFLICT (campaign) DO UPDATE SET backend_pid = EXCLUDED.backend_pid, "
                "id = EXCLUDED.id, host = EXCLUDED.host, pid = EXCLUDED.pid, who = EXCLUDED.who, "
                "operation = EXCLUDED.operation, since = EXCLUDED.since, heartbeat = EXCLUDED.heartbeat, "
                "ci_url = EXCLUDED.ci_url"
            ).format(self.loc.table("locks")),
            (self.campaign, info.id, info.host, info.pid, info.who, info.operation, info.ci_url),
        )
        return _Lock(info, stale)

    def _beat(self) -> None:
        while not self._stop_heartbeat.wait(HEARTBEAT_SECONDS):
            with self._db:
                try:
                    self.conn.execute(
                        sql.SQL("UPDATE {} SET heartbeat = now() WHERE campaign = %s").format(self.loc.table("locks")),
                        (self.campaign,),
                    )
                except psycopg.Error:
                    return  # the next record() finds the connection gone and stops the run

    # -- recording --------------------------------------------------------------------------------

    def record(self, event: Event) -> int:
        """Append an event; returns once it is committed. Raises ``JournalWriteError`` when it cannot be."""
        check(event)  # a misspelt type must fail before the provider is called
        event = secrets.scrub_event(event)
        with self._cond:
            if self._broken is not None:
                raise self._error()
            seq = self._next_seq
            self._next_seq += 1
            self._queue.append({"seq": seq, **event})
            self._enqueued += 1
            ticket = self._enqueued
            self._wait_durable(ticket)
            return seq

    def record_with(self, events: list[Event], then: Callable[[Conn], None]) -> None:
        """Append ``events`` and run ``then`` on the connection in the same transaction (the push inbox
        deletes the pushes it took in, so that a crash neither loses nor doubles one)."""
        for event in events:
            check(event)
        scrubbed = [secrets.scrub_event(e) for e in events]
        with self._cond:
            while self._flushing and self._broken is None:
                self._cond.wait()
            if self._broken is not None:
                raise self._error()
            for event in scrubbed:
                self._queue.append({"seq": self._next_seq, **event})
                self._next_seq += 1
                self._enqueued += 1
            self._then = then
            self._flush_locked()
            if self._broken is not None:
                raise self._error()

    def _flush_locked(self) -> None:
        batch, self._queue = self._queue, []
        then, self._then = self._then, None
        upto = self._enqueued
        self._flushing = True
        self._cond.release()
        error: BaseException | None = None
        try:
            with self._db:
                self._commit(batch, then)
        except (psycopg.Error, StateError) as exc:
            error = exc
        finally:
            self._cond.acquire()
            self._flushing = False
        if error is not None:
            # Whether the last commit happened is unknown: never write again in this run (its
            # intents, if committed, are unknown outcomes for the next run to reconcile).
            self._broken = error
        else:
            self._durable = upto
            self._changed = self._changed or bool(batch)
        self._cond.notify_all()

    def _ensure_campaign(self) -> int:
        if self.campaign_id is None:
            self.conn.execute(
                sql.SQL("INSERT INTO {} (name, lineage) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING").format(
                    self.loc.table("campaigns")
                ),
                (self.campaign, str(uuid.uuid4())),
            )
            row = campaign_row(self.conn, self.loc, self.campaign)
            assert row is not None
            self.campaign_id = int(row[0])
            self.header = header_of(row, self.campaign)
        return self.campaign_id

    def _commit(self, batch: list[Event], then: Callable[[Conn], None] | None = None) -> None:
        if then is None and self.campaign_id is not None:
            if batch:
                self._records.write(self.conn, self.campaign_id, batch)  # one statement, its own transaction
            return
        # The push inbox's deletion, or the campaign's first row, must commit with the batch or not at all.
        with self.conn.transaction():
            if then is not None:
                then(self.conn)
            if batch:
                self._records.write(self.conn, self._ensure_campaign(), batch, in_transaction=True)

    def _error(self) -> JournalWriteError:
        assert self._broken is not None
        text = str(self._broken).strip().splitlines()[0] if str(self._broken).strip() else "connection lost"
        return JournalWriteError(
            f"the state database at {self.loc.where} cannot be written: {text}",
            hint="state committed so far is safe; sends in flight are reconciled by the next run",
        )

    def load(self, header: Header, records: Iterable[tuple[str, Record]]) -> int:
        """Replace this campaign's state with ``header`` and ``records`` in one transaction (``state
        migrate``); returns the number of records. The journal keeps what it holds: it is append-only."""
        count = 0
        with self._db:
            try:
                with self.conn.transaction():
                    row = self.conn.execute(
                        sql.SQL(
                            "INSERT INTO {} (name, lineage, serial, journal_seq, applied_with, audit) "
                            "VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb) ON CONFLICT (name) DO UPDATE SET "
                            "lineage = EXCLUDED.lineage, serial = EXCLUDED.serial, journal_seq = EXCLUDED.journal_seq, "
                            "applied_with = EXCLUDED.applied_with, audit = EXCLUDED.audit, updated_at = now() "
                            "RETURNING id"
                        ).format(self.loc.table("campaigns")),
                        (
                            self.campaign,
                            header.lineage,
                            header.serial,
                            header.journal_seq,
                            orjson.dumps(header.applied_with).decode(),
                            orjson.dumps(header.audit).decode(),
                        ),
                    ).fetchone()
                    assert row is not None
                    cid = int(row[0])
                    self.conn.execute(
                        sql.SQL("DELETE FROM {} WHERE campaign_id = %s").format(self.loc.table("records")), (cid,)
                    )
                    copy_sql = sql.SQL("COPY {} (campaign_id, number, status, attempts, record) FROM STDIN").format(
                        self.loc.table("records")
                    )
                    with self.conn.cursor() as cur, cur.copy(copy_sql) as copy:
                        for number, record in records:
                            data = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
                            copy.write_row((cid, number, str(record.get("status")), attempts_of_raw(data), data))
                            count += 1
            except psycopg.Error as exc:
                raise db_error(exc, self.loc.where, "loading the state") from None
        self.campaign_id = cid
        self._records = RecordWriter(self.loc)  # every record was replaced: nothing held or read holds now
        self._next_seq = header.journal_seq + 1
        self.header = header
        return count

    # -- reading and closing ----------------------------------------------------------------------

    def state(self, detail: Collection[str] = ()) -> RecordedState:
        """The state as committed (this writer's own events included)."""
        if self._broken is not None:
            raise self._error()
        with self._db:
            state = read_state(self.conn, self.loc, self.campaign, detail)
            # Read under the lock, so these are the numbers in the table (plus what this writer adds).
            # By reference: a copy of a million numbers was tens of MB per read.
            self._records.hint = state.summaries
        self.header = state.header
        return state

    def close(self, applied_with: Mapping[str, object] | None = None) -> Header | None:
        """Count the run in the serial (when it changed anything) and release the lock."""
        try:
            if self._broken is not None:
                raise self._error()
            with self._db:
                try:
                    with self.conn.transaction():
                        row = campaign_row(self.conn, self.loc, self.campaign)
                        changed_with = applied_with is not None and (row is None or dict(row[4] or {}) != applied_with)
                        if self._changed or changed_with:
                            self._ensure_campaign()
                            self.conn.execute(
                                sql.SQL(
                                    "UPDATE {} SET serial = serial + 1, "
                                    "applied_with = coalesce(%s::jsonb, applied_with), "
                                    "updated_at = now() WHERE name = %s"
                                ).format(self.loc.table("campaigns")),
                                (
                                    orjson.dumps(dict(applied_with)).decode() if applied_with is not None else None,
                                    self.campaign,
                                ),
                            )
                        self.header = header_of(campaign_row(self.conn, self.loc, self.campaign), self.campaign)
                        self.conn.execute(
                            sql.SQL("DELETE FROM {} WHERE campaign = %s").format(self.loc.table("locks")),
                            (self.campaign,),
                        )
                except psycopg.Error as exc:
                    raise db_error(exc, self.loc.where, "saving the state") from None
            return self.header
        finally:
            self.abandon()

    def abandon(self) -> None:
        """Drop the connection (and with it the lock); what was committed stays."""
        self._stop_heartbeat.set()
        with self._db:
            self.conn.close()
