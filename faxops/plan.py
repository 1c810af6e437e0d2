"""The planner: desired recipients + recorded state -> one action per recipient. Pure: no I/O.

``make_plan`` consumes a stream (it never needs the whole list as rows), keeps what the plan itself
must hold, and is deterministic for the same inputs, which is what lets ``apply PLANFILE`` check that
it is executing exactly the plan that was reviewed.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import compress, repeat
from operator import attrgetter, not_
from typing import Any

import phonenumbers

from faxops import clock
from faxops.bulk import bulk
from faxops.chunks import Chunk
from faxops.clock import iso, parse_iso
from faxops.domain import FailureClass, Invalid, Recipient, Status, classify
from faxops.plan_groups import RowSources, Run, UnchangedGroup
from faxops.schedule import Estimate, RetryPolicy, Schedule, estimate
from faxops.state.records import Summary

PLAN_FORMAT_VERSION = 1
_DUPLICATE_SAMPLES = 1000


class Action(enum.StrEnum):
    SEND = "send"
    RETRY = "retry"
    UNKNOWN = "unknown"
    DEFER = "deferred"
    UNCHANGED = "unchanged"
    SKIP = "skip"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]


_SYMBOLS = {
    Action.SEND: "+",
    Action.RETRY: "~",
    Action.UNKNOWN: "?",
    Action.DEFER: "…",
    Action.UNCHANGED: "=",
    Action.SKIP: "!",
}


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
    due: datetime | None = None  # when a deferred recipient becomes due
    zone: str | None = None  # the recipient's time zone(s), where windows apply
    forced: str | None = None  # ``apply --resend`` reason
    name: str | None = None  # the recipient's name, kept only for reports (``make_plan(names=True)``)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": str(self.action), "number": self.number}
        if self.recipient is not None and self.recipient.name:
            out["name"] = self.recipient.name
        for key in ("attempt", "status", "reason", "source", "reference", "zone", "forced"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.due is not None:
            out["due"] = iso(self.due)
        return out


def _unchanged(number: str, source: str, status: str, name: str | None) -> PlannedAction:
    """The action of a settled recipient, as ``UnchangedGroup`` builds it when it is read."""
    return PlannedAction(Action.UNCHANGED, number, None, None, None, source, status, name=name)


Group = list[PlannedAction] | UnchangedGroup[PlannedAction]


def _groups() -> dict[Action, Group]:
    return {a: UnchangedGroup(_unchanged) if a == Action.UNCHANGED else [] for a in Action}


@dataclass(frozen=True, slots=True)
class Duplicate:
    number: str
    source: str
    first_source: str


@dataclass
class Plan:
    """The actions, grouped, with what the reader of a plan needs to judge it."""

    campaign: str
    # Unchanged actions are an ``UnchangedGroup``: built only when read (a warm plan only counts them).
    groups: dict[Action, Group] = field(default_factory=_groups)
    pages_per_fax: int | None = 0
    unknown_page_documents: int = 0
    duplicates: int = 0
    duplicate_samples: list[Duplicate] = field(default_factory=list)
    not_in_manifest: int = 0  # recorded numbers the manifest no longer lists (left alone)
    now: datetime | None = None
    expired: list[str] = field(default_factory=list)  # never-sent numbers past the campaign's expiry
    cost: float = 0.0  # estimated cost of this run's sends
    cost_all: float = 0.0  # ... and of every recipient still to send (deferred included)
    currency: str | None = None
    estimate: Estimate | None = None
    campaign_stop: str | None = None  # a failure that is not the recipient's (document, account)
    names: bool = False  # every action carries its recipient's name (a report's plan)

    def count(self, action: Action) -> int:
        return len(self.groups[action])

    @property
    def to_submit(self) -> list[PlannedAction]:
        return [*self.groups[Action.SEND], *self.groups[Action.RETRY]]

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
            "deferred": self.count(Action.DEFER),
            "pages": self.pages,
            "duplicates": self.duplicates,
        }

    def submit_key(self) -> list[tuple[str, str, int | None]]:
        """What ``apply`` of a saved plan must reproduce exactly."""
        return [(str(a.action), a.number, a.attempt) for a in self.to_submit]


@dataclass(frozen=True)
class Rules:
    """Everything besides the recipients and the state that decides a plan."""

    now: datetime = field(default_factory=clock.now)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    schedule: Schedule = field(default_factory=Schedule)
    resend: Mapping[str, str] = field(default_factory=dict)  # number -> why (``apply --resend``)
    per_page: Mapping[str, float] = field(default_factory=dict)  # region (or '*') -> price
    currency: str | None = None
    per_minute: float | None = None  # the pace, for the duration estimate
    provider_side: bool = False  # hand deferred recipients over now, with their start time


@bulk
def make_plan(
    campaign: str,
    candidates: Iterable[Recipient | Invalid | Chunk],
    state: Mapping[str, Summary],
    *,
    suppressed: Mapping[str, str] | None = None,
    rules: Rules | None = None,
    pages_per_fax: int | None = 0,
    unknown_page_documents: int = 0,
    names: bool = False,
) -> Plan:
    """Decide one action per recipient. ``candidates`` may be a generator; it is read once.

    With ``names``, every action keeps its recipient's name (a report needs them; a plan does not, and
    a million names are a million strings).

    A ``Chunk`` (rows of a file, resolved) is decided column by column: a row recorded as settled
    becomes its ``unchanged`` action without a ``Recipient`` ever being built for it."""
    suppressed = suppressed or {}
    rules = rules or Rules()
    now = rules.now
    schedule = rules.schedule
    plan = Plan(campaign, pages_per_fax=pages_per_fax, unknown_page_documents=unknown_page_documents, now=now)
    plan.currency = rules.currency
    plan.names = names
    groups = plan.groups
    unchanged: UnchangedGroup[PlannedAction] = UnchangedGroup(_unchanged)
    groups[Action.UNCHANGED] = unchanged
    # number -> where it was first read: a source, or a row of a columnar chunk (see ``RowSources``)
    first_source: dict[str, str | int] = {}
    sources = RowSources()
    get_summary = state.get
    due_counts: Counter[tuple[tuple[str, ...], datetime]] = Counter()
    prices = _Prices(rules.per_page, pages_per_fax or 0)
    expired = schedule.expired(now)
    # A settled recipient that is neither suppressed nor forced is unchanged: the common case of a large
    # warm plan, kept to a few dictionary look-ups (``_decide`` would say the same, slower).
    exempt = suppressed.keys() | rules.resend.keys()

    def duplicate(number: str, source: str) -> bool:
        if number in first_source:
            plan.duplicates += 1
            if len(plan.duplicate_samples) < _DUPLICATE_SAMPLES:
                plan.duplicate_samples.append(Duplicate(number, source, sources.of(first_source[number])))
            return True
        first_source[number] = source
        return False

    def place(candidate: Recipient | Invalid, summary: Summary | None) -> None:
        if isinstance(candidate, Invalid):
            groups[Action.SKIP].append(
                PlannedAction(
                    Action.SKIP, candidate.raw, reason=f"invalid number: {candidate.reason}", source=candidate.source
                )
            )
            return
        number = candidate.number
        planned, earliest = _decide(candidate, summary, suppressed.get(number), rules)
        if planned.action in (Action.SEND, Action.RETRY):
            if summary is not None and summary.failure in _CAMPAIGN_STOPS and plan.campaign_stop is None:
                plan.campaign_stop = f"{summary.failure}: {summary.reason or 'refused'} ({number})"
            if expired:
                assert schedule.expire_at is not None
                planned = PlannedAction(
                    Action.SKIP,
                    number,
                    source=planned.source,
                    status=str(Status.EXPIRED),
                    reason=f"campaign expired at {iso(schedule.expire_at)}: never sent late",
                )
                if summary is None or summary.status != Status.EXPIRED:
                    plan.expired.append(number)  # recorded once, not on every later run
            else:
                zones = schedule.zones(number)
                due = schedule.due(zones, max(now, earliest or now))
                if due is None:
                    planned = PlannedAction(
                        Action.SKIP,
                        number,
                        source=planned.source,
                        status=planned.status,
                        reason="no send window opens before the campaign expires",
                    )
                else:
                    due_counts[(zones, due)] += 1
                    plan.cost_all += prices.of(number)
                    if schedule.restricts_time:
                        planned.zone = ", ".join(zones)
                    if due > now and not rules.provider_side:
                        planned.action = Action.DEFER
                        planned.due = due
                    else:
                        planned.due = due if due > now else None  # a provider-side start time
                        plan.cost += prices.of(number)
        if names:
            planned.name = candidate.name
        groups[planned.action].append(planned)

    def columnar(chunk: Chunk) -> bool:
        """Decide a chunk column by column: its unchanged rows become a ``Run`` (no per-row Python), the
        others are placed one by one. False, with nothing decided, when the chunk needs the row-by-row
        path: a number repeated (within the chunk or from earlier rows) or one suppressed or forced."""
        numbers, lines, label = chunk.numbers, chunk.lines, chunk.label
        distinct = set(numbers)
        distinct.discard("")  # rows whose number is invalid: skipped, never a duplicate
        invalid = numbers.count("")
        if len(distinct) != len(numbers) - invalid or not distinct.isdisjoint(first_source):
            return False
        if exempt and not distinct.isdisjoint(exempt):
            return False
        # C-level passes: each row's summary (or _ABSENT), its status text, the settled status it shows.
        summaries = list(map(get_summary, numbers, repeat(_ABSENT)))
        statuses = list(map(_SETTLED_TEXT.get, map(_STATUS_TEXT, summaries)))
        base = sources.add(label, lines)
        first_source.update(zip(numbers, range(base, base + len(numbers)), strict=True))
        if invalid:
            del first_source[""]
        todo = list(compress(range(len(numbers)), map(not_, statuses)))  # rows that are not unchanged
        kept = range(len(numbers)) if not todo else list(compress(range(len(numbers)), statuses))
        row_names = chunk.names() if names else None
        unchanged.add_run(Run(label, lines, numbers, statuses, row_names, kept))
        for i in todo:
            number = numbers[i]
            if not number:
                place(chunk.invalid(i), None)
                continue
            summary = summaries[i]
            place(chunk.recipient(i, label + str(lines[i])), None if summary is _ABSENT else summary)
        return True

    for candidate in candidates:
        if isinstance(candidate, Chunk):
            if columnar(candidate):
                continue
            numbers, lines, label = candidate.numbers, candidate.lines, candidate.label
            for i, number in enumerate(numbers):
                if not number:
                    place(candidate.invalid(i), None)
                    continue
                source = label + str(lines[i])
                if duplicate(number, source):
                    continue
                summary = get_summary(number)
                if summary is not None and summary.status in _SETTLED and number not in exempt:
                    kept = PlannedAction(Action.UNCHANGED, number, None, None, None, source, _SETTLED[summary.status])
                    if names:
                        kept.name = candidate.name(i)
                    unchanged.append(kept)
                else:
                    place(candidate.recipient(i, source), summary)
            continue
        if isinstance(candidate, Invalid):
            place(candidate, None)
            continue
        number = candidate.number
        if duplicate(number, candidate.source):
            continue
        summary = get_summary(number)
        if summary is not None and summary.status in _SETTLED and number not in exempt:
            kept = PlannedAction(Action.UNCHANGED, number, None, None, None, candidate.source, _SETTLED[summary.status])
            kept.name = candidate.name if names else None
            unchanged.append(kept)
        else:
            place(candidate, summary)
    # Counted by a C-level map over the state (a generator here was a tenth of a warm plan).
    plan.not_in_manifest = len(state) - sum(map(first_source.__contains__, state))
    if due_counts and (rules.per_minute or schedule.restricts_time or schedule.start_at):
        plan.estimate = estimate(schedule, due_counts, now, rules.per_minute)
    return plan


_SETTLED = {Status.QUEUED: "queued", Status.SENDING: "sending", Status.DELIVERED: "delivered"}
# The same by the status's text: a ``Status`` member hashes in Python, its ``_value_`` (a str) in C.
_SETTLED_TEXT: dict[str, str] = {str(status): text for status, text in _SETTLED.items()}
_STATUS_TEXT = attrgetter("status._value_")
_ABSENT = Summary(Status.NOT_SENT, 0)  # "no record" in a column of summaries (None has no status)


_CAMPAIGN_STOPS = frozenset({FailureClass.DOCUMENT, FailureClass.ACCOUNT})
_EPOCH = datetime.min.replace(tzinfo=UTC)


class _Prices:
    """Price of one fax to a number: pages times the per-page price of its region."""

    def __init__(self, per_page: Mapping[str, float], pages: int) -> None:
        self.per_page = {k.upper(): v for k, v in per_page.items()}
        self.pages = pages
        self._by_cc: dict[str, float] = {}

    def of(self, number: str) -> float:
        if not self.per_page:
            return 0.0
        for length in (1, 2, 3):
            cc = number[1 : 1 + length]
            if cc in self._by_cc:
                return self._by_cc[cc]
            regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(cc)) if cc.isdigit() else None
            if regions:
                price = next((self.per_page[r] for r in regions if r in self.per_page), self.per_page.get("*", 0.0))
                self._by_cc[cc] = price * self.pages
                return self._by_cc[cc]
        return self.per_page.get("*", 0.0) * self.pages


def _decide(
    recipient: Recipient, summary: Summary | None, suppressed: str | None, rules: Rules
) -> tuple[PlannedAction, datetime | None]:
    """The action before the schedule is applied, and the earliest time a send or retry may happen."""
    number, source = recipient.number, recipient.source
    forced = rules.resend.get(number)
    if suppressed is not None:
        # Suppression wins over everything, even a retry that is due or a forced resend.
        return PlannedAction(
            Action.SKIP,
            number,
            reason=f"suppressed: {suppressed}",
            source=source,
            status=str(summary.status) if summary else None,
        ), None
    if summary is None or summary.attempts == 0:
        return PlannedAction(Action.SEND, number, recipient, attempt=1, source=source, forced=forced), None
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
        ), None
    last_at = parse_iso(summary.updated_at)
    if forced is not None:
        gap = (last_at + rules.policy.min_gap) if last_at else None
        return _retry(recipient, summary, f"resend requested: {forced}", forced), gap
    if status in (Status.QUEUED, Status.SENDING, Status.DELIVERED):
        return PlannedAction(Action.UNCHANGED, number, status=str(status), source=source), None
    if status in (Status.FAILED, Status.EXPIRED):
        failure = summary.failure or classify(None, summary.reason, summary.retryable)
        due, why = rules.policy.next_attempt(failure, summary.attempts, last_at)
        if due is None:
            return PlannedAction(
                Action.SKIP,
                number,
                status=str(status),
                source=source,
                reason=f"{status} ({failure}: {summary.reason or 'no reason given'}), {why}",
            ), None
        return _retry(recipient, summary, f"{failure}: {summary.reason or status}"), (due if due > _EPOCH else None)
    return PlannedAction(Action.SKIP, number, status=str(status), source=source, reason=str(status)), None


def _retry(recipient: Recipient, summary: Summary, reason: str, forced: str | None = None) -> PlannedAction:
    return PlannedAction(
        Action.RETRY,
        recipient.number,
        recipient,
        attempt=summary.attempts + 1,
        status=str(summary.status),
        reason=reason,
        source=recipient.source,
        forced=forced,
    )


@dataclass(frozen=True)
class Guards:
    """Budget guards: a run that would exceed one is refused before anything is sent."""

    max_sends: int | None = None
    max_pages: int | None = None
    max_cost: float | None = None


def guard_problems(plan: Plan, guards: Guards, *, include_deferred: bool = False) -> list[str]:
    sends = len(plan.to_submit) + (plan.count(Action.DEFER) if include_deferred else 0)
    pages = (plan.pages_per_fax or 0) * sends
    cost = plan.cost_all if include_deferred else plan.cost
    problems = []
    if guards.max_sends is not None and sends > guards.max_sends:
        problems.append(f"{sends} fax(es) to send, over the limit of {guards.max_sends} (max_sends)")
    if guards.max_pages is not None and pages > guards.max_pages:
        problems.append(f"{pages} page(s) to send, over the limit of {guards.max_pages} (max_pages)")
    if guards.max_cost is not None and cost > guards.max_cost:
        problems.append(
            f"an estimated {cost:,.2f} {plan.currency or ''} to spend, over the limit of {guards.max_cost:,.2f} "
            "(max_cost)".replace("  ", " ")
        )
    return problems


def plan_json(plan: Plan, *, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``--json`` / saved-plan document."""
    doc: dict[str, Any] = {
        "format_version": PLAN_FORMAT_VERSION,
        "campaign": plan.campaign,
        "summary": plan.summary(),
    }
    if plan.now is not None:
        doc["at"] = iso(plan.now)
    if plan.currency and (plan.cost or plan.cost_all):
        doc["cost"] = {"currency": plan.currency, "this_run": round(plan.cost, 2), "all": round(plan.cost_all, 2)}
    if plan.estimate is not None:
        doc["estimate"] = {
            "finish": iso(plan.estimate.finish) if plan.estimate.finish else None,
            "per_minute": plan.estimate.per_minute,
            "unreachable": plan.estimate.unreachable,
        }
    if plan.campaign_stop:
        doc["campaign_stop"] = plan.campaign_stop
    if extra:
        doc.update(extra)
    doc["actions"] = [a.to_json() for action in Action for a in plan.groups[action]]
    return doc


def price_per_page(per_page: Mapping[str, float]) -> Callable[[str], float]:
    """The ``budget.per_page`` price of one page to a number (by its region), as plans estimate it."""
    return _Prices(per_page, 1).of
