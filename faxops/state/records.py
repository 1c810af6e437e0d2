"""Per-recipient records and how journal events change them. Pure functions, no I/O.

A record is the JSON object stored for one number in the lockfile::

    {"status": "delivered",
     "attempts": [{"n": 1, "provider": "sandbox", "reference": "fx-...", "submitted_at": "...",
                   "status": "delivered", "job_id": "sbx-...", "raw_status": "OK", ...}]}

Events are the journal's lines. Applying the same event twice changes nothing, and a status update
never moves an attempt backwards, so replaying a journal over a lockfile that already holds part of it
is safe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faxops.domain import FailureClass, Status, classify
from faxops.errors import StateError

Record = dict[str, Any]
Event = dict[str, Any]

#: event types that name the numbers they touch in ``numbers``; ``status``/``resolve`` name one ``number``
BATCH_EVENTS = frozenset({"intent", "accepted", "rejected", "not_sent", "unknown", "found", "expire"})
#: every event type there is (``faxops.state.events`` builds them)
EVENT_TYPES = BATCH_EVENTS | {"status", "resolve"}


def event_numbers(event: Event) -> list[str]:
    if event["t"] in BATCH_EVENTS:
        return list(event["numbers"])
    if "number" in event:
        return [event["number"]]
    return []


def fold_events(number: str, record: Record | None, events: list[Event]) -> Record:
    """``number``'s record after ``events``, in order (a new record when ``record`` is None)."""
    for event in events:
        record = apply_event(number, record, event)
    assert record is not None
    return record


def counted_attempts(record: Record) -> int:
    """Attempts that may have reached a provider (a request that certainly never left does not count)."""
    attempts = record.get("attempts", ())
    if len(attempts) == 1:  # most records: no generator to build (a report counts a million)
        return 0 if attempts[0].get("status") == Status.NOT_SENT else 1
    return sum(1 for a in attempts if a.get("status") != Status.NOT_SENT)


def _attempt(record: Record, reference: str) -> dict[str, Any] | None:
    for attempt in reversed(record.get("attempts", ())):
        if attempt.get("reference") == reference:
            return attempt  # type: ignore[no-any-return]
    return None


#: rank and finality by status text: a fold of a million records looks them up millions of times, and
#: building a ``Status`` from its text each time was a tenth of the fold
_RANKS = {str(s): s.rank for s in Status}
_FINAL_TEXTS = frozenset(str(s) for s in Status if s.final)


def _set_status(attempt: dict[str, Any], status: Status, at: str | None, **extra: Any) -> bool:
    """Move an attempt forward; refuse to move it back or out of a final state."""
    current = attempt.get("status", Status.PENDING)
    rank = _RANKS.get(current)
    if rank is None:
        rank = Status(current).rank  # not a status faxops writes: refused with Status' own error
    if current in _FINAL_TEXTS or _RANKS[status] < rank:
        return False
    attempt["status"] = str(status)
    if at:
        attempt["updated_at"] = at
    for key, value in extra.items():
        if value is not None:
            attempt[key] = value
    return True


#: what a status update carries, by the attempt's key and the update's
_UPDATE_FIELDS = (
    ("raw_status", "raw"),
    ("reason", "reason"),
    ("retryable", "retryable"),
    ("pages", "pages"),
    ("failure", "failure"),
    ("duration", "duration"),
    ("cost", "cost"),
)


def _apply_update(attempt: dict[str, Any], update: dict[str, Any], at: str | None) -> None:
    provider_id = update.get("provider_id")
    if provider_id and provider_id not in (attempt.get("job_id"), attempt.get("recipient_id")):
        # Recorded even when the status itself is stale: a job ID is never dropped.
        attempt["fax_id"] = provider_id
    # ``_set_status`` spelt out: every send's answer comes through here, a million times in a fold.
    status = update["status"]
    rank = _RANKS.get(status)
    if rank is None:
        rank = Status(status).rank  # not a status faxops knows: refused with Status' own error
    current = attempt.get("status", Status.PENDING)
    current_rank = _RANKS.get(current)
    if current_rank is None:
        current_rank = Status(current).rank
    if current in _FINAL_TEXTS or rank < current_rank:
        return
    attempt["status"] = str(status)
    when = update.get("at") or at
    if when:
        attempt["updated_at"] = when
    for key, field in _UPDATE_FIELDS:
        value = update.get(field)
        if value is not None:
            attempt[key] = value


