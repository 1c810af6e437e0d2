"""The manifest's reporting targets: JSON, CSV and HTML files, a webhook POST and an e-mail.

One report is built per run (``build``) from the recorded state and the plan (which knows the recipients
that have no record: suppressed, invalid, expired, not yet sent); each target renders it. Numbers are
personal data: every target can mask them, and files are written with mode 0600. The report itself is
built in ``faxops.report_model`` and rendered in ``faxops.report_formats``; this module delivers it.

JSON shape (``format_version`` 1)::

    {"format_version": 1, "campaign": "...", "provider": "...", "generated_at": "...Z", "final": true,
     "summary": {"recipients": N, "by_status": {...}, "by_failure": {...}, "attempts": N, "pages": N},
     "delivered_per_hour": [["2026-11-23T09:00Z", 12], ...],
     "recipients": [{"number", "name", "status", "failure", "provider_status", "reason", "attempts",
                     "job_ids", "pages", "first_submitted", "updated", "source"}]}
"""

from __future__ import annotations

import hashlib
import hmac
import smtplib
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx
import orjson

from faxops import __version__, clock, secrets
from faxops.campaign import Campaign
from faxops.fields import resolve_secret
from faxops.manifest import EmailReport, FileReport, WebhookReport

# The report and its renderers live in their own modules; their names stay importable from here, where
# the commands, the receiver and the tests have always found them.
from faxops.report_formats import _cell as _cell  # a re-export: the tests check cells against it
from faxops.report_formats import iter_csv, iter_json, render_csv, render_html, render_json
from faxops.report_model import (
    CSV_COLUMNS,
    REPORT_FORMAT_VERSION,
    Report,
    ReportContext,
    build,
    mask_number,
    masked,
)
from faxops.state.files import atomic_write

__all__ = [
    "CSV_COLUMNS",
    "REPORT_FORMAT_VERSION",
    "Delivery",
    "Report",
    "ReportContext",
    "ReportError",
    "build",
    "deliver",
    "due_targets",
    "iter_csv",
    "iter_json",
    "mask_number",
    "masked",
    "post_webhook",
    "render_csv",
    "render_html",
    "render_json",
    "send_email",
    "signature",
    "write_file",
]

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
