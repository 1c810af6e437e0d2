"""Status pushes: `faxops webhook serve` receives them (``faxops.receiver``), an inbox keeps them, and the
state takes them in.

The receiver must answer fast and must not lose what it accepted, yet it must not hold the state lock
(``apply`` and ``refresh`` need it while it runs). So each accepted push is appended to an inbox file
beside the manifest and fsynced *before* the 200 goes back; whoever next holds the state lock (the
receiver itself every few seconds when the lock is free, ``refresh``, ``plan``, ``apply``) moves the
inbox into the journal as ``status`` events and empties it. A crash between the two replays the inbox,
which is harmless: status events are idempotent and never move a recipient backwards.

Formats: FAX.PLUS ``fax_sent`` (JSON), Retarus' HTTP status push (XML by default, JSON on request:
a job report with one entry per recipient), and a generic JSON form::

    {"job_id": "...", "number": "+4930...", "status": "delivered|failed|queued|sending|canceled|expired",
     "raw": "provider code", "reason": "...", "pages": 2, "at": "2026-11-23T10:00:00Z"}
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from faxops import clock, secrets
from faxops.clock import iso, parse_iso
from faxops.domain import Status, StatusUpdate
from faxops.providers import REGISTRY
from faxops.providers.base import BadPush, PushedUpdate, push_json, push_number
from faxops.state import StatePaths, StateStore, StateWriter, events
from faxops.state.events import updates_json
from faxops.state.records import Record

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
    return paths.inbox


class Inbox:
    """An append-only file of accepted pushes; flock makes appends and the hand-over exclusive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, pushes: Iterable[Push]) -> None:
        data = b"".join(orjson.dumps(secrets.scrub_event(p.to_json())) + b"\n" for p in pushes)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, data)
                os.fsync(fd)  # on disk before the provider hears 200
            finally:
                os.close(fd)


def ingest(path: Path, store: StateStore, writer: StateWriter) -> int:
    """Move the pushes in the inbox at ``path`` into the state as status events; how many were taken.

    The caller holds ``writer`` (the state lock), so nothing else records while the inbox is emptied;
    the inbox's own ``flock`` keeps the receiver from appending between reading and truncating it.
    """
    if not path.exists():
        return 0
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size == 0:
            return 0
        data = os.pread(fd, size, 0)
        items = []
        for line in data.splitlines():
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue  # a torn last line: its sender never got 200
        taken, keep = _match(store.records(), items)
        for event in taken:
            writer.record(event)
        kept = b"".join(orjson.dumps(i) + b"\n" for i in keep)
        os.ftruncate(fd, 0)
        if kept:
            os.pwrite(fd, kept, 0)
        os.fsync(fd)
        return len(taken)
    finally:
        os.close(fd)


def _match(
    records: Iterable[tuple[str, Record]], items: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Status events for pushes that name a recorded attempt; pushes not matched yet are kept a while."""
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
    taken, keep = [], []
    now = clock.now()
    for item in items:
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
                keep.append(item)
            continue
        update = {k: v for k, v in item.items() if k not in ("source", "ids", "received")}
        taken.append(events.status(ref, update, item.get("received")))
    return taken, keep