def apply_event(number: str, record: Record | None, event: Event) -> Record:
    """The record of ``number`` after ``event``."""
    kind = event["t"]
    if kind not in EVENT_TYPES:
        # Never skipped: an event this version cannot read may be the one that says a fax was sent.
        raise StateError(
            f"unknown journal event type {kind!r} for {number}; it may have been written by a newer faxops",
            hint="use the faxops version that wrote it; the journal holds job IDs, keep it",
        )
    at = event.get("at")
    ref = event.get("ref")
    if record is None:  # a first send: most of a fold's events
        if kind == "intent":  # what the general path below makes of it, without its calls
            return {"attempts": [_new_attempt(1, event)], "status": str(Status.PENDING)}
        record = {"attempts": []}
        attempt = None
    else:
        attempt = _attempt(record, ref) if ref else None
    if kind == "expire":
        # The campaign's expiry passed before this recipient was (successfully) sent: never send it late.
        if derive_status(record) in (Status.FAILED, Status.NOT_SENT):
            record["expired_at"] = at
    elif kind == "intent":
        _on_intent(record, attempt, event)
    elif attempt is not None:  # else an answer to an intent this lockfile never saw: nothing to attach it to
        _ANSWERS[kind](number, attempt, event, at)
    record["status"] = derive_status(record)
    return record


def _on_intent(record: Record, attempt: dict[str, Any] | None, event: Event) -> None:
    record.pop("expired_at", None)
    attempts = record["attempts"]
    # Replaying the same intent is a no-op; a resend after "proven not sent" reuses the reference
    # (it is derived from the attempt number) and is a new attempt.
    if attempts and attempts[-1] is attempt and attempt is not None and attempt.get("status") == Status.PENDING:
        return
    attempts.append(_new_attempt(counted_attempts(record) + 1 if attempts else 1, event))


def _new_attempt(n: int, event: Event) -> dict[str, Any]:
    attempt = {
        "n": n,
        "provider": event["provider"],
        "reference": event.get("ref"),
        "submitted_at": event.get("at"),
        "status": str(Status.PENDING),
    }
    for key in ("reason", "forced", "send_at"):
        if event.get(key):
            attempt[key] = event[key]
    return attempt


def _on_receipt(number: str, attempt: dict[str, Any], event: Event, at: str | None) -> None:
    """``accepted`` (the provider's answer) or ``found`` (reconcile found the job there)."""
    if event.get("job_id"):
        attempt["job_id"] = event["job_id"]
    rid = (event.get("ids") or {}).get(number)
    if rid:
        attempt["recipient_id"] = rid
    found = event["t"] == "found"
    if found:
        attempt.pop("reason", None)  # the "outcome unknown" reason no longer holds
    if attempt.get("status") == Status.PENDING:  # the answer to a send: moves forward, nothing to compare
        attempt["status"] = str(Status.QUEUED)
        if at:
            attempt["updated_at"] = at
    else:
        _set_status(attempt, Status.QUEUED, at)
    for update in event.get("updates", ()):
        if update["number"] == number:
            _apply_update(attempt, update, at)
    if found:
        attempt["reconciled"] = event.get("evidence") or "found at the provider"


def _on_rejected(number: str, attempt: dict[str, Any], event: Event, at: str | None) -> None:
    reason = ": ".join(p for p in (event.get("code"), event.get("message")) if p)
    # Events of older versions carry no failure class: classify them as they would have been.
    failure = event.get("failure") or str(classify(event.get("code"), event.get("message"), event.get("retryable")))
    _set_status(attempt, Status.FAILED, at, reason=reason, retryable=bool(event.get("retryable")), failure=failure)
    attempt["outcome"] = "rejected"


def _on_not_sent(number: str, attempt: dict[str, Any], event: Event, at: str | None) -> None:
    # Only a pending attempt: a late "not sent" must never undo an answer already recorded.
    if Status(attempt["status"]) == Status.PENDING:
        attempt["status"] = str(Status.NOT_SENT)
        attempt["reason"] = event.get("reason")
        attempt["updated_at"] = at


def _on_unknown(number: str, attempt: dict[str, Any], event: Event, at: str | None) -> None:
    # It stays pending (so reconcile looks it up); only the reason is kept for the person reading it.
    if Status(attempt["status"]) == Status.PENDING:
        attempt["reason"] = event.get("reason")


def _on_status(number: str, attempt: dict[str, Any], event: Event, at: str | None) -> None:
    _apply_update(attempt, event, at)


def _on_resolve(number: str, attempt: dict[str, Any], event: Event, at: str | None) -> None:
    attempt["resolved"] = {k: event[k] for k in ("by", "note", "at") if event.get(k)}
    if event.get("sent"):
        if event.get("job_id"):
            attempt["job_id"] = event["job_id"]
        _set_status(attempt, Status.QUEUED, at)
    elif Status(attempt["status"]) == Status.PENDING:
        attempt["status"] = str(Status.NOT_SENT)
        attempt["reason"] = "resolved as not sent"


