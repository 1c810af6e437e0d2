"""The PostgreSQL state backend: one lock and one journal for every machine that applies a campaign.

Tables are in :mod:`faxops.state.pg_schema`. What a newcomer could undo by accident:

* **One connection holds the lock and writes the journal.** The writer lock is a session-level advisory
  lock, which the server drops when the holder's connection ends (a killed CI job never strands it).
  Writing intents on that same connection means a writer that lost its lock can no longer record an
  intent, so it can no longer send: a second writer and a half-dead first one never both send.
* **Intent before the call, answer as it comes, in group commits.** ``record`` returns once the event's
  transaction committed; concurrent sends share transactions (whoever finds no flush under way commits
  everything queued so far). Each transaction appends to ``journal`` and rewrites the touched rows of
  ``records``, so the current record per recipient is always exactly the journal folded, and ``plan`` of a
  million recipients reads a million rows, not the journal.
* **Readers take no lock.** They read ``campaigns`` and ``records`` in one repeatable-read snapshot.
* **The URL is a secret.** It is registered with :mod:`faxops.secrets` before the first connection, and
  errors name host, port and database only.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from faxops import secrets
from faxops.clock import iso, now_iso
from faxops.errors import JournalWriteError, StateError, StateLockedError
from faxops.state import RecordedState
from faxops.state.events import check
from faxops.state.lock import LockInfo, _user
from faxops.state.lockfile import Header
from faxops.state.pg_schema import LOCK_NAMESPACE, check_version, installed_version, migrate
from faxops.state.records import Event, Record, Summary, apply_event, event_numbers, summarise, summarise_raw
from faxops.state.store import StateStore, StateWriter

Conn = psycopg.Connection[tuple[Any, ...]]
HEARTBEAT_SECONDS = 15.0
_CACHE_LIMIT = 200_000  # records the writer keeps between its transactions (intent, then answer)


def ci_run_url(env: dict[str, str] | None = None) -> str | None:
    """The URL of the CI run this process belongs to, when the environment names one."""
    env = dict(os.environ) if env is None else env
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL") or "https://github.com"
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return env.get("CI_JOB_URL") or None


@dataclass(frozen=True)
class PgLocation:
    """Where a campaign's state lives: a database URL (a secret) and a schema in it."""

    url: str
    schema: str = "faxops"

    def __post_init__(self) -> None:
        secrets.register_url(self.url)

    @property
    def where(self) -> str:
        """host:port/database, never the user or password: what messages and saved plans show."""
        try:
            params = conninfo_to_dict(self.url)
        except psycopg.ProgrammingError:
            return "an unreadable database URL"
        host = str(params.get("host") or "localhost")
        return f"{host}:{params.get('port') or 5432}/{params.get('dbname') or params.get('user') or ''}"

    def identity(self, campaign: str) -> str:
        return f"postgres://{self.where}?schema={self.schema}#{campaign}"

    def connect(self) -> Conn:
        """A new autocommit connection; connection failures become a ``StateError`` naming host and port."""
        try:
            return psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=10,
                application_name="faxops",
                # A server that vanished (a cable, a failover) must be noticed within seconds, not hours.
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
        except psycopg.Error as exc:
            raise db_error(exc, self.where, "connecting") from None

    def table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))


