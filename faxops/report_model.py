"""A run's report: every recipient of the plan with its record, counted (``faxops.reports`` renders and
delivers it, and re-exports these names)."""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from faxops import clock
from faxops.bulk import bulk
from faxops.campaign import Campaign
from faxops.chunks import Chunk
from faxops.clock import iso
from faxops.domain import Recipient, Status
from faxops.plan import Action, Plan, PlannedAction, price_per_page
from faxops.plan_groups import UnchangedGroup
from faxops.report_rows import ReportRow
from faxops.state.records import Record, counted_attempts

REPORT_FORMAT_VERSION = 1
_FINAL = {s.value for s in Status if s.final}
CSV_COLUMNS = (
    "number",
    "name",
    "status",
    "failure",
    "provider_status",
    "reason",
    "attempts",
    "job_ids",
    "pages",
    "first_submitted",
    "updated",
    "source",
)


@dataclass
class ReportContext:
    """The campaign around the numbers: who, what was sent, what it cost, what happens next."""

    description: str | None = None
    owner: str | None = None
    timezone: str | None = None  # the campaign's (schedule.timezone); times are shown in it
    documents: list[tuple[str, str, int | None]] = field(default_factory=list)  # name, format, pages
    pages_per_fax: int = 0
    currency: str | None = None
    cost_spent: float = 0.0  # estimated from budget.per_page for the pages delivered
    cost_to_come: float = 0.0  # estimated for every recipient still to send
    cost_reported: float | None = None  # the provider's own figures, where it reports them
    retry_at: dict[str, str] = field(default_factory=dict)  # failed number -> when it is retried ("" = next run)


@dataclass
class Report:
    campaign: str
    provider: str
    generated_at: str
    rows: list[ReportRow] = field(default_factory=list)
    by_status: Counter[str] = field(default_factory=Counter)
    by_failure: Counter[str] = field(default_factory=Counter)
    delivered_per_hour: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    pages: int = 0
    final: bool = False  # nothing left to send, retry, wait for or reconcile
    # What the HTML report tells an operations manager besides the rows (not part of JSON/CSV).
    context: ReportContext = field(default_factory=ReportContext)

    def summary(self) -> dict[str, Any]:
        return {
            "recipients": len(self.rows),
            "by_status": dict(sorted(self.by_status.items())),
            "by_failure": dict(sorted(self.by_failure.items())),
            "attempts": self.attempts,
            "pages": self.pages,
        }

    def to_json(self, *, mask: bool = False, recipients: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format_version": REPORT_FORMAT_VERSION,
            "campaign": self.campaign,
            "provider": self.provider,
            "generated_at": self.generated_at,
            "final": self.final,
            "summary": self.summary(),
            "delivered_per_hour": sorted(self.delivered_per_hour.items()),
        }
        if recipients:
            doc["recipients"] = [masked(r) if mask else r for r in self.rows]
        return doc


def mask_number(number: str) -> str:
    """+4930****5678: country and area code, and the last four digits."""
    if len(number) <= 8:
        return number[:2] + "*" * max(0, len(number) - 2)
    return number[:5] + "*" * (len(number) - 9) + number[-4:]


def masked(row: Mapping[str, Any]) -> dict[str, Any]:
    return {**row, "number": mask_number(str(row["number"])) if str(row["number"]).startswith("+") else "***"}


def _shared(value: Any) -> Any:
    """One string object for a value that repeats across a million rows (a status, a provider's code):
    each parsed record brings its own copy, ~50 bytes a row each that a report kept."""
    return sys.intern(value) if isinstance(value, str) and len(value) <= 64 else value


def _row(number: str, record: Record, source: str | None, name: str | None) -> ReportRow:
    attempts = record.get("attempts") or []
    last = attempts[-1] if attempts else {}
    status = record.get("status")
    raw_status = last.get("raw_status")
    # ``_shared`` inlined for the two values every row has, and the row built by position: a million
    # rows per report.
    if status.__class__ is str and len(status) <= 64:
        status = sys.intern(status)
    if raw_status.__class__ is str and len(raw_status) <= 64:
        raw_status = sys.intern(raw_status)
    return ReportRow(
        number,
        name,
        status,
        _shared(last.get("failure")) if status in ("failed", "expired") else None,
        raw_status,
        last.get("reason") if status != "delivered" else None,
        counted_attempts(record),
        [a["job_id"] for a in attempts if a.get("job_id")],
        last.get("pages"),
        attempts[0].get("submitted_at") if attempts else None,
        last.get("updated_at") or last.get("submitted_at") or record.get("expired_at"),
        source,
    )


@bulk
def build(campaign: Campaign, plan: Plan) -> Report:
    """The report of ``campaign``: every recipient of the plan, with its record where there is one."""
    report = Report(campaign.name, campaign.provider.name, iso(clock.now()))
    _describe(report.context, campaign, plan)
    planned, kept = _planned_by_number(plan)
    open_work = (
        plan.count(Action.SEND) + plan.count(Action.RETRY) + plan.count(Action.DEFER) + plan.count(Action.UNKNOWN)
    )
    # A plan made with names carries them (a duplicate row is merged into the first one read, which is
    # the one sent: its name wins); otherwise the list is read again for them.
    names = None if plan.names else _names(campaign)
    open_records = _add_recorded(report, campaign, planned, kept, names)
    for number, (source, name) in kept.items():  # settled in the plan's state, yet no record: as before
        planned[number] = PlannedAction(Action.UNCHANGED, number, source=source, name=name)
    _add_unrecorded(report, planned, names)
    report.rows.sort(key=attrgetter("number"))
    report.final = open_work == 0 and open_records == 0
    return report


