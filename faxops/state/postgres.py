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
import time
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from faxops import secrets
from faxops.clock import iso
from faxops.errors import StateError
from faxops.state import RecordedState
from faxops.state.lock import LockInfo
from faxops.state.lockfile import Header
from faxops.state.pg_schema import LOCK_NAMESPACE, check_version, installed_version
from faxops.state.pg_summaries import read_summaries
from faxops.state.records import Record
from faxops.state.store import StateStore

if TYPE_CHECKING:
    from faxops.state.pg_inbox import PgInbox
    from faxops.state.pg_writer import PostgresWriter

Conn = psycopg.Connection[tuple[Any, ...]]


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


def header_of(row: tuple[Any, ...] | None, campaign: str) -> Header | None:
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


def campaign_row(conn: Conn, loc: PgLocation, campaign: str) -> tuple[Any, ...] | None:
    query = sql.SQL("SELECT id, lineage, serial, journal_seq, applied_with, audit FROM {} WHERE name = %s")
    return conn.execute(query.format(loc.table("campaigns")), (campaign,)).fetchone()


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
            return header_of(campaign_row(conn, self.location, self.campaign), self.campaign) if present else None

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
                    row = campaign_row(conn, self.location, self.campaign)
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
        from faxops.state.pg_writer import PostgresWriter

        return PostgresWriter(self, operation, lock_timeout)

    def push_inbox(self) -> PgInbox:
        """The ``pushes`` table: receivers on any machine append, the writer takes them in."""
        from faxops.state.pg_inbox import PgInbox

        return PgInbox(self.location, self.campaign)

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
            row = campaign_row(conn, loc, campaign)
            header = header_of(row, campaign)
            if row is None or header is None:
                return RecordedState(header=None)
            summaries = read_summaries(conn, loc, int(row[0]), detail)
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