def db_error(exc: BaseException, where: str, doing: str) -> StateError:
    """A database error as faxops reports it (the server's words, scrubbed; never the URL)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return StateError(
            f"the state database at {where} refused {doing}: {text}; nothing was sent",
            hint="grant the faxops database user the rights on its schema (see README: state on PostgreSQL)",
        )
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return StateError(
            f"the state database at {where} is read-only ({doing}): {text}; nothing was sent",
            hint="point faxops at the primary server, not a standby",
        )
    if isinstance(exc, psycopg.OperationalError):
        return StateError(f"cannot reach the state database at {where} ({doing}): {text}")
    return StateError(f"the state database at {where} failed while {doing}: {text}")


def _header(row: tuple[Any, ...] | None, campaign: str) -> Header | None:
    if row is None:
        return None
    return Header(
        lineage=str(row[1]),
        serial=int(row[2]),
        campaign=campaign,
        journal_seq=int(row[3]),
        applied_with=dict(row[4] or {}),
        audit=list(row[5] or []),
    )


def _campaign_row(conn: Conn, loc: PgLocation, campaign: str) -> tuple[Any, ...] | None:
    query = sql.SQL("SELECT id, lineage, serial, journal_seq, applied_with, audit FROM {} WHERE name = %s")
    return conn.execute(query.format(loc.table("campaigns")), (campaign,)).fetchone()


def _summaries(conn: Conn, loc: PgLocation, campaign_id: int, detail: Collection[str]) -> dict[str, Summary]:
    summaries: dict[str, Summary] = {}
    with conn.cursor(name="faxops_records", binary=True) as cur:
        cur.itersize = 20_000
        cur.execute(
            sql.SQL("SELECT number, record FROM {} WHERE campaign_id = %s").format(loc.table("records")),
            (campaign_id,),
        )
        for number, raw in cur:
            data = bytes(raw)
            summary = summarise_raw(data) if number not in detail else None
            summaries[number] = summary if summary is not None else summarise(orjson.loads(data))
    return summaries


def _snapshot(conn: Conn) -> AbstractContextManager[psycopg.Transaction]:
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    return conn.transaction()


class PostgresStore(StateStore):
    """A campaign's state in a PostgreSQL database (see the module docstring)."""

    def __init__(self, location: PgLocation, campaign: str) -> None:
        self.location = location
        self.campaign = campaign

    def identity(self) -> str:
        """What a saved plan binds to: server, database, schema and campaign (no credentials)."""
        return self.location.identity(self.campaign)

    def _reading(self) -> tuple[Conn, bool]:
        """A connection, and whether faxops' tables exist there (a reader never creates them)."""
        conn = self.location.connect()
        try:
            version = installed_version(conn, self.location.schema)
            check_version(version, self.location.where)
        except psycopg.Error as exc:
            conn.close()
            raise db_error(exc, self.location.where, "reading the schema version") from None
        except BaseException:
            conn.close()
            raise
        return conn, version > 0

    def header(self) -> Header | None:
        conn, present = self._reading()
        with conn:
            return _header(_campaign_row(conn, self.location, self.campaign), self.campaign) if present else None

    def read(self, detail: Collection[str] = ()) -> RecordedState:
        """A summary per recorded number, from one consistent snapshot. Takes no lock."""
        conn, present = self._reading()
        with conn:
            if not present:
                return RecordedState(header=None)
            return read_state(conn, self.location, self.campaign, detail)

    def records(self) -> Iterator[tuple[str, Record]]:
        """Full records sorted by number (status, reports, pull), streamed from one snapshot."""
        conn, present = self._reading()
        with conn:
            if not present:
                return
            try:
                with _snapshot(conn):
                    row = _campaign_row(conn, self.location, self.campaign)
                    if row is None:
                        return
                    with conn.cursor(name="faxops_records", binary=True) as cur:
                        cur.itersize = 20_000
                        cur.execute(
                            sql.SQL("SELECT number, record FROM {} WHERE campaign_id = %s ORDER BY number").format(
                                self.location.table("records")
                            ),
                            (row[0],),
                        )
                        for number, raw in cur:
                            yield number, orjson.loads(bytes(raw))
            except psycopg.Error as exc:
                raise db_error(exc, self.location.where, "reading the records") from None

    def open_writer(self, operation: str, lock_timeout: float = 0.0) -> PostgresWriter:
        """The single writer: takes the campaign's lock (or raises ``StateLockedError``)."""
        return PostgresWriter(self, operation, lock_timeout)

    def lock_info(self) -> LockInfo | None:
        return self.lock_state()[0]

    def lock_state(self) -> tuple[LockInfo | None, bool]:
        """(the recorded holder, whether a live connection holds the lock right now)."""
        conn, present = self._reading()
        with conn:
            if not present:
                return None, False
            return lock_holder(conn, self.location, self.campaign), held_by(
                conn, self.location, self.campaign
            ) is not None

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Remove the lock recorded as ``lock_id``; ends its holder's connection if one still holds it.

        Ending that connection is safe: its writer can no longer record an intent, so it can send no
        more (what it had in flight becomes an unknown outcome for the next run to reconcile). Returns
        the holder."""
        conn, present = self._reading()
        with conn:
            holder = lock_holder(conn, self.location, self.campaign) if present else None
            if holder is None:
                raise StateError(f"no lock is recorded for campaign {self.campaign} at {self.location.where}")
            if holder.id != lock_id:
                raise StateError(f"the lock id is {holder.id}, not {lock_id}")
            backend = held_by(conn, self.location, self.campaign)
            if backend is not None:
                conn.execute("SELECT pg_terminate_backend(%s)", (backend,))
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE campaign = %s AND id = %s").format(self.location.table("locks")),
                (self.campaign, lock_id),
            )
            return holder


def read_state(conn: Conn, loc: PgLocation, campaign: str, detail: Collection[str] = ()) -> RecordedState:
    try:
        with _snapshot(conn):
            row = _campaign_row(conn, loc, campaign)
            header = _header(row, campaign)
            if row is None or header is None:
                return RecordedState(header=None)
            summaries = _summaries(conn, loc, int(row[0]), detail)
    except psycopg.Error as exc:
        raise db_error(exc, loc.where, "reading the state") from None
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.isolation_level = None
    return RecordedState(header=header, summaries=summaries, journal_seq=header.journal_seq)


def held_by(conn: Conn, loc: PgLocation, campaign: str) -> int | None:
    """The server pid of the connection holding the campaign's advisory lock, if any."""
    row = conn.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s::oid "
        "AND objid = hashtext(%s)::oid AND objsubid = 2",
        (LOCK_NAMESPACE, f"{loc.schema}.{campaign}"),
    ).fetchone()
    return int(row[0]) if row else None