def _describe(context: ReportContext, campaign: Campaign, plan: Plan) -> None:
    """The campaign around the numbers, as the manifest and the plan tell it (costs of sends are added
    while the records are read)."""
    model = campaign.loaded.model
    context.description, context.owner = model.campaign.description, model.campaign.owner
    context.timezone = model.schedule.timezone
    context.documents = [(d.name, d.format, d.pages) for d in campaign.documents]
    context.pages_per_fax = campaign.pages_per_fax
    context.currency = plan.currency
    context.cost_to_come = plan.cost_all
    for planned_action in plan.groups[Action.RETRY]:
        context.retry_at[planned_action.number] = ""
    for planned_action in plan.groups[Action.DEFER]:
        if planned_action.status == "failed" and planned_action.due is not None:
            context.retry_at[planned_action.number] = iso(planned_action.due)


def _planned_by_number(plan: Plan) -> tuple[dict[str, PlannedAction], dict[str, tuple[str | None, str | None]]]:
    """The plan's actions by number, except the unchanged ones: those are only (source, name)."""
    # Unchanged recipients are read as (source, name) only: building a million actions for them cost a
    # tenth of a report.
    planned: dict[str, PlannedAction] = {}
    for action in Action:
        if action != Action.UNCHANGED:
            for planned_action in plan.groups[action]:
                planned[planned_action.number] = planned_action
    unchanged = plan.groups[Action.UNCHANGED]
    if isinstance(unchanged, UnchangedGroup):
        kept = {number: (source, name) for number, source, name in unchanged.entries()}
    else:
        kept = {a.number: (a.source, a.name) for a in unchanged}
    return planned, kept


def _add_recorded(
    report: Report,
    campaign: Campaign,
    planned: dict[str, PlannedAction],
    kept: dict[str, tuple[str | None, str | None]],
    names: dict[str, str | None] | None,
) -> int:
    """A row per recorded number; returns how many are not final. Pops what it reads from ``planned`` and
    ``kept``: what is left there afterwards has no record (instead of a set of numbers seen)."""
    context = report.context
    per_page = campaign.loaded.model.budget.per_page
    price = price_per_page(per_page) if per_page else None
    open_records = 0
    no_entry = (None, None)
    for number, record in campaign.store.records():
        item = planned.pop(number, None)
        source, name = (item.source, item.name) if item is not None else kept.pop(number, no_entry)
        if names is not None:
            name = names.get(number)
        row = _row(number, record, source, name)
        if item is not None and item.action == Action.SKIP and item.reason and item.reason.startswith("suppressed"):
            row.reason = item.reason  # suppression is the reason it will not be sent again
        _account(report, row, record)
        if row.status == "delivered" and price is not None:
            context.cost_spent += price(number) * int(row.pages or context.pages_per_fax)
        for attempt in record.get("attempts") or []:
            if attempt.get("cost") is not None:
                # a provider's cost we cannot read is left out, never guessed
                with contextlib.suppress(TypeError, ValueError):
                    context.cost_reported = (context.cost_reported or 0.0) + float(attempt["cost"])
        open_records += row.status not in _FINAL
    return open_records


def _add_unrecorded(report: Report, planned: dict[str, PlannedAction], names: dict[str, str | None] | None) -> None:
    """A row per planned number with no record: skipped, deferred, or not sent yet."""
    for number, todo in planned.items():
        status = {
            Action.SKIP: todo.status or "skipped",
            Action.DEFER: "deferred",
            Action.SEND: "not_sent",
            Action.RETRY: "not_sent",
        }.get(todo.action, "not_sent")
        row = ReportRow(
            number=number,
            name=names.get(number) if names is not None else todo.name,
            status=status,
            failure=None,
            provider_status=None,
            reason=todo.reason or (f"due {iso(todo.due)}" if todo.due else "not sent yet"),
            attempts=0,
            job_ids=[],
            pages=None,
            first_submitted=None,
            updated=None,
            source=todo.source,
        )
        _account(report, row, None)


def _names(campaign: Campaign) -> dict[str, str | None]:
    """Each number's name in the list (the first row's, for a duplicate), read column by column."""
    names: dict[str, str | None] = {}
    for item in campaign.candidate_chunks():
        if isinstance(item, Chunk):
            for i, number in enumerate(item.numbers):
                if number and number not in names:
                    names[number] = item.name(i)
        elif isinstance(item, Recipient):
            names.setdefault(item.number, item.name)
    return names


def _account(report: Report, row: ReportRow, record: Record | None) -> None:
    # Attributes, not ``row["status"]``: the mapping access is a Python call, a million times per report.
    report.rows.append(row)
    status = row.status
    report.by_status[str(status)] += 1
    if row.failure:
        report.by_failure[str(row.failure)] += 1
    report.attempts += int(row.attempts)
    if status == "delivered":
        report.pages += int(row.pages or 0)
        if row.updated:
            report.delivered_per_hour[str(row.updated)[:13] + ":00Z"] += 1
