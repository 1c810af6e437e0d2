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

import csv
import hashlib
import hmac
import html
import io
import smtplib
import ssl
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import orjson

from faxops import __version__, clock
from faxops.campaign import Campaign
from faxops.domain import Recipient, Status
from faxops.fields import resolve_secret
from faxops.manifest import EmailReport, FileReport, WebhookReport
from faxops.plan import Action, Plan, PlannedAction
from faxops.state import read_records
from faxops.state.files import atomic_write
from faxops.state.journal import iso
from faxops.state.records import Record, counted_attempts

REPORT_FORMAT_VERSION = 1
HTML_ROW_LIMIT = 20_000
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
class Report:
    campaign: str
    provider: str
    generated_at: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    by_status: Counter[str] = field(default_factory=Counter)
    by_failure: Counter[str] = field(default_factory=Counter)
    delivered_per_hour: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    pages: int = 0
    final: bool = False  # nothing left to send, retry, wait for or reconcile

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


def masked(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "number": mask_number(str(row["number"])) if str(row["number"]).startswith("+") else "***"}


def _row(number: str, record: Record, source: str | None, name: str | None) -> dict[str, Any]:
    attempts = record.get("attempts") or []
    last = attempts[-1] if attempts else {}
    return {
        "number": number,
        "name": name,
        "status": record.get("status"),
        "failure": last.get("failure") if record.get("status") in ("failed", "expired") else None,
        "provider_status": last.get("raw_status"),
        "reason": last.get("reason") if record.get("status") != "delivered" else None,
        "attempts": counted_attempts(record),
        "job_ids": [a["job_id"] for a in attempts if a.get("job_id")],
        "pages": last.get("pages"),
        "first_submitted": attempts[0].get("submitted_at") if attempts else None,
        "updated": last.get("updated_at") or last.get("submitted_at") or record.get("expired_at"),
        "source": source,
    }


def build(campaign: Campaign, plan: Plan) -> Report:
    """The report of ``campaign``: every recipient of the plan, with its record where there is one."""
    report = Report(campaign.name, campaign.provider.name, iso(clock.now()))
    planned: dict[str, PlannedAction] = {}
    for action in Action:
        for planned_action in plan.groups[action]:
            planned[planned_action.number] = planned_action
    open_work = (
        plan.count(Action.SEND) + plan.count(Action.RETRY) + plan.count(Action.DEFER) + plan.count(Action.UNKNOWN)
    )
    open_records = 0
    seen: set[str] = set()
    # The plan keeps no names for settled recipients (a million of them must stay small): read them again.
    # A duplicate row is merged into the first one read, which is the one sent: its name wins.
    names: dict[str, str | None] = {}
    for candidate in campaign.candidates():
        if isinstance(candidate, Recipient):
            names.setdefault(candidate.number, candidate.name)
    for number, record in read_records(campaign.paths):
        item = planned.get(number)
        name = names.get(number)
        row = _row(number, record, item.source if item is not None else None, name)
        if item is not None and item.action == Action.SKIP and item.reason and item.reason.startswith("suppressed"):
            row["reason"] = item.reason  # suppression is the reason it will not be sent again
        seen.add(number)
        _account(report, row, record)
        open_records += row["status"] not in _FINAL
    for number, todo in planned.items():
        if number in seen:
            continue
        status = {
            Action.SKIP: todo.status or "skipped",
            Action.DEFER: "deferred",
            Action.SEND: "not_sent",
            Action.RETRY: "not_sent",
        }.get(todo.action, "not_sent")
        row = {
            "number": number,
            "name": names.get(number),
            "status": status,
            "failure": None,
            "provider_status": None,
            "reason": todo.reason or (f"due {iso(todo.due)}" if todo.due else "not sent yet"),
            "attempts": 0,
            "job_ids": [],
            "pages": None,
            "first_submitted": None,
            "updated": None,
            "source": todo.source,
        }
        _account(report, row, None)
    report.rows.sort(key=lambda r: str(r["number"]))
    report.final = open_work == 0 and open_records == 0
    return report


def _account(report: Report, row: dict[str, Any], record: Record | None) -> None:
    report.rows.append(row)
    report.by_status[str(row["status"])] += 1
    if row["failure"]:
        report.by_failure[str(row["failure"])] += 1
    report.attempts += int(row["attempts"])
    if row["status"] == "delivered":
        report.pages += int(row["pages"] or 0)
        if row["updated"]:
            report.delivered_per_hour[str(row["updated"])[:13] + ":00Z"] += 1


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
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        shown = masked(row) if mask else row
        writer.writerow([_cell(shown.get(c)) for c in CSV_COLUMNS])
    return out.getvalue()