def current_holder(conn: Conn, loc: PgLocation, campaign: str, wait: float = 3.0) -> LockInfo | None:
    """Who holds the lock right now. The holder writes its row just after it took the lock, so a row
    of the connection that holds the lock is awaited a moment (an older row is a dead holder's)."""
    deadline = time.monotonic() + wait
    query = sql.SQL("SELECT 1 FROM {} WHERE campaign = %s AND backend_pid = %s").format(loc.table("locks"))
    while True:
        backend = held_by(conn, loc, campaign)
        if backend is None:
            return None
        if conn.execute(query, (campaign, backend)).fetchone() is not None or time.monotonic() >= deadline:
            return lock_holder(conn, loc, campaign)
        time.sleep(0.05)


def lock_holder(conn: Conn, loc: PgLocation, campaign: str) -> LockInfo | None:
    row = conn.execute(
        sql.SQL("SELECT id, host, pid, operation, since, who, ci_url FROM {} WHERE campaign = %s").format(
            loc.table("locks")
        ),
        (campaign,),
    ).fetchone()
    if row is None:
        return None
    return LockInfo(str(row[0]), str(row[1]), int(row[2]), str(row[3]), iso(row[4]), str(row[5]), row[6])


class _Lock:
    """What ``StateWriter.lock`` offers: who holds it now, and what a dead holder left."""

    def __init__(self, info: LockInfo, stale: LockInfo | None) -> None:
        self.info: LockInfo | None = info
        self.stale = stale


