"""What ``faxops state init`` and ``faxops state list`` do on a PostgreSQL database."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from faxops.state.lock import LockInfo
from faxops.state.pg_schema import SCHEMA_VERSION, check_version, installed_version, migrate
from faxops.state.postgres import PgLocation, db_error, held_by, lock_holder


def init(location: PgLocation) -> tuple[int, int]:
    """Create or migrate faxops' tables; returns (version before, version now)."""
    with location.connect() as conn:
        try:
            before = migrate(conn, location.schema, location.where)
        except psycopg.Error as exc:
            raise db_error(exc, location.where, "creating faxops' tables") from None
    return before, SCHEMA_VERSION


@dataclass
class CampaignInfo:
    """One campaign in a database: its history's identity, its counts, who holds its lock."""

    name: str
    lineage: str
    serial: int
    updated_at: str
    counts: dict[str, int] = field(default_factory=dict)
    holder: LockInfo | None = None
    held: bool = False


def campaigns(location: PgLocation) -> list[CampaignInfo]:
    """Every campaign in the database's faxops schema, by name. Takes no lock."""
    from faxops.clock import iso

    with location.connect() as conn:
        try:
            version = installed_version(conn, location.schema)
            check_version(version, location.where)
            if version == 0:
                return []
            rows = conn.execute(
                sql.SQL(
                    "SELECT c.name, c.lineage, c.serial, c.updated_at, r.status, count(r.number) FROM {} c "
                    "LEFT JOIN {} r ON r.campaign_id = c.id GROUP BY c.name, c.lineage, c.serial, c.updated_at, "
                    "r.status ORDER BY c.name"
                ).format(location.table("campaigns"), location.table("records"))
            ).fetchall()
            found: dict[str, CampaignInfo] = {}
            for name, lineage, serial, updated_at, status, count in rows:
                info = found.setdefault(name, CampaignInfo(name, lineage, int(serial), iso(updated_at)))
                if status is not None:
                    info.counts[str(status)] = int(count)
            # A campaign whose first writer holds (or held) the lock but has recorded nothing yet.
            for (name,) in conn.execute(sql.SQL("SELECT campaign FROM {}").format(location.table("locks"))):
                found.setdefault(name, CampaignInfo(name, "", 0, ""))
            for info in found.values():
                info.holder = lock_holder(conn, location, info.name)
                info.held = held_by(conn, location, info.name) is not None
        except psycopg.Error as exc:
            raise db_error(exc, location.where, "listing the campaigns") from None
    return sorted(found.values(), key=lambda c: c.name)