def render_json(report: Report, *, mask: bool = False) -> bytes:
    return orjson.dumps(report.to_json(mask=mask), option=orjson.OPT_INDENT_2)


_COLOURS = {
    "delivered": "#2e7d32",
    "failed": "#c62828",
    "queued": "#1565c0",
    "sending": "#1565c0",
    "pending": "#6a1b9a",
    "canceled": "#ef6c00",
    "expired": "#ef6c00",
    "deferred": "#5c6bc0",
    "not_sent": "#757575",
    "skip": "#757575",
}


def _chart(per_hour: Counter[str]) -> str:
    """Deliveries per hour (bars) and in total (line), as an inline SVG: no script, no external file."""
    if not per_hour:
        return '<p class="muted">No deliveries recorded yet.</p>'
    hours = sorted(per_hour)
    total, cumulative = 0, []
    for hour in hours:
        total += per_hour[hour]
        cumulative.append(total)
    width, height, pad = 900, 240, 44
    inner_w, inner_h = width - 2 * pad, height - 2 * pad
    stamps = [datetime.fromisoformat(h.replace("Z", "+00:00")).timestamp() for h in hours]
    span = (stamps[-1] - stamps[0]) or 1.0
    slot = max(8.0, min(36.0, inner_w / max(1, len(hours)) * 0.7))
    peak = max(per_hour.values())
    parts = [
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#999"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#999"/>',
    ]
    points = []
    for i, hour in enumerate(hours):
        # placed by time, so that quiet hours (closed windows, nights) show as gaps
        x = pad + slot / 2 + (inner_w - slot) * ((stamps[i] - stamps[0]) / span if len(hours) > 1 else 0.5)
        bar = per_hour[hour] / peak * inner_h * 0.6
        parts.append(
            f'<rect x="{x - slot / 2:.1f}" y="{height - pad - bar:.1f}" width="{slot:.1f}" '
            f'height="{bar:.1f}" fill="#a5d6a7"><title>{html.escape(hour)}: {per_hour[hour]} delivered</title></rect>'
        )
        points.append((x, height - pad - cumulative[i] / total * inner_h))
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#2e7d32" stroke-width="2.5"/>')
    parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#2e7d32"/>' for x, y in points)

    def label(hour: str) -> str:
        return html.escape(hour.replace("T", " ").removesuffix("Z") + " UTC")

    parts.append(f'<text x="{pad}" y="{height - 16}" font-size="12">{label(hours[0])}</text>')
    if len(hours) > 1:
        parts.append(
            f'<text x="{width - pad}" y="{height - 16}" font-size="12" text-anchor="end">{label(hours[-1])}</text>'
        )
    parts.append(
        f'<text x="{pad + 6}" y="{pad - 12}" font-size="13">{total} delivered in all (line), per hour (bars)</text>'
    )
    return (
        f'<svg role="img" aria-label="Deliveries over time" viewBox="0 0 {width} {height}" '
        f'style="max-width:{width}px;width:100%">{"".join(parts)}</svg>'
    )


def render_html(report: Report, *, mask: bool = False) -> str:
    esc = html.escape
    total = max(1, len(report.rows))
    cards = "".join(
        f'<div class="card"><div class="n" style="color:{_COLOURS.get(s, "#333")}">{n}</div>'
        f'<div>{esc(s.replace("_", " "))}</div><div class="muted">{n * 100 / total:.1f}%</div></div>'
        for s, n in sorted(report.by_status.items(), key=lambda kv: -kv[1])
    )
    failures = (
        "".join(
            f'<tr><td>{esc(f.replace("_", " "))}</td><td class="r">{n}</td><td><div class="bar" '
            f'style="width:{n * 100 / max(report.by_failure.values()):.0f}%"></div></td></tr>'
            for f, n in report.by_failure.most_common()
        )
        or '<tr><td colspan="3" class="muted">No failures.</td></tr>'
    )
    rows = []
    for row in report.rows[:HTML_ROW_LIMIT]:
        shown = masked(row) if mask else row
        colour = _COLOURS.get(str(shown["status"]), "#333")
        rows.append(
            "<tr>"
            f'<td class="id">{esc(str(shown["number"]))}</td><td>{esc(shown["name"] or "")}</td>'
            f'<td style="color:{colour}">{esc(str(shown["status"]))}</td><td>{esc(shown["failure"] or "")}</td>'
            f"<td>{esc(shown['provider_status'] or '')}</td><td>{esc(shown['reason'] or '')}</td>"
            f'<td class="r">{shown["attempts"]}</td><td class="id">{"<br>".join(esc(j) for j in shown["job_ids"])}</td>'
            f'<td class="id">{esc(shown["updated"] or "")}</td></tr>'
        )
    more = (
        f'<p class="muted">The first {HTML_ROW_LIMIT:,} of {len(report.rows):,} recipients; the CSV and JSON '
        "reports hold all.</p>"
        if len(report.rows) > HTML_ROW_LIMIT
        else ""
    )
    state = "complete" if report.final else "in progress"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Fax campaign {esc(report.campaign)}: report</title>
