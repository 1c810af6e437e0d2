"""``faxops state init|list|pull|migrate``: the state backends (PostgreSQL tables, moving state)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from faxops.commands.common import EXIT_OK
from faxops.errors import InputError

if TYPE_CHECKING:
    from faxops.output import Output
    from faxops.state import StateStore


@dataclass(frozen=True)
class StateInitArgs:
    url: str | None = None
    schema: str = "faxops"


@dataclass(frozen=True)
class StateListArgs:
    url: str | None = None
    schema: str = "faxops"
    json: bool = False


@dataclass(frozen=True)
class StatePullArgs:
    manifest: Path
    allow_outside: list[Path] = field(default_factory=list)  # --allow-outside


@dataclass(frozen=True)
class StateMigrateArgs:
    manifest: Path
    to: str
    schema: str | None = None
    allow_outside: list[Path] = field(default_factory=list)  # --allow-outside


def state_url(url: str | None) -> str:
    """The database URL given, else ``FAXOPS_STATE_URL`` (which keeps the password off the command line)."""
    from faxops import secrets
    from faxops.state import ENV_URL

    url = url or os.environ.get(ENV_URL)
    if not url:
        raise InputError(f"name the database: a postgresql:// URL, or set {ENV_URL}")
    secrets.register_url(url)  # before anything could print it
    if not url.startswith(("postgres://", "postgresql://")):
        raise InputError("not a PostgreSQL URL (postgresql://user:password@host:port/database)")
    return url


def where(store: StateStore) -> str:
    """Where a store keeps the state, as a person reads it (a database's location carries no credentials)."""
    from faxops.state import LocalStore

    return str(store.paths.lockfile) if isinstance(store, LocalStore) else store.identity()


def run_init(args: StateInitArgs, output: Output) -> int:
    """Create or migrate faxops' tables in a database."""
    from faxops.state import pg_admin
    from faxops.state.postgres import PgLocation

    location = PgLocation(state_url(args.url), args.schema)
    before, now = pg_admin.init(location)
    what = "already at" if before == now else ("created at" if before == 0 else f"migrated from {before} to")
    output.line(f"faxops' tables in schema {args.schema} at {location.where}: {what} schema version {now}.")
    return EXIT_OK


def run_list(args: StateListArgs, output: Output) -> int:
    """The campaigns in a database, with their counts and lock holders. Takes no lock."""
    from faxops.state import pg_admin
    from faxops.state.postgres import PgLocation

    location = PgLocation(state_url(args.url), args.schema)
    found = pg_admin.campaigns(location)
    if args.json:
        doc = [
            {
                "campaign": c.name,
                "lineage": c.lineage or None,
                "serial": c.serial,
                "updated_at": c.updated_at or None,
                "counts": c.counts,
                "lock": ({**c.holder.__dict__, "held": c.held} if c.holder else None),
            }
            for c in found
        ]
        output.json(orjson.dumps(doc).decode())
        return EXIT_OK
    if not found:
        output.line(f"No campaigns in schema {args.schema} at {location.where}.")
    for c in found:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(c.counts.items())) or "no recipients"
        if c.lineage:
            output.line(f"{c.name}: serial {c.serial}, lineage {c.lineage}, updated {c.updated_at}: {counts}")
        else:
            output.line(f"{c.name}: nothing recorded yet")
        if c.holder is not None:
            state = "held" if c.held else "left by a holder that ended (`force-unlock` clears it)"
            output.line(f"  {c.holder.describe()}: {state}")
    return EXIT_OK


def run_pull(args: StatePullArgs, output: Output) -> int:
    """The campaign's state on stdout, in the lockfile format."""
    from faxops.manifest import load_manifest
    from faxops.state import open_store
    from faxops.state.moving import pull

    loaded = load_manifest(args.manifest, allow_outside=args.allow_outside)
    sys.stdout.flush()
    pull(open_store(args.manifest, loaded.name, loaded.model.state), sys.stdout.buffer)
    return EXIT_OK


def run_migrate(args: StateMigrateArgs, output: Output) -> int:
    """Move the campaign's state from where the manifest keeps it to ``--to`` (a URL, or ``local``)."""
    from faxops.manifest import load_manifest
    from faxops.state import LocalStore, StatePaths, open_store
    from faxops.state.moving import migrate

    loaded = load_manifest(args.manifest, allow_outside=args.allow_outside)
    source = open_store(args.manifest, loaded.name, loaded.model.state)
    target: StateStore
    if args.to == "local":
        target = LocalStore(StatePaths.for_manifest(args.manifest, loaded.name), loaded.name)
    else:
        from faxops.state.postgres import PgLocation, PostgresStore

        schema = args.schema or loaded.model.state.db_schema
        target = PostgresStore(PgLocation(state_url(args.to), schema), loaded.name)
    header, count = migrate(source, target)
    output.line(
        f"Moved campaign {loaded.name} (lineage {header.lineage}, serial {header.serial}, {count} recipient(s)) "
        f"from {where(source)} to {where(target)}."
    )
    output.note("Point the manifest's `state:` (or FAXOPS_STATE_URL) at the new place; the old copy is left as it was.")
    return EXIT_OK
