"""The postgres backend's tables, and the migrations that create them. faxops owns them: never by hand.

Version 1::

    campaigns (id, name UNIQUE, lineage, serial, journal_seq, applied_with, audit, created_at, updated_at)
    journal   (campaign_id, seq, at, event jsonb)   append-only; PRIMARY KEY (campaign_id, seq)
    records   (campaign_id, number, status, attempts, record bytea)   the current record per recipient
    locks     (campaign, id, host, pid, who, operation, since, heartbeat, ci_url, backend_pid)   who holds the lock

Version 2::

    pushes    (id, campaign, received, push jsonb)   status pushes accepted by ``webhook serve``, not yet
              taken in; keyed by campaign name (a receiver may start before the campaign's first apply)

A record is stored as the lockfile holds it (compact JSON, keys sorted), so that ``plan`` reads settled
recipients' summaries from their bytes exactly as it does from a lockfile.

The version lives in ``schema_version``. Migrating takes a transaction-level advisory lock, so two
first runs at the same moment cannot both create the tables.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from faxops.errors import StateError

SCHEMA_VERSION = 3
#: advisory lock keys (``pg_advisory_*(int, int)``): a namespace of faxops' own, then what is locked
LOCK_NAMESPACE = 0x66617870  # "faxp"
MIGRATION_KEY = 0

_MIGRATIONS: list[str] = [
    # 0 -> 1
    """
    CREATE TABLE IF NOT EXISTS {s}.campaigns (
        id bigserial PRIMARY KEY,
        name text NOT NULL UNIQUE,
        lineage text NOT NULL,
        serial bigint NOT NULL DEFAULT 0,
        journal_seq bigint NOT NULL DEFAULT 0,
        applied_with jsonb NOT NULL DEFAULT '{{}}',
        audit jsonb NOT NULL DEFAULT '[]',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE IF NOT EXISTS {s}.journal (
        campaign_id bigint NOT NULL REFERENCES {s}.campaigns (id) ON DELETE CASCADE,
        seq bigint NOT NULL,
        at timestamptz NOT NULL DEFAULT now(),
        event jsonb NOT NULL,
        PRIMARY KEY (campaign_id, seq)
    );
    CREATE TABLE IF NOT EXISTS {s}.records (
        campaign_id bigint NOT NULL REFERENCES {s}.campaigns (id) ON DELETE CASCADE,
        number text NOT NULL,
        status text NOT NULL,
        record bytea NOT NULL,
        PRIMARY KEY (campaign_id, number)
    );
    CREATE TABLE IF NOT EXISTS {s}.locks (
        campaign text PRIMARY KEY,
        id text NOT NULL,
        host text NOT NULL,
        pid integer NOT NULL,
        who text NOT NULL,
        operation text NOT NULL,
        since timestamptz NOT NULL,
        heartbeat timestamptz NOT NULL,
        ci_url text,
        backend_pid integer NOT NULL
    );
    """,
    # 1 -> 2
    """
    CREATE TABLE IF NOT EXISTS {s}.pushes (
        id bigserial PRIMARY KEY,
        campaign text NOT NULL,
        received timestamptz NOT NULL DEFAULT now(),
        push jsonb NOT NULL
    );
    CREATE INDEX IF NOT EXISTS pushes_campaign ON {s}.pushes (campaign, id);
    """,
    # 2 -> 3: each record's attempt count beside it, so that a plan reads a settled record's summary (status
    # and count) without fetching the record. Counted as ``records.attempts_of_raw`` counts: the attempts'
    # ``"n":`` keys less those of attempts that never left.
    """
    ALTER TABLE {s}.records ADD COLUMN IF NOT EXISTS attempts integer;
    UPDATE {s}.records SET attempts =
        (octet_length(convert_from(record, 'UTF8'))
         - octet_length(replace(convert_from(record, 'UTF8'), '"n":', ''))) / 4
        - (octet_length(convert_from(record, 'UTF8'))
           - octet_length(replace(convert_from(record, 'UTF8'), '"status":"not_sent"', ''))) / 19
        WHERE attempts IS NULL;
    """,
]


def installed_version(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> int:
    """The schema version in the database: 0 when faxops never created its tables there."""
    row = conn.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = 'schema_version'",
        (schema,),
    ).fetchone()
    if row is None:
        return 0
    found = conn.execute(sql.SQL("SELECT max(version) FROM {}.schema_version").format(sql.Identifier(schema)))
    value = found.fetchone()
    return int(str(value[0])) if value and value[0] is not None else 0


def check_version(version: int, where: str) -> None:
    if version > SCHEMA_VERSION:
        raise StateError(
            f"the state database at {where} has schema version {version}, newer than this faxops reads "
            f"({SCHEMA_VERSION}); nothing was sent",
            hint="upgrade faxops on this machine to the version that migrated the database",
        )


def migrate(conn: psycopg.Connection[tuple[object, ...]], schema: str, where: str) -> int:
    """Bring the tables to :data:`SCHEMA_VERSION`; returns the version found before. Autocommit connection."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_NAMESPACE, MIGRATION_KEY))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_version (version integer NOT NULL, "
                "migrated_at timestamptz NOT NULL DEFAULT now(), faxops text NOT NULL)"
            ).format(sql.Identifier(schema))
        )
        before = installed_version(conn, schema)
        check_version(before, where)
        from faxops import __version__

        for version in range(before, SCHEMA_VERSION):
            conn.execute(sql.SQL(_MIGRATIONS[version]).format(s=sql.Identifier(schema)))
            conn.execute(
                sql.SQL("INSERT INTO {}.schema_version (version, faxops) VALUES (%s, %s)").format(
                    sql.Identifier(schema)
                ),
                (version + 1, __version__),
            )
    return before