<style>
body{{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem}}
h1{{font-size:1.6rem;margin-bottom:.2rem}} h2{{font-size:1.15rem;margin-top:2rem}}
.muted{{color:#777}} .cards{{display:flex;flex-wrap:wrap;gap:.8rem}}
.card{{border:1px solid #ddd;border-radius:8px;padding:.7rem 1rem;min-width:110px}}
.card .n{{font-size:1.7rem;font-weight:600}}
table{{border-collapse:collapse;width:100%}} td,th{{padding:.3rem .5rem;border-bottom:1px solid #eee;text-align:left}}
th{{background:#fafafa}} .r{{text-align:right}} .bar{{background:#ef9a9a;height:12px;border-radius:3px}}
td.id{{white-space:nowrap;font-family:monospace;font-size:12px}}
</style></head><body>
<h1>Fax campaign <code>{esc(report.campaign)}</code></h1>
<p class="muted">Provider {esc(report.provider)} · {len(report.rows):,} recipients · {report.attempts:,} attempts ·
{report.pages:,} pages delivered · campaign {state} · generated {esc(report.generated_at)} by faxops {__version__}</p>
<div class="cards">{cards}</div>
<h2>Deliveries over time (per hour, cumulative)</h2>{_chart(report.delivered_per_hour)}
<h2>Failures by class</h2><table><tr><th>class</th><th class="r">recipients</th><th></th></tr>{failures}</table>
<h2>Recipients</h2>{more}
<table><tr><th>number</th><th>name</th><th>status</th><th>failure</th><th>provider status</th><th>reason</th>
<th class="r">attempts</th><th>job IDs</th><th>updated</th></tr>
{"".join(rows)}</table>
</body></html>
"""


# --- delivery -----------------------------------------------------------------------------------------


@dataclass
class Delivery:
    target: str
    ok: bool
    detail: str


def _marker(campaign: Campaign) -> Path:
    return campaign.loaded.base_dir / ".faxops" / f"{campaign.loaded.path.stem}.reported"


def due_targets(campaign: Campaign, report: Report, *, trigger: str) -> list[int]:
    """Indexes of the targets to render now: all for `faxops report`, else by each target's ``when``."""
    targets = campaign.loaded.model.reporting
    if trigger == "manual":
        return list(range(len(targets)))
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
            else:
                detail = send_email(campaign, report, target)
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
    if target.format == "json":
        data = render_json(report, mask=target.mask_numbers)
    elif target.format == "csv":
        data = render_csv(report, mask=target.mask_numbers).encode()
    else:
        data = render_html(report, mask=target.mask_numbers).encode()
    atomic_write(path, [data], mode=0o600)
    return f"wrote {path}"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(campaign: Campaign, report: Report, target: WebhookReport) -> str:
    body = orjson.dumps(report.to_json(mask=target.mask_numbers, recipients=target.include_recipients))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"faxops/{__version__}",
        "X-Faxops-Campaign": campaign.name,
    }
    if target.secret:
        headers["X-Faxops-Signature"] = signature(resolve_secret(target.secret, campaign.loaded.base_dir), body)
    last = ""
    for attempt in range(target.retries + 1):
        if attempt:
            time.sleep(min(30.0, 0.5 * 2**attempt))
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
    message.set_content("\n".join(lines))
    message.add_attachment(
        render_csv(report, mask=target.mask_numbers).encode(),
        maintype="text",
        subtype="csv",
        filename=f"{campaign.name}-report.csv",
    )
    base = campaign.loaded.base_dir
    with smtplib.SMTP(smtp.host, smtp.port, timeout=30) as client:
        if smtp.starttls:
            cafile = str(campaign.loaded.resolve(smtp.ca_file)) if smtp.ca_file else None
            client.starttls(context=ssl.create_default_context(cafile=cafile))
        if smtp.username and smtp.password:
            client.login(resolve_secret(smtp.username, base), resolve_secret(smtp.password, base))
        client.send_message(message)
    return f"mailed {', '.join(target.to)} via {smtp.host}:{smtp.port}"