#: what each answer to an intent does to its attempt (``intent`` and ``expire`` act on the whole record)
_ANSWERS: dict[str, Callable[[str, dict[str, Any], Event, str | None], None]] = {
    "accepted": _on_receipt,
    "found": _on_receipt,
    "rejected": _on_rejected,
    "not_sent": _on_not_sent,
    "unknown": _on_unknown,
    "status": _on_status,
    "resolve": _on_resolve,
}


def derive_status(record: Record) -> str:
    """A recipient's status is its latest attempt's, ignoring attempts that certainly never left."""
    status = str(Status.NOT_SENT)
    attempts = record.get("attempts", ())
    if attempts and attempts[-1].get("status") != Status.NOT_SENT:
        status = str(attempts[-1]["status"])  # the common case, without the loop
    else:
        for attempt in reversed(attempts):
            if attempt.get("status") != Status.NOT_SENT:
                status = str(attempt["status"])
                break
    if status in _EXPIRABLE and record.get("expired_at"):
        return str(Status.EXPIRED)
    return status


_EXPIRABLE = frozenset({str(Status.FAILED), str(Status.NOT_SENT)})


@dataclass(slots=True)  # not frozen (4x cheaper to build); shared instances must never be mutated
class Summary:
    """What the planner needs to know about a recorded recipient (a million of these must be cheap)."""

    status: Status
    attempts: int
    retryable: bool | None = None
    reason: str | None = None
    reference: str | None = None  # of the latest attempt
    job_id: str | None = None
    provider: str | None = None
    updated_at: str | None = None
    failure: FailureClass | None = None
    send_at: str | None = None  # provider-side scheduled start of the latest attempt


def summarise(record: Record) -> Summary:
    attempts = record.get("attempts") or []
    last = next((a for a in reversed(attempts) if a.get("status") != Status.NOT_SENT), None)
    if last is None:
        return Summary(Status(record.get("status") or Status.NOT_SENT), 0)
    return Summary(
        status=Status(record.get("status") or last["status"]),
        attempts=counted_attempts(record),
        retryable=last.get("retryable"),
        reason=last.get("reason"),
        reference=last.get("reference"),
        job_id=last.get("job_id"),
        provider=last.get("provider"),
        updated_at=last.get("updated_at") or last.get("submitted_at"),
        failure=_failure(last),
        send_at=last.get("send_at"),
    )


def _failure(attempt: dict[str, Any]) -> FailureClass | None:
    if attempt.get("status") != Status.FAILED:
        return None
    if attempt.get("failure"):
        try:
            return FailureClass(attempt["failure"])
        except ValueError:
            return FailureClass.UNKNOWN
    return classify(attempt.get("raw_status"), attempt.get("reason"), attempt.get("retryable"))


_SETTLED = {status: f',"status":"{status}"}}'.encode() for status in (Status.DELIVERED, Status.QUEUED, Status.SENDING)}
_SHARED: dict[tuple[Status, int], Summary] = {}


def settled_status(raw: bytes) -> str | None:
    """``delivered``, ``queued`` or ``sending`` read off a record's JSON bytes, or None when it must be parsed
    (keys are sorted, so ``status`` is the last one; see ``summarise_raw``)."""
    for status, suffix in _SETTLED.items():
        if raw.endswith(suffix):
            return str(status)
    return None


def summarise_raw(raw: bytes) -> Summary | None:
    """The summary of a settled record straight from its JSON bytes, or None when it must be parsed.

    A warm plan of a million recipients is mostly delivered records; parsing each to learn only that is
    most of the plan's time. ``status`` is the last top-level key (keys are sorted), and ``"n":`` can
    only occur as an attempt's key (a quote inside a JSON string is escaped), so counting it is exact.
    Equal summaries are shared, which also keeps a million of them small.
    """
    for status, suffix in _SETTLED.items():
        if raw.endswith(suffix):
            return shared_summary(status, attempts_of_raw(raw))
    return None


def attempts_of_raw(raw: bytes) -> int:
    """The attempt count of a record from its JSON bytes, as ``summarise_raw`` takes it (the PostgreSQL
    backend stores it beside each record, so that a plan reads it without the record)."""
    return raw.count(b'"n":') - raw.count(b'"status":"not_sent"')


def shared_summary(status: Status, attempts: int) -> Summary:
    """The one summary of a settled record with this status and attempt count (never mutate it)."""
    key = (status, attempts)
    summary = _SHARED.get(key)
    if summary is None:
        summary = _SHARED.setdefault(key, Summary(status, attempts))
    return summary
