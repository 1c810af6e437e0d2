"""The manifest's reporting targets: JSON, CSV and HTML files, a webhook POST and an e-mail.

One report is built per run (``build``) from the recorded state and the plan (which knows the recipients
that have no record: suppressed, invalid, expired, not yet sent); each target renders it. Numbers are
personal data: every target can mask them, and files are written with mode 0600.

JSON shape (``format_version`` 1)::

    {"format_version": 1, "campaign": "...", "provider": "...", "generated_at": "...Z", "final": true,
     "summary": {"recipients": N, "by_status": {...}, "by_failure": {...}, "attempts": N, "pages": N},
     "delivered_per_hour": [["2026-11-23T09:00Z", 12], ...],
     "recipients": [{"number", "name", "status", "failure", "provider_status", "reason", "attempts",
                     "job_ids", "pages", "first_submitted", "updated", "source"}]}
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import hmac
import io
import smtplib
import ssl
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from itertools import compress, repeat
from operator import attrgetter, itemgetter, methodcaller
from pathlib import Path
from typing import Any

import httpx
import orjson

from faxops import __version__, clock, secrets
from faxops.bulk import bulk
from faxops.campaign import Campaign
from faxops.chunks import Chunk
from faxops.clock import iso
from faxops.domain import Recipient, Status
from faxops.fields import resolve_secret
from faxops.manifest import EmailReport, FileReport, WebhookReport
from faxops.plan import Action, Plan, PlannedAction, price_per_page
from faxops.plan_groups import UnchangedGroup
from faxops.report_rows import ReportRow
from faxops.state.files import atomic_write
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
    model = campaign.loaded.model
    context = report.context
    context.description, context.owner = model.campaign.description, model.campaign.owner
    context.timezone = model.schedule.timezone
    context.documents = [(d.name, d.format, d.pages) for d in campaign.documents]
    context.pages_per_fax = campaign.pages_per_fax
    context.currency = plan.currency
    context.cost_to_come = plan.cost_all
    price = price_per_page(model.budget.per_page) if model.budget.per_page else None
    for planned_action in plan.groups[Action.RETRY]:
        context.retry_at[planned_action.number] = ""
    for planned_action in plan.groups[Action.DEFER]:
        if planned_action.status == "failed" and planned_action.due is not None:
            context.retry_at[planned_action.number] = iso(planned_action.due)
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
    open_work = (
        plan.count(Action.SEND) + plan.count(Action.RETRY) + plan.count(Action.DEFER) + plan.count(Action.UNKNOWN)
    )
    open_records = 0
    # A plan made with names carries them (a duplicate row is merged into the first one read, which is
    # the one sent: its name wins); otherwise the list is read again for them.
    names = None if plan.names else _names(campaign)
    no_entry = (None, None)
    for number, record in campaign.store.records():
        # What is left afterwards in ``planned`` and ``kept`` has no record (instead of a set of seen).
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
    for number, (source, name) in kept.items():  # settled in the plan's state, yet no record: as before
        planned[number] = PlannedAction(Action.UNCHANGED, number, source=source, name=name)
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
    report.rows.sort(key=attrgetter("number"))
    report.final = open_work == 0 and open_records == 0
    return report


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


# --- renderers ----------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run: text starting like a formula gets a leading quote.

    E.164 numbers and timestamps are left as they are: digits after a '+' evaluate to nothing harmful.
    """
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    text = str(value)
    if text.startswith(_FORMULA_START) and not (text[0] == "+" and text[1:].isdigit()):
        return "'" + text
    return text


def render_csv(report: Report, *, mask: bool = False) -> str:
    return b"".join(iter_csv(report, mask=mask)).decode()


