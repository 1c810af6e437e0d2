"""The planner: desired recipients + recorded state -> one action per recipient. Pure: no I/O.

``make_plan`` consumes a stream (it never needs the whole list as rows), keeps what the plan itself
must hold, and is deterministic for the same inputs, which is what lets ``apply PLANFILE`` check that
it is executing exactly the plan that was reviewed. The plan's types live in ``faxops.plan_model``
and are re-exported here, where every caller imports them from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from itertools import compress, repeat
from operator import attrgetter, is_not, not_

import phonenumbers

from faxops.bulk import bulk
from faxops.chunks import Chunk
from faxops.clock import iso, parse_iso
from faxops.domain import FailureClass, Invalid, Recipient, Status, classify
from faxops.plan_groups import RowSources, Run, UnchangedGroup
from faxops.plan_model import (
    PLAN_FORMAT_VERSION,
    Action,
    Duplicate,
    Group,
    Guards,
    Plan,
    PlannedAction,
    Rules,
    _unchanged,
    guard_problems,
    plan_json,
)
from faxops.schedule import estimate
from faxops.state.records import Summary

__all__ = [
    "PLAN_FORMAT_VERSION",
    "Action",
    "Duplicate",
    "Group",
    "Guards",
    "Plan",
    "PlannedAction",
    "Rules",
    "guard_problems",
    "make_plan",
    "plan_json",
    "price_per_page",
]

_DUPLICATE_SAMPLES = 1000


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
    rules = rules or Rules()
    plan = Plan(campaign, pages_per_fax=pages_per_fax, unknown_page_documents=unknown_page_documents, now=rules.now)
    plan.currency = rules.currency
    plan.names = names
    planner = _Planner(plan, state, suppressed or {}, rules)
    for candidate in candidates:
        if isinstance(candidate, Chunk):
            if not planner.columnar(candidate):
                planner.rows(candidate)
        elif isinstance(candidate, Invalid):
            planner.place(candidate, None)
        else:
            planner.one(candidate)
    planner.finish()
    return plan


class _Planner:
    """One run of ``make_plan``: what it keeps while it reads the candidates once, and its phases.

    The phases are methods rather than closures only to keep each one readable; they run once per row,
    so the hot ones copy what they use into locals."""

    def __init__(self, plan: Plan, state: Mapping[str, Summary], suppressed: Mapping[str, str], rules: Rules) -> None:
        self.plan = plan
        self.state = state
        self.suppressed = suppressed
        self.rules = rules
        self.names = plan.names
        self.now = rules.now
        self.schedule = rules.schedule
        self.groups = plan.groups
        self.unchanged: UnchangedGroup[PlannedAction] = UnchangedGroup(_unchanged)
        self.groups[Action.UNCHANGED] = self.unchanged
        # Every valid number read so far; where it was first read is in ``first_source`` for a row decided one by one,
        # else in ``sources`` (a columnar chunk's row, looked up only for a duplicate).
        self.seen: set[str] = set()
        self.first_source: dict[str, str] = {}
        self.sources = RowSources()
        self.in_state = 0  # numbers in ``seen`` that the state holds (for ``not_in_manifest``)
        self.get_summary = state.get
        self.due_counts: Counter[tuple[tuple[str, ...], datetime]] = Counter()
        self.prices = _Prices(rules.per_page, plan.pages_per_fax or 0)
        self.expired = self.schedule.expired(self.now)
        # A settled recipient that is neither suppressed nor forced is unchanged: the common case of a large
        # warm plan, kept to a few dictionary look-ups (``_decide`` would say the same, slower).
        self.exempt = suppressed.keys() | rules.resend.keys()

    def duplicate(self, number: str, source: str) -> bool:
        """Count a number read before (keeping a sample of where); otherwise remember where it was read."""
        if number in self.seen:
            plan = self.plan
            plan.duplicates += 1
            if len(plan.duplicate_samples) < _DUPLICATE_SAMPLES:
                first = self.first_source.get(number) or self.sources.find(number)
                assert first is not None  # every number seen was read one by one or in a registered chunk
                plan.duplicate_samples.append(Duplicate(number, source, first))
            return True
        self.seen.add(number)
        self.first_source[number] = source
        return False

    def place(self, candidate: Recipient | Invalid, summary: Summary | None) -> None:
        """Decide one recipient that is not simply unchanged, then apply the schedule to a send or retry."""
        if isinstance(candidate, Invalid):
            self.groups[Action.SKIP].append(
                PlannedAction(
                    Action.SKIP, candidate.raw, reason=f"invalid number: {candidate.reason}", source=candidate.source
                )
            )
            return
        number = candidate.number
        planned, earliest = _decide(candidate, summary, self.suppressed.get(number), self.rules)
        if planned.action in (Action.SEND, Action.RETRY):
            plan = self.plan
            if summary is not None and summary.failure in _CAMPAIGN_STOPS and plan.campaign_stop is None:
                plan.campaign_stop = f"{summary.failure}: {summary.reason or 'refused'} ({number})"
            planned = self._expire(planned, summary) if self.expired else self._schedule(planned, earliest)
        if self.names:
            planned.name = candidate.name
        self.groups[planned.action].append(planned)

    def _expire(self, planned: PlannedAction, summary: Summary | None) -> PlannedAction:
        """A send or retry after the campaign's expiry: skipped, never sent late."""
        expire_at = self.schedule.expire_at
        assert expire_at is not None
        number = planned.number
        skipped = PlannedAction(
            Action.SKIP,
            number,
            source=planned.source,
            status=str(Status.EXPIRED),
            reason=f"campaign expired at {iso(expire_at)}: never sent late",
        )
        if summary is None or summary.status != Status.EXPIRED:
            self.plan.expired.append(number)  # recorded once, not on every later run
        return skipped

    def _schedule(self, planned: PlannedAction, earliest: datetime | None) -> PlannedAction:
        """When a send or retry is due (its send window, its retry gap): now, deferred, or never."""
        now, schedule, number, plan = self.now, self.schedule, planned.number, self.plan
        zones = schedule.zones(number)
        due = schedule.due(zones, max(now, earliest or now))
        if due is None:
            return PlannedAction(
                Action.SKIP,
                number,
                source=planned.source,
                status=planned.status,
                reason="no send window opens before the campaign expires",
            )
        self.due_counts[(zones, due)] += 1
        plan.cost_all += self.prices.of(number)
        if schedule.restricts_time:
            planned.zone = ", ".join(zones)
        if due > now and not self.rules.provider_side:
            planned.action = Action.DEFER
            planned.due = due
        else:
            planned.due = due if due > now else None  # a provider-side start time
            plan.cost += self.prices.of(number)
        return planned

    def columnar(self, chunk: Chunk) -> bool:
        """Decide a chunk column by column: its unchanged rows become a ``Run`` (no per-row Python), the
        others are placed one by one. False, with nothing decided, when the chunk needs the row-by-row
        path: a number repeated (within the chunk or from earlier rows) or one suppressed or forced."""
        numbers, lines, label = chunk.numbers, chunk.lines, chunk.label
        seen, exempt = self.seen, self.exempt
        distinct = set(numbers)
        distinct.discard("")  # rows whose number is invalid: skipped, never a duplicate
        invalid = numbers.count("")
        if len(distinct) != len(numbers) - invalid or not distinct.isdisjoint(seen):
            return False
        if exempt and not distinct.isdisjoint(exempt):
            return False
        # C-level passes: each row's summary (or _ABSENT), its status text, the settled status it shows.
        summaries = list(map(self.get_summary, numbers, repeat(_ABSENT)))
        statuses = list(map(_SETTLED_TEXT.get, map(_STATUS_TEXT, summaries)))
        # A set of the numbers (their hashes already known) and a count, instead of a map from each number to its
        # row: where a number was read is looked up only if it turns up again.
        seen |= distinct
        self.sources.add(label, lines, numbers)
        self.in_state += sum(map(is_not, summaries, repeat(_ABSENT)))
        todo = list(compress(range(len(numbers)), map(not_, statuses)))  # rows that are not unchanged
        kept = range(len(numbers)) if not todo else list(compress(range(len(numbers)), statuses))
        row_names = chunk.names() if self.names else None
        self.unchanged.add_run(Run(label, lines, numbers, statuses, row_names, kept))
        place = self.place
        for i in todo:
            number = numbers[i]
            if not number:
                place(chunk.invalid(i), None)
                continue
            summary = summaries[i]
            place(chunk.recipient(i, label + str(lines[i])), None if summary is _ABSENT else summary)
        return True

    def rows(self, chunk: Chunk) -> None:
        """Decide a chunk row by row (it repeats a number, or holds one suppressed or forced)."""
        numbers, lines, label = chunk.numbers, chunk.lines, chunk.label
        get_summary, exempt, place = self.get_summary, self.exempt, self.place
        for i, number in enumerate(numbers):
            if not number:
                place(chunk.invalid(i), None)
                continue
            source = label + str(lines[i])
            if self.duplicate(number, source):
                continue
            summary = get_summary(number)
            self.in_state += summary is not None
            if summary is not None and summary.status in _SETTLED and number not in exempt:
                kept = PlannedAction(Action.UNCHANGED, number, None, None, None, source, _SETTLED[summary.status])
                if self.names:
                    kept.name = chunk.name(i)
                self.unchanged.append(kept)
            else:
                place(chunk.recipient(i, source), summary)

    def one(self, candidate: Recipient) -> None:
        """Decide one recipient given as such (not as a row of a chunk)."""
        number = candidate.number
        if self.duplicate(number, candidate.source):
            return
        summary = self.get_summary(number)
        self.in_state += summary is not None
        if summary is not None and summary.status in _SETTLED and number not in self.exempt:
            kept = PlannedAction(Action.UNCHANGED, number, None, None, None, candidate.source, _SETTLED[summary.status])
            kept.name = candidate.name if self.names else None
            self.unchanged.append(kept)
        else:
            self.place(candidate, summary)

    def finish(self) -> None:
        """What is known only once every candidate is read: the numbers left out, the duration estimate."""
        plan, state, rules, schedule = self.plan, self.state, self.rules, self.schedule
        # Counted as the numbers were read: a pass over a million numbers of the state here was a tenth of a warm plan.
        plan.not_in_manifest = len(state) - self.in_state
        if self.due_counts and (rules.per_minute or schedule.restricts_time or schedule.start_at):
            plan.estimate = estimate(schedule, self.due_counts, self.now, rules.per_minute)


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


def price_per_page(per_page: Mapping[str, float]) -> Callable[[str], float]:
    """The ``budget.per_page`` price of one page to a number (by its region), as plans estimate it."""
    return _Prices(per_page, 1).of
