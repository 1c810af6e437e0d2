"""Journal events, built only by the typed constructors below.

An event is one JSON object per journal line (``t`` names its type). The constructors are the one
place that spells each type's fields, so a misspelt type or field cannot reach the journal; and a
journal holding a type this version does not know is an error (``check``), never silently skipped:
skipping an ``accepted`` written by a newer faxops would let the next apply fax the recipient again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal

from faxops.clock import iso, now_iso
from faxops.domain import Receipt, StatusUpdate
from faxops.errors import StateError
from faxops.state.records import EVENT_TYPES, Event


def check(event: Mapping[str, object], where: str = "the journal") -> None:
    """Raise ``StateError`` for an event whose type this version of faxops does not know."""
    kind = event.get("t")
    if kind not in EVENT_TYPES:
        raise StateError(
            f"{where}: unknown event type {kind!r}; it may have been written by a newer faxops",
            hint="use the faxops version that wrote it; the file holds job IDs, keep it",
        )


def updates_json(updates: Sequence[StatusUpdate]) -> list[dict[str, object]]:
    """Status updates as events carry them (only the fields that are set)."""
    out = []
    for u in updates:
        item: dict[str, object] = {"number": u.number, "status": str(u.status)}
        for key in ("raw", "reason", "retryable", "pages", "provider_id", "duration", "cost"):
            value = getattr(u, key)
            if value is not None:
                item[key] = value
        failure = u.failure_class()
        if failure is not None:
            item["failure"] = str(failure)
        if u.at is not None:
            item["at"] = iso(u.at)
        out.append(item)
    return out


def intent(
    ref: str, numbers: Sequence[str], provider: str, *, forced: str | None = None, send_at: datetime | None = None
) -> Event:
    """A submission is about to start: written (durably) before the provider is called."""
    event: Event = {"t": "intent", "ref": ref, "numbers": list(numbers), "provider": provider, "at": now_iso()}
    if forced:
        event["forced"] = forced
        event["reason"] = f"resend: {forced}"
    if send_at is not None:
        event["send_at"] = iso(send_at)
    return event


def receipt(
    kind: Literal["accepted", "found"],
    ref: str,
    numbers: Sequence[str],
    answer: Receipt,
    *,
    evidence: str | None = None,
) -> Event:
    """The provider took the job (``accepted``), or reconcile found it there (``found``)."""
    event: Event = {
        "t": kind,
        "ref": ref,
        "numbers": list(numbers),
        "job_id": answer.job_id,
        "ids": dict(answer.recipient_ids),
        "updates": updates_json(answer.updates),
        "at": now_iso(),
    }
    if evidence is not None:
        event["evidence"] = evidence
    return event


def rejected(
    ref: str, numbers: Sequence[str], *, code: str | None, message: str, retryable: bool, failure: str
) -> Event:
    """The provider refused the job, with its own code and message."""
    return {
        "t": "rejected",
        "ref": ref,
        "numbers": list(numbers),
        "code": code,
        "message": message,
        "retryable": retryable,
        "failure": failure,
        "at": now_iso(),
    }


def outcome(kind: Literal["not_sent", "unknown"], ref: str, numbers: Sequence[str], reason: str) -> Event:
    """The request certainly did not take effect (``not_sent``), or may have (``unknown``: reconcile)."""
    return {"t": kind, "ref": ref, "numbers": list(numbers), "reason": reason, "at": now_iso()}


def expire(numbers: Sequence[str]) -> Event:
    """The campaign expired before these recipients were sent: never send them late."""
    return {"t": "expire", "numbers": list(numbers), "at": now_iso()}


def status(ref: str, update: Mapping[str, object], at: str | None = None) -> Event:
    """A status the provider reported for one recipient (``update`` as ``updates_json`` writes it)."""
    # The provider's own time of the status wins over when we heard of it.
    return {"t": "status", "ref": ref, **update, "at": update.get("at") or at or now_iso()}


def resolve(ref: str | None, number: str, *, job_id: str | None, note: str, by: str) -> Event:
    """A person decided a send of unknown outcome: sent as ``job_id``, or (None) not sent."""
    return {
        "t": "resolve",
        "ref": ref,
        "number": number,
        "sent": job_id is not None,
        "job_id": job_id,
        "note": note,
        "by": by,
        "at": now_iso(),
    }