def iter_csv(report: Report, *, mask: bool = False, rows_per_chunk: int = 10_000) -> Iterator[bytes]:
    """The CSV report in pieces: a million rows are never one string (nor its encoded copy) in memory."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    rows = report.rows
    for start in range(0, len(rows), rows_per_chunk):
        part = rows[start : start + rows_per_chunk]
        columns = [list(map(_GET[c], part)) for c in CSV_COLUMNS]
        if mask:  # as ``masked`` does, before the cells are made
            columns[0] = [mask_number(str(n)) if str(n).startswith("+") else "***" for n in columns[0]]
        writer.writerows(zip(*map(_csv_column, columns), strict=True))
        yield out.getvalue().encode()
        out.seek(0)
        out.truncate()
    if not rows:
        yield out.getvalue().encode()


_GET = {c: attrgetter(c) for c in CSV_COLUMNS}
_TEXT_TYPES = {str, type(None)}
_COUNT_TYPES = {int, type(None)}
_starts_like_a_formula = methodcaller("startswith", _FORMULA_START)
_starts_with_plus = methodcaller("startswith", "+")
_TAIL = itemgetter(slice(1, None))


def _csv_column(values: list[Any]) -> list[Any]:
    """A column of CSV cells as ``_cell`` makes them, a column at a time: the csv module writes None as
    an empty cell and an int as its digits, so only text that starts like a formula (and a list of job
    IDs) needs ``_cell``, and C-level passes find whether a column holds any. Per cell, ``_cell`` on
    twelve columns was a quarter of a report of a million rows."""
    kinds = set(map(type, values))
    if kinds == {list}:
        values = list(map(" ".join, map(map, repeat(str), values)))
        kinds = {str}
    if kinds <= _TEXT_TYPES:
        texts = list(filter(None, values))
        flagged = list(compress(texts, map(_starts_like_a_formula, texts)))
        # The number column: every cell starts with '+', and '+' and digits are left as they are.
        if not flagged or (all(map(_starts_with_plus, flagged)) and all(map(str.isdigit, map(_TAIL, flagged)))):
            return values
    if kinds <= _COUNT_TYPES and min(filter(None, values), default=0) >= 0:
        return values
    return list(map(_cell, values))


def render_json(report: Report, *, mask: bool = False) -> bytes:
    return b"".join(iter_json(report, mask=mask))


def iter_json(report: Report, *, mask: bool = False, rows_per_chunk: int = 10_000) -> Iterator[bytes]:
    """The JSON report in pieces, byte for byte what ``orjson`` writes with ``OPT_INDENT_2`` for the whole
    document, without the whole document (hundreds of megabytes at a million rows) in memory at once."""
    head = orjson.dumps(report.to_json(mask=mask, recipients=False) | {"recipients": []}, option=orjson.OPT_INDENT_2)
    if not report.rows:
        yield head
        return
    yield head[: -len(b"[]\n}")] + b"[\n"
    rows = report.rows
    for start in range(0, len(rows), rows_per_chunk):
        part = rows[start : start + rows_per_chunk]
        # One orjson call per chunk: the chunk as an indented list, its brackets cut, two more spaces of
        # indent on every line (the rows sit one level deeper in the report than in a bare list).
        body = orjson.dumps([masked(r) for r in part] if mask else part, option=orjson.OPT_INDENT_2)
        yield (b",\n  " if start else b"  ") + body[2:-2].replace(b"\n", b"\n  ")
    yield b"\n  ]\n}"


def render_html(report: Report, *, mask: bool = False) -> str:
    """The HTML report: one self-contained page (see ``faxops.report_html``)."""
    from faxops.report_html import render

    return render(report, mask=mask)


# --- delivery -----------------------------------------------------------------------------------------


@dataclass
class Delivery:
    target: str
    ok: bool
    detail: str


def _marker(campaign: Campaign) -> Path:
    return campaign.paths.report_marker


def due_targets(campaign: Campaign, report: Report, *, trigger: str) -> list[int]:
    """Indexes of the targets to render now: all for `faxops report`, else by each target's ``when``."""
    targets = campaign.loaded.model.reporting
    if trigger == "manual":
        # Receipts record an apply; `faxops report` has none to record.
        return [i for i, t in enumerate(targets) if t.when != "apply"]
    sent = _sent_final(campaign)
    fingerprint = _fingerprint(report)
    due = []
    for i, target in enumerate(targets):
        if target.when == "always" or (target.when == "final" and report.final and sent.get(str(i)) != fingerprint):
            due.append(i)
    return due


