"""The postgres backend's push inbox: accepted status pushes in the ``pushes`` table.

``webhook serve`` INSERTs each accepted push in its own committed transaction before answering 200, on a
connection of its own and without the campaign's lock, so any number of receivers on any machines can
accept pushes at once (behind a load balancer). The writer takes them in: the status events go into the
journal and the pushes taken (or expired) are deleted in the SAME transaction, so a crash between the two
cannot lose or double a push. Only the lock holder takes in, so no two takers race for one row.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson
import psycopg
from psycopg import sql

from faxops.errors import StateError
from faxops.state.inbox import Matcher, PushInbox
from faxops.state.pg_schema import check_version, installed_version, migrate
from faxops.state.postgres import Conn, PgLocation, db_error
from faxops.state.store import StateWriter

_FIRST_VERSION = 2  # the schema version that has the pushes table


class PgInbox(PushInbox):
    """Pushes for one campaign in the ``pushes`` table."""

    def __init__(self, location: PgLocation, campaign: str) -> None:
        self.location = location
        self.campaign = campaign
        self._conn: Conn | None = None
        self._lock = threading.Lock()  # the receiver appends from several threads over one connection

    def append(self, items: list[dict[str, Any]]) -> None:
        """INSERT the pushes; returns once their transaction committed (a ``StateError`` otherwise)."""
        query = sql.SQL("INSERT INTO {} (campaign, push) SELECT %s, p::jsonb FROM unnest(%s::text[]) AS u(p)")
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self.location.connect()
                    # A receiver may be the first faxops to use the database: it creates the tables.
                    migrate(self._conn, self.location.schema, self.location.where)
                self._conn.execute(
                    query.format(self.location.table("pushes")),
                    (self.campaign, [orjson.dumps(i).decode() for i in items]),
                )
            except StateError:
                self.close_locked()
                raise
            except psycopg.Error as exc:
                # A dead connection is not reused: the next push connects afresh (a restarted server).
                self.close_locked()
                raise db_error(exc, self.location.where, "recording a push") from None

    def waiting(self) -> bool:
        with self.location.connect() as conn:
            try:
                version = installed_version(conn, self.location.schema)
                check_version(version, self.location.where)
                if version < _FIRST_VERSION:
                    return False
                query = sql.SQL("SELECT 1 FROM {} WHERE campaign = %s LIMIT 1")
                found = conn.execute(query.format(self.location.table("pushes")), (self.campaign,)).fetchone()
            except psycopg.Error as exc:
                raise db_error(exc, self.location.where, "reading the pushes") from None
            return found is not None

    def take_in(self, writer: StateWriter, match: Matcher) -> int:
        """Pushes waiting now, in arrival order; pushes that arrive meanwhile have other ids and stay."""
        from faxops.state.pg_writer import PostgresWriter

        if not isinstance(writer, PostgresWriter):
            raise TypeError("the postgres push inbox is taken in by the postgres writer")
        table = self.location.table("pushes")
        with self.location.connect() as conn:
            try:
                rows = conn.execute(
                    sql.SQL("SELECT id, push FROM {} WHERE campaign = %s ORDER BY id").format(table), (self.campaign,)
                ).fetchall()
            except psycopg.Error as exc:
                raise db_error(exc, self.location.where, "reading the pushes") from None
        if not rows:
            return 0
        ids = [int(r[0]) for r in rows]
        taken, keep = match([dict(r[1]) for r in rows])
        kept = {ids[i] for i in keep}
        done = [i for i in ids if i not in kept]
        if not done:
            return 0

        def forget(conn: Conn) -> None:
            conn.execute(sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(table), (done,))

        writer.record_with(taken, forget)
        return len(taken)

    def close(self) -> None:
        with self._lock:
            self.close_locked()

    def close_locked(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
