"""Recorded state: where a campaign's files are, what the planner sees, and which store holds it.

Two backends keep the state: the local one (lockfile, write-ahead journal and ``flock`` beside the
manifest: ``faxops.state.local``, re-exported here) and PostgreSQL (``faxops.state.postgres``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faxops import secrets
from faxops.errors import InputError
from faxops.state.lockfile import Header
from faxops.state.records import Summary
from faxops.state.store import StateStore, StateWriter

if TYPE_CHECKING:
    from faxops.manifest import StateSpec


@dataclass(frozen=True)
class StatePaths:
    """Every file faxops keeps for a campaign: beside its manifest, named after it.

    The one place these names are spelt: two campaigns in one folder must never share a file, and a
    file named twice in two ways is a file that one command writes and another never reads.
    """

    lockfile: Path  # the folded state (the local backend)
    journal: Path  # events not folded yet (the local backend)
    lock: Path  # the writer lock and its holder (the local backend)
    inbox: Path  # status pushes received, not yet in the state
    poll_marker: Path  # when the provider was last polled (its minimum interval)
    report_marker: Path  # which reports were last delivered and when
    number_cache: Path  # normalised numbers of the recipient lists, by row
    number_columns: Path  # each list file's normalised numbers in file order (``faxops.number_columns``)
    summaries: Path  # the lockfile's summaries, compactly (``faxops.state.summary_index``): a cache
    rescue: tuple[Path, ...] = ()  # where job records go when the journal cannot be written, in order
    #: the campaign name the manifest gives; a lockfile recorded for another name is refused
    campaign: str | None = None

    @classmethod
    def for_manifest(cls, manifest: Path, campaign: str | None = None) -> StatePaths:
        """The files of the campaign whose manifest is ``manifest`` (named ``campaign``, when known)."""
        base, stem = manifest.parent, manifest.stem
        private = base / ".faxops"  # faxops' own files: not for people to edit, safe to delete but state
        return cls(
            lockfile=base / f"{stem}.lock.json",
            journal=base / f"{stem}.journal",
            lock=base / f".{stem}.state-lock",
            inbox=base / f"{stem}.inbox",
            poll_marker=private / f"{stem}.polled",
            report_marker=private / f"{stem}.reported",
            number_cache=private / "cache" / f"{stem}.numbers",
            number_columns=private / "cache" / f"{stem}.columns",
            summaries=private / "cache" / f"{stem}.summaries",
            # Outside the campaign folder first: a full or read-only campaign disk is why we rescue.
            rescue=(Path.home() / ".faxops" / "rescue", Path(tempfile.gettempdir())),
            campaign=campaign,
        )


@dataclass
class RecordedState:
    """What the planner sees: a summary per recorded number, and where the state stood."""

    header: Header | None
    summaries: dict[str, Summary] = field(default_factory=dict)
    journal_seq: int = 0
    journal_events: int = 0
    torn_tail: bool = False

    def fingerprint(self) -> dict[str, Any]:
        """Identifies this exact state, so a saved plan can tell whether it is stale."""
        if self.header is None and not self.journal_events:
            return {"lineage": None, "serial": 0, "journal_seq": 0}
        return {
            "lineage": self.header.lineage if self.header else None,
            "serial": self.header.serial if self.header else 0,
            "journal_seq": self.journal_seq,
        }


# The local backend needs StatePaths and RecordedState above, so it is imported once they exist; its names
# stay importable from here, where callers and tests have always found them.
from faxops.state.local import (  # noqa: E402
    LocalStore,
    LocalWriter,
    check_owner,
    fold,
    load_state,
    read_raw_records,
    read_records,
)

ENV_URL = "FAXOPS_STATE_URL"


def open_store(manifest: Path, campaign: str, spec: StateSpec | None = None) -> StateStore:
    """The state store a manifest's ``state:`` block names; ``FAXOPS_STATE_URL`` overrides it (so that a
    CI pipeline points every checkout at one database without editing the manifest). Resolves the URL."""
    import os

    url = os.environ.get(ENV_URL)
    where = ENV_URL
    if not url and spec is not None and spec.backend == "postgres" and spec.url:
        from faxops.fields import resolve_secret

        url, where = resolve_secret(spec.url, manifest.parent), f"{manifest}: state.url"
    if not url:
        return LocalStore(StatePaths.for_manifest(manifest, campaign), campaign)
    secrets.register_url(url)  # before anything could print it
    if not url.startswith(("postgres://", "postgresql://")):
        raise InputError(f"{where}: not a PostgreSQL URL (postgresql://user:password@host:port/database)")
    from faxops.state.postgres import PgLocation, PostgresStore

    return PostgresStore(PgLocation(url, spec.db_schema if spec is not None else "faxops"), campaign)


__all__ = [
    "LocalStore",
    "LocalWriter",
    "RecordedState",
    "StatePaths",
    "StateStore",
    "StateWriter",
    "check_owner",
    "fold",
    "load_state",
    "open_store",
    "read_raw_records",
    "read_records",
]