def _fingerprint(report: Report) -> str:
    return hashlib.sha256(orjson.dumps(report.summary(), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _sent_final(campaign: Campaign) -> dict[str, str]:
    try:
        data = orjson.loads(_marker(campaign).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def deliver(campaign: Campaign, report: Report, indexes: Sequence[int]) -> list[Delivery]:
    """Render the chosen targets. A target that fails is a warning; the others still run."""
    results = []
    targets = campaign.loaded.model.reporting
    sent = _sent_final(campaign)
    for i in indexes:
        target = targets[i]
        try:
            if isinstance(target, FileReport):
                detail = write_file(campaign, report, target)
            elif isinstance(target, WebhookReport):
                detail = post_webhook(campaign, report, target)
            elif isinstance(target, EmailReport):
                detail = send_email(campaign, report, target)
            else:
                continue  # a receipt: written by apply itself
            results.append(Delivery(f"reporting[{i}] {target.type}", True, detail))
            if report.final:
                sent[str(i)] = _fingerprint(report)
        except (OSError, httpx.HTTPError, smtplib.SMTPException, ssl.SSLError, ReportError) as exc:
            results.append(Delivery(f"reporting[{i}] {target.type}", False, str(exc) or type(exc).__name__))
    if report.final and sent:
        path = _marker(campaign)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, [orjson.dumps(sent)])
    return results


class ReportError(Exception):
    pass


def write_file(campaign: Campaign, report: Report, target: FileReport) -> str:
    path = campaign.loaded.resolve(target.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data: Iterable[bytes]
    if target.format == "json":
        data = iter_json(report, mask=target.mask_numbers)
    elif target.format == "csv":
        data = iter_csv(report, mask=target.mask_numbers)
    else:
        data = [render_html(report, mask=target.mask_numbers).encode()]
    # Scrubbed piece by piece: pieces end between rows, and a secret never spans two rows.
    atomic_write(path, (secrets.scrub_bytes(piece) for piece in data), mode=0o600)
    return f"wrote {path}"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(campaign: Campaign, report: Report, target: WebhookReport) -> str:
    secrets.register_url(target.url)
    key = resolve_secret(target.secret, campaign.loaded.base_dir) if target.secret else None
    doc = report.to_json(mask=target.mask_numbers, recipients=target.include_recipients)
    body = secrets.scrub_bytes(orjson.dumps(doc))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"faxops/{__version__}",
        "X-Faxops-Campaign": campaign.name,
    }
    if key:
        headers["X-Faxops-Signature"] = signature(key, body)
    last = ""
    for attempt in range(target.retries + 1):
        if attempt:
            clock.sleep(min(30.0, 0.5 * 2**attempt))
        try:
            response = httpx.post(target.url, content=body, headers=headers, timeout=target.timeout.total_seconds())
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
            continue
        if response.status_code < 300:
            return f"POST {target.url}: {response.status_code}"
        last = f"HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code < 500 and response.status_code != 429:
            break
    raise ReportError(f"POST {target.url} failed: {last}")


def send_email(campaign: Campaign, report: Report, target: EmailReport) -> str:
    smtp = target.smtp
    base = campaign.loaded.base_dir
    login = None
    if smtp.username and smtp.password:  # resolved first: the body is scrubbed of the password too
        login = (resolve_secret(smtp.username, base, identifier=True), resolve_secret(smtp.password, base))
    s = report.summary()
    message = EmailMessage()
    message["From"] = target.sender
    message["To"] = ", ".join(target.to)
    state = "complete" if report.final else "in progress"
    message["Subject"] = target.subject or f"Fax campaign {campaign.name}: {state}"
    lines = [
        f"Fax campaign {campaign.name} through {report.provider}: {state}.",
        "",
        f"Recipients: {s['recipients']}",
        *(f"  {status}: {count}" for status, count in s["by_status"].items()),
        "",
        "Failures by class:" if s["by_failure"] else "No failures.",
        *(f"  {failure}: {count}" for failure, count in s["by_failure"].items()),
        "",
        f"Attempts: {s['attempts']} · pages delivered: {s['pages']}",
        f"Generated {report.generated_at} by faxops {__version__}. Per-recipient results are attached (CSV).",
    ]
    message.set_content(secrets.scrub("\n".join(lines)))
    message.add_attachment(
        secrets.scrub(render_csv(report, mask=target.mask_numbers)).encode(),
        maintype="text",
        subtype="csv",
        filename=f"{campaign.name}-report.csv",
    )
    with smtplib.SMTP(smtp.host, smtp.port, timeout=30) as client:
        if smtp.starttls:
            cafile = str(campaign.loaded.resolve(smtp.ca_file)) if smtp.ca_file else None
            client.starttls(context=ssl.create_default_context(cafile=cafile))
        if login:
            client.login(*login)
        client.send_message(message)
    return f"mailed {', '.join(target.to)} via {smtp.host}:{smtp.port}"
