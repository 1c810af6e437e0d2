"""Status pushes: `faxops webhook serve` receives them (``faxops.receiver``), an inbox keeps them, and the
state takes them in.

The receiver must answer fast and must not lose what it accepted, yet it must not hold the state lock
(``apply`` and ``refresh`` need it while it runs). So each accepted push is made durable in the store's
inbox (``faxops.state.inbox``: a file beside the manifest fsynced, or a row committed in PostgreSQL)
*before* the 200 goes back; whoever next holds the state lock (the receiver itself every few seconds when
the lock is free, ``refresh``, ``plan``, ``apply``) moves the inbox into the journal as ``status`` events.

Formats: FAX.PLUS ``fax_sent`` (JSON), Retarus' HTTP status push (XML by default, JSON on request:
a job report with one entry per recipient), and a generic JSON form::

    {"job_id": "...", "number": "+4930...", "status": "delivered|failed|queued|sending|canceled|expired",
     "raw": "provider code", "reason": "...", "pages": 2, "at": "2026-11-23T10:00:00Z"}
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from faxops import clock, secrets
from faxops.clock import iso, parse_iso
from faxops.domain import Status, StatusUpdate
from faxops.providers import REGISTRY
from faxops.providers.base import BadPush, PushedUpdate, push_json, push_number
from faxops.state import StatePaths, StateStore, StateWriter, events
from faxops.state.events import updates_json
from faxops.state.records import Event, Record

_KEEP_UNMATCHED = timedelta(days=7)


@dataclass(frozen=True)
class Push:
    """One recipient's status as a push reported it."""

    source: str
    ids: tuple[str, ...]  # provider ids that may name the attempt (job, fax, outbox ids)
    update: StatusUpdate
    at: str  # when received

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "ids": list(self.ids), "received": self.at, **updates_json([self.update])[0]}


# --- parsing ------------------------------------------------------------------------------------------


def parse_generic(body: bytes) -> list[PushedUpdate]:
    doc = push_json(body, allow_list=True)
    items = doc if isinstance(doc, list) else [doc]
    out: list[PushedUpdate] = []
    for item in items:
        if not isinstance(item, dict):
            raise BadPush("each update must be an object")
        try:
            status = Status(str(item.get("status")))
        except ValueError:
            raise BadPush(f"status must be one of {', '.join(s.value for s in Status)}") from None
        job_id = str(item.get("job_id") or "")
        if not job_id:
            raise BadPush("job_id is required")
        update = StatusUpdate(
            push_number(item.get("number")),
            status,
            item.get("raw"),
            item.get("reason"),
            None,
            item.get("pages") if isinstance(item.get("pages"), int) else None,
            parse_iso(item.get("at")),
        )
        out.append(((job_id,), update))
    return out


#: the receiver's paths: one per provider that pushes (from the registry), and the generic form
PARSERS = {name: p.push_format for name, p in REGISTRY.items() if p.push_format} | {"generic": "generic JSON"}


def push_paths() -> str:
    """The receiver's paths as a user reads them: ``/faxplus, /retarus or /generic``."""
    paths = [f"/{name}" for name in PARSERS]
    return ", ".join(paths[:-1]) + f" or {paths[-1]}"


def parse(source: str, body: bytes, content_type: str) -> list[Push]:
    """The pushes in one request to ``/<source>``; ``BadPush`` when the body is not that form."""
    found = parse_generic(body) if source == "generic" else REGISTRY[source].parse_push(body, content_type)
    at = iso(clock.now())
    return [Push(source, ids, update, at) for ids, update in found]


# --- the inbox ----------------------------------------------------------------------------------------


def inbox_path(paths: StatePaths) -> Path:
    """The local backend's inbox file (the postgres backend keeps pushes in its ``pushes`` table)."""
    return paths.inbox


def inbox_items(pushes: Iterable[Push]) -> list[dict[str, Any]]:
    """Pushes as the inbox keeps them: JSON objects, scrubbed of secrets."""
    return [secrets.scrub_event(p.to_json()) for p in pushes]


def ingest(store: StateStore, writer: StateWriter) -> int:
    """Move the pushes waiting in the store's inbox into the state as status events; how many were taken.

    The caller holds ``writer`` (the state lock), so nothing else records while the inbox is emptied.
    """
    inbox = store.push_inbox()
    try:
        return inbox.take_in(writer, lambda items: _match(store.records(), items))
    finally:
        inbox.close()


def _match(records: Iterable[tuple[str, Record]], items: list[dict[str, Any]]) -> tuple[list[Event], list[int]]:
    """Status events for pushes that name a recorded attempt, and the indices of the pushes not matched yet
    (kept a while: the attempt may not be recorded yet)."""
    wanted_numbers = {i.get("number") for i in items}
    by_id: dict[tuple[str, str], str] = {}  # (provider id, number) -> attempt reference
    latest: dict[str, dict[str, Any]] = {}  # number -> its latest attempt
    for number, record in records:
        if number not in wanted_numbers:
            continue
        attempts = record.get("attempts") or []
        for attempt in attempts:
            for key in ("job_id", "recipient_id", "fax_id"):
                if attempt.get(key):
                    by_id[(str(attempt[key]), number)] = attempt["reference"]
        if attempts:
            latest[number] = attempts[-1]
    taken: list[Event] = []
    keep: list[int] = []
    now = clock.now()
    for index, item in enumerate(items):
        number = item.get("number", "")
        ref = next((by_id[(i, number)] for i in item.get("ids", ()) if (i, number) in by_id), None)
        provider = REGISTRY.get(str(item.get("source")))
        if ref is None and provider is not None and provider.push_before_ids and number in latest:
            # A fax id is learnt from the first status poll; a push can come before it. Attach it to the
            # latest attempt only when that attempt has no fax id yet and began before the fax did.
            attempt = latest[number]
            started = parse_iso(attempt.get("submitted_at"))
            pushed = parse_iso(item.get("at")) or parse_iso(item.get("received"))
            if not attempt.get("fax_id") and started and pushed and pushed >= started - timedelta(minutes=1):
                ref = attempt["reference"]
        if ref is None:
            received = parse_iso(item.get("received"))
            if received is None or now - received < _KEEP_UNMATCHED:
                keep.append(index)
            continue
        update = {k: v for k, v in item.items() if k not in ("source", "ids", "received")}
        taken.append(events.status(ref, update, item.get("received")))
    return taken, keep