class PostgresWriter(StateWriter):
    """The single writer of a campaign on PostgreSQL: holds the advisory lock and its connection."""

    def __init__(self, store: PostgresStore, operation: str, lock_timeout: float = 0.0) -> None:
        self.store = store
        self.loc = store.location
        self.campaign = store.campaign
        self.conn = self.loc.connect()
        self._db = threading.Lock()  # one statement or transaction at a time on the connection
        self._cond = threading.Condition()
        self._queue: list[Event] = []
        self._enqueued = 0
        self._durable = 0
        self._flushing = False
        self._broken: BaseException | None = None
        self._cache: dict[str, bytes] = {}  # records this writer committed (an answer follows its intent)
        # Numbers in the table when this writer last read the state (under its lock, so the table holds
        # exactly these plus what it wrote since); None: unknown, look every number up.
        self._known: set[str] | None = None
        self._prepare_queries()
        self._changed = False
        self._stop_heartbeat = threading.Event()
        try:
            migrate(self.conn, self.loc.schema, self.loc.where)
            self.lock = self._acquire(operation, lock_timeout)
            row = _campaign_row(self.conn, self.loc, self.campaign)
        except psycopg.Error as exc:
            self.conn.close()
            raise db_error(exc, self.loc.where, "taking the state lock") from None
        except BaseException:
            self.conn.close()
            raise
        self.campaign_id: int | None = int(row[0]) if row else None
        self.header = _header(row, self.campaign)
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
            while self._durable < ticket:
                if self._broken is not None:
                    raise self._error()
                if self._flushing:
                    self._cond.wait()
                    continue
                self._flush_locked()
            return seq

    def _flush_locked(self) -> None:
        batch, self._queue = self._queue, []
        upto = self._enqueued
        self._flushing = True
        self._cond.release()
        error: BaseException | None = None
        try:
            with self._db:
                self._commit(batch)
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
            self._changed = True
        self._cond.notify_all()

    def _ensure_campaign(self) -> int:
        if self.campaign_id is None:
            self.conn.execute(
                sql.SQL("INSERT INTO {} (name, lineage) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING").format(
                    self.loc.table("campaigns")
                ),
                (self.campaign, str(uuid.uuid4())),
            )
            row = _campaign_row(self.conn, self.loc, self.campaign)
            assert row is not None
            self.campaign_id = int(row[0])
            self.header = _header(row, self.campaign)
        return self.campaign_id

    def _prepare_queries(self) -> None:
        # Composed once: a flush runs hundreds of times a second.
        self._q_journal = sql.SQL(
            "INSERT INTO {} (campaign_id, seq, event) "
            "SELECT %s, s, e::jsonb FROM unnest(%s::bigint[], %s::text[]) AS u(s, e)"
        ).format(self.loc.table("journal"))
        self._q_select = sql.SQL("SELECT number, record FROM {} WHERE campaign_id = %s AND number = ANY(%s)").format(
            self.loc.table("records")
        )
        self._q_upsert = sql.SQL(
            "INSERT INTO {} (campaign_id, number, status, record) SELECT %s, n, s, r "
            "FROM unnest(%s::text[], %s::text[], %s::bytea[]) AS u(n, s, r) "
            "ON CONFLICT (campaign_id, number) DO UPDATE SET status = EXCLUDED.status, record = EXCLUDED.record"
        ).format(self.loc.table("records"))
        self._q_position = sql.SQL(
            "UPDATE {} SET journal_seq = %s, audit = audit || %s::jsonb, updated_at = now() WHERE id = %s"
        ).format(self.loc.table("campaigns"))

    def _current(self, cid: int, touched: set[str]) -> dict[str, bytes]:
        """The stored records of ``touched``: from the cache, else from the table (only numbers that may be there)."""
        current = {n: self._cache[n] for n in touched if n in self._cache}
        known = self._known
        missing = [n for n in touched if n not in current and (known is None or n in known)]
        if missing:
            rows = self.conn.execute(self._q_select, (cid, missing), binary=True)
            current.update((n, bytes(r)) for n, r in rows)
        return current

    def _commit(self, batch: list[Event]) -> None:
        # One pipeline: the statements and the commit travel together, one round trip per group commit.
        with self.conn.pipeline(), self.conn.transaction():
            cid = self._ensure_campaign()
            self.conn.execute(
                self._q_journal, (cid, [e["seq"] for e in batch], [orjson.dumps(e).decode() for e in batch])
            )
            current = self._current(cid, {n for e in batch for n in event_numbers(e)})
            working: dict[str, Record] = {}
            for event in batch:
                for number in event_numbers(event):
                    record = working.get(number)
                    if record is None and number in current:
                        record = orjson.loads(current[number])
                    working[number] = apply_event(number, record, event)
            numbers = sorted(working)
            encoded = [orjson.dumps(working[n], option=orjson.OPT_SORT_KEYS) for n in numbers]
            statuses = [str(working[n].get("status")) for n in numbers]
            self.conn.execute(self._q_upsert, (cid, numbers, statuses, encoded))
            resolves = [{k: v for k, v in e.items() if k not in ("t", "seq")} for e in batch if e["t"] == "resolve"]
            self.conn.execute(self._q_position, (batch[-1]["seq"], orjson.dumps(resolves).decode(), cid))
        if len(self._cache) > _CACHE_LIMIT:
            # What this run wrote is no longer all cached: from now on every number is looked up.
            self._cache.clear()
            self._known = None
        self._cache.update(zip(numbers, encoded, strict=True))

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
                    copy_sql = sql.SQL("COPY {} (campaign_id, number, status, record) FROM STDIN").format(
                        self.loc.table("records")
                    )
                    with self.conn.cursor() as cur, cur.copy(copy_sql) as copy:
                        for number, record in records:
                            data = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
                            copy.write_row((cid, number, str(record.get("status")), data))
                            count += 1
            except psycopg.Error as exc:
                raise db_error(exc, self.loc.where, "loading the state") from None
        self.campaign_id = cid
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
            self._known = set(state.summaries)
        self.header = state.header
        return state

    @property
    def holder(self) -> LockInfo | None:
        return self.lock.info

    @property
    def stale(self) -> LockInfo | None:
        return self.lock.stale

    def close(self, applied_with: Mapping[str, object] | None = None) -> Header | None:
        """Count the run in the serial (when it changed anything) and release the lock."""
        try:
            if self._broken is not None:
                raise self._error()
            with self._db:
                try:
                    with self.conn.transaction():
                        row = _campaign_row(self.conn, self.loc, self.campaign)
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
                        self.header = _header(_campaign_row(self.conn, self.loc, self.campaign), self.campaign)
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
