"""The planner: desired recipients + recorded state -> one action per recipient. Pure: no I/O.

``make_plan`` consumes a stream (it never needs the whole list as rows), keeps what the plan itself
must hold, and is deterministic for the same inputs, which is what lets ``apply PLANFILE`` check that
it is executing exactly the plan that was reviewed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from faxops.domain import Invalid, Recipient, Status
from faxops.state.records import Summary

PLAN_FORMAT_VERSION = 1
_DUPLICATE_SAMPLES = 1000


class Action(enum.StrEnum):
    SEND = "send"
    RETRY = "retry"
    UNKNOWN = "unknown"
    UNCHANGED = "unchanged"
    SKIP = "skip"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]


_SYMBOLS = {Action.SEND: "+", Action.RETRY: "~", Action.UNKNOWN: "?", Action.UNCHANGED: "=", Action.SKIP: "!"}


@dataclass(slots=True)  # not frozen: one per recipient, and frozen dataclasses are 4x slower to build
class PlannedAction:
    """What will happen to one recipient, and why."""

    action: Action
    number: str  # E.164, or the text as written for an invalid number
    recipient: Recipient | None = None  # for send and retry
    attempt: int | None = None  # the attempt a send/retry will be
    reason: str | None = None
    source: str | None = None
    status: str | None = None  # the recorded status, where there is one
    reference: str | None = None  # of an attempt whose outcome is unknown

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": str(self.action), "number": self.number}
        if self.recipient is not None and self.recipient.name:
            out["name"] = self.recipient.name
        for key in ("attempt", "status", "reason", "source", "reference"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class Duplicate:
    number: str
    source: str
    first_source: str


@dataclass
class Plan:
    """The actions, grouped, with what the reader of a plan needs to judge it."""

    campaign: str
    groups: dict[Action, list[PlannedAction]] = field(default_factory=lambda: {a: [] for a in Action})
    pages_per_fax: int | None = 0
    unknown_page_documents: int = 0
    duplicates: int = 0
    duplicate_samples: list[Duplicate] = field(default_factory=list)
    not_in_manifest: int = 0  # recorded numbers the manifest no longer lists (left alone)

    def count(self, action: Action) -> int:
        return len(self.groups[action])

    @property
    def to_submit(self) -> list[PlannedAction]:
        return self.groups[Action.SEND] + self.groups[Action.RETRY]

    @property
    def has_changes(self) -> bool:
        return bool(self.groups[Action.SEND] or self.groups[Action.RETRY] or self.groups[Action.UNKNOWN])

    @property
    def pages(self) -> int:
        return (self.pages_per_fax or 0) * (self.count(Action.SEND) + self.count(Action.RETRY))

    def summary(self) -> dict[str, int]:
        return {
            "send": self.count(Action.SEND),
            "retry": self.count(Action.RETRY),
            "unknown": self.count(Action.UNKNOWN),
            "unchanged": self.count(Action.UNCHANGED),
            "skip": self.count(Action.SKIP),
            "pages": self.pages,
            "duplicates": self.duplicates,
        }

    def submit_key(self) -> list[tuple[str, str, int | None]]:
        """What ``apply`` of a saved plan must reproduce exactly."""
        return [(str(a.action), a.number, a.attempt) for a in self.to_submit]


def make_plan(
    campaign: str,
    candidates: Iterable[Recipient | Invalid],
    state: Mapping[str, Summary],
    *,
    suppressed: Mapping[str, str] | None = None,
    max_attempts: int = 3,
    pages_per_fax: int | None = 0,
    unknown_page_documents: int = 0,
) -> Plan:
    """Decide one action per recipient. ``candidates`` may be a generator; it is read once."""
    suppressed = suppressed or {}
    plan = Plan(campaign, pages_per_fax=pages_per_fax, unknown_page_documents=unknown_page_documents)
    groups = plan.groups
    unchanged = groups[Action.UNCHANGED]
    settled = {Status.QUEUED: "queued", Status.SENDING: "sending", Status.DELIVERED: "delivered"}
    first_source: dict[str, str] = {}
    get_summary = state.get
    for candidate in candidates:
        if isinstance(candidate, Invalid):
            groups[Action.SKIP].append(
                PlannedAction(
                    Action.SKIP, candidate.raw, reason=f"invalid number: {candidate.reason}", source=candidate.source
                )
            )
            continue
        number = candidate.number
        if number in first_source:
            plan.duplicates += 1
            if len(plan.duplicate_samples) < _DUPLICATE_SAMPLES:
                plan.duplicate_samples.append(Duplicate(number, candidate.source, first_source[number]))
            continue
        first_source[number] = candidate.source
        summary = get_summary(number)
        if summary is not None and summary.status in settled and number not in suppressed:
            # The common case of a large warm plan, kept to a few dictionary look-ups.
            unchanged.append(
                PlannedAction(Action.UNCHANGED, number, None, None, None, candidate.source, settled[summary.status])
            )
            continue
        planned = _decide(candidate, summary, suppressed.get(number), max_attempts)
        groups[planned.action].append(planned)
    plan.not_in_manifest = sum(1 for number in state if number not in first_source)
    return plan


def _decide(recipient: Recipient, summary: Summary | None, suppressed: str | None, max_attempts: int) -> PlannedAction:
    number, source = recipient.number, recipient.source
    if suppressed is not None:
        # Suppression wins over everything, even a retry that is due.
        return PlannedAction(
            Action.SKIP,
            number,
            reason=f"suppressed: {suppressed}",
            source=source,
            status=str(summary.status) if summary else None,
        )
    if summary is None or summary.attempts == 0:
        return PlannedAction(Action.SEND, number, recipient, attempt=1, source=source)
    status = summary.status
    if status == Status.PENDING:
        why = summary.reason or "no answer was recorded (the run was interrupted)"
        return PlannedAction(
            Action.UNKNOWN,
            number,
            recipient,
            attempt=summary.attempts,
            status=str(status),
            reason=f"outcome of attempt {summary.attempts} unknown: {why}",
            source=source,
            reference=summary.reference,
        )
    if status in (Status.QUEUED, Status.SENDING, Status.DELIVERED):
        return PlannedAction(Action.UNCHANGED, number, status=str(status), source=source)
    if status == Status.FAILED:
        if not summary.retryable:
            return PlannedAction(
                Action.SKIP,
                number,
                status=str(status),
                source=source,
                reason=f"failed, not retryable: {summary.reason or 'no reason given'}",
            )
        if summary.attempts >= max_attempts:
            return PlannedAction(
                Action.SKIP,
                number,
                status=str(status),
                source=source,
                reason=f"out of attempts ({summary.attempts} of {max_attempts}): {summary.reason}",
            )
        return PlannedAction(
            Action.RETRY,
            number,
            recipient,
            attempt=summary.attempts + 1,
            status=str(status),
            reason=summary.reason,
            source=source,
        )
    return PlannedAction(Action.SKIP, number, status=str(status), source=source, reason=str(status))


def plan_json(plan: Plan, *, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``--json`` / saved-plan document."""
    doc: dict[str, Any] = {
        "format_version": PLAN_FORMAT_VERSION,
        "campaign": plan.campaign,
        "summary": plan.summary(),
    }
    if extra:
        doc.update(extra)
    doc["actions"] = [a.to_json() for action in Action for a in plan.groups[action]]
    return doc
