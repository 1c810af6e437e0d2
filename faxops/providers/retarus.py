"""Retarus Fax REST v1 (seed 004): ``POST /{custNr}/fax`` with HTTP Basic, reports per job.

Facts and assumptions (the seed documents submission; the rest is from Retarus' SDKs):

* The client reference travels in ``reference.customerDefinedId`` (≤ 256 characters).
* Document names are at most 32 characters of ``a-zA-Z0-9-_.``; the extension decides the type. faxops
  derives a safe name from each file name.
* Status comes from reports, which exist only for *completed* jobs: ``GET /{custNr}/fax/reports/{jobId}``
  (404 until then), at each data-centre URL when jobs were sent through the high-availability URL.
* There is no search by reference: a lost answer is found by listing reports
  (``GET /{custNr}/fax/reports`` → ``{"reports": [...]}``, the oldest 1,000) and matching our reference.
  A job that is still running has no report yet, so until it completes the lookup cannot decide.
* No cancel or retry through the API. 503 and 520 mean "try again"; 429 exists, limits undocumented.
* Recipients per job: the API sets no documented maximum; faxops uses 500 per job.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field

from faxops.domain import Receipt, Status, StatusUpdate, Submission
from faxops.errors import ProviderError
from faxops.fields import Duration, SecretRef, resolve_secret
from faxops.providers.base import JobRef, Lookup, ProviderContext, ProviderSettings
from faxops.providers.http import HttpProvider, HttpSettings
from faxops.state.journal import iso, parse_iso

#: Retarus recipient status -> (faxops status, retryable)
STATUS_MAP: dict[str, tuple[Status, bool | None]] = {
    "OK": (Status.DELIVERED, None),
    "BUSY": (Status.FAILED, True),
    "RING_TO": (Status.FAILED, True),  # rang until the timeout: no answer
    "NO_ANSWER": (Status.FAILED, True),
    "NOFAX": (Status.FAILED, True),  # a person or a voice line answered
    "NO_FAX": (Status.FAILED, True),
    "BLACKLISTED": (Status.FAILED, False),
    "INVALID_NUMBER": (Status.FAILED, False),
    "NUMBER_UNKNOWN": (Status.FAILED, False),
    "CANCELED": (Status.CANCELED, False),
    "EXPIRED": (Status.EXPIRED, False),
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_document_name(name: str, index: int) -> str:
    """A name Retarus accepts (≤ 32 chars of a-zA-Z0-9-_.) that keeps the extension and order."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    ext = _SAFE_NAME.sub("", ext)[:5]
    stem = _SAFE_NAME.sub("-", stem).strip("-.") or "document"
    prefix = f"{index + 1:02d}-"
    room = 32 - len(prefix) - (len(ext) + 1 if ext else 0)
    return prefix + (stem[:room].rstrip("-._") or "document") + (f".{ext}" if ext else "")


class RetarusSettings(HttpSettings):
    """Retarus Fax REST v1."""

    type: Literal["retarus"]
    base_url: str = Field(default="https://faxws-ha.de.retarus.com/rest/v1", pattern=r"^https?://")
    report_urls: list[str] = Field(
        default_factory=list,
        description="Data-centre URLs to read reports from (default: base_url). Jobs sent through the HA URL "
        "must be queried at each data centre.",
    )
    customer_number: str = Field(min_length=1, description="Retarus customer number, e.g. 99999TE.")
    username: SecretRef
    password: SecretRef
    paper_format: Literal["A4", "LETTER"] = "A4"
    resolution: Literal["LOW", "HIGH"] = "HIGH"
    coverpage_template: str | None = None
    blacklist: bool = Field(default=True, description="Honour the Robinson list, ECOFAX and Retarus' own list.")
    express: bool = False
    status_push_url: str | None = Field(
        default=None, pattern=r"^https?://", description="Where Retarus pushes job reports (`faxops webhook serve`)."
    )
    status_push_user: str | None = Field(default=None, description="Basic auth user for the status push.")
    status_push_password: SecretRef | None = Field(default=None, description="Basic auth password for the push.")
    job_validity: Duration = Field(
        default=timedelta(hours=48),
        description="meta.jobValid.end = submission + this. After it (plus report_grace), a job with no report "
        "provably does not exist, which lets a lost answer be settled automatically.",
    )
    report_grace: Duration = Field(default=timedelta(hours=1), description="Time Retarus takes to file a report.")


class RetarusProvider(HttpProvider):
    """Retarus Fax REST v1."""

    name = "retarus"
    prints_header = True  # renderingOptions.header
    can_schedule = True
    settings_model = RetarusSettings
    max_recipients_per_job = 500
    document_formats = frozenset({"pdf", "ps", "pcl", "tiff", "html", "txt", "xls", "xlsx", "doc", "docx"})
    reference_field = "reference.customerDefinedId"
    lookup = "reference"
    personalisation = True
    transient_statuses: ClassVar[frozenset[int]] = frozenset({503, 520})

    _EXTENSIONS: ClassVar[Mapping[str, str]] = {"tiff": "tif", "jpeg": "jpg"}

    def _basic_auth(self) -> httpx.BasicAuth:
        return self.basic_auth(self.retarus.username, self.retarus.password)

    def __init__(self, settings: ProviderSettings, context: ProviderContext) -> None:
        super().__init__(settings, context)
        assert isinstance(settings, RetarusSettings)
        self.retarus = settings

    def _path(self, suffix: str = "") -> str:
        return f"/{self.retarus.customer_number}/fax{suffix}"

    def submit(self, submission: Submission) -> Receipt:
        s = self.retarus
        sender = submission.sender
        body: dict[str, Any] = {
            "reference": {"customerDefinedId": submission.reference, "billingCode": submission.campaign[:80]},
            "recipients": [
                {
                    "number": r.number,
                    "properties": [
                        {"key": k, "value": v} for k, v in ({"name": r.name or ""} | dict(r.fields or {})).items() if v
                    ],
                }
                for r in submission.recipients
            ],
            "documents": [
                {
                    "name": safe_document_name(self._named(d.name, d.format), i),
                    "data": base64.b64encode(d.read_bytes()).decode(),
                }
                for i, d in enumerate(submission.documents)
            ],
            "transportOptions": {"isExpress": s.express, "isBlacklistEnabled": s.blacklist},
            "renderingOptions": {"paperFormat": s.paper_format, "resolution": s.resolution},
        }
        if sender.csid:
            body["transportOptions"]["csid"] = sender.csid[:20]
        if sender.header:
            body["renderingOptions"]["header"] = sender.header
        if s.coverpage_template:
            body["renderingOptions"]["coverpageTemplate"] = s.coverpage_template
        if s.status_push_url:
            push: dict[str, Any] = {"targetUrl": s.status_push_url, "authMethod": "NONE"}
            if s.status_push_password:
                push.update(
                    authMethod="HTTP_BASIC",
                    principal=s.status_push_user or "faxops",
                    credentials=resolve_secret(s.status_push_password, self.context.base_dir),
                )
            body["statusReportOptions"] = {"httpStatusPush": push}
        # A job that ends by a known time either has a report after it or never existed: that is what
        # makes a lost answer decidable without a person.
        start = max(datetime.now(UTC), submission.send_at) if submission.send_at else None
        body["meta"] = {"jobValid": {"end": iso((start or datetime.now(UTC)) + s.job_validity)}}
        if start is not None:
            body["meta"]["jobValid"]["start"] = iso(start)
        response = self.call("POST", self._path(), json=body, auth=self._basic_auth(), sends=True)
        data = self.json(response, sends=True)
        job_id = data.get("jobId") if isinstance(data, dict) else None
        if not job_id:
            from faxops.errors import OutcomeUnknownError

            raise OutcomeUnknownError(f"answer without a jobId: {str(data)[:200]}", provider=self.name)
        return Receipt(job_id=str(job_id))

    def _named(self, name: str, fmt: str) -> str:
        """Retarus takes the type from the extension: make sure the name carries the detected one."""
        ext = self._EXTENSIONS.get(fmt, fmt)
        return name if name.lower().endswith(f".{ext}") or name.lower().endswith(f".{fmt}") else f"{name}.{ext}"

    def _report_urls(self) -> list[str]:
        return self.retarus.report_urls or [self.retarus.base_url]

    def status(self, job: JobRef) -> list[StatusUpdate]:
        for url in self._report_urls():
            response = self._get(f"{url.rstrip('/')}{self._path(f'/reports/{job.job_id}')}")
            if response is not None:
                return updates_from_report(self.json(response, sends=False))
        return []  # no report anywhere yet: the job is still running

    def _get(self, url: str) -> httpx.Response | None:
        try:
            return self.call("GET", url, auth=self._basic_auth(), sends=False)
        except ProviderError as exc:
            if exc.http_status == 404:
                return None
            raise

    def find(self, submission: Submission, since: datetime | None = None) -> Lookup:
        seen = 0
        full = False
        for url in self._report_urls():
            response = self._get(f"{url.rstrip('/')}{self._path('/reports')}")
            reports = (self.json(response, sends=False) or {}).get("reports", []) if response is not None else []
            seen += len(reports)
            full = full or len(reports) >= 1000
            found = [
                Receipt(job_id=str(r["jobId"]), updates=tuple(updates_from_report(r)))
                for r in reports
                if (r.get("reference") or {}).get("customerDefinedId") == submission.reference
            ]
            if found:
                return Lookup(decided=True, found=found, evidence=f"report of job {found[0].job_id} at {url}")
        # Reports exist only for completed jobs: absence proves nothing while a job may still be running,
        # nor when a list was full (only the oldest 1,000 are listed), nor after reports expire (30 days).
        now = datetime.now(UTC)
        settled = since is not None and now > since + self.retarus.job_validity + self.retarus.report_grace
        if settled and not full and since is not None and now - since < timedelta(days=30):
            return Lookup(
                True,
                (),
                f"no report carries reference {submission.reference} among {seen} listed, and "
                f"a job sent then would have ended by {iso(since + self.retarus.job_validity)}",
            )
        why = "some report lists were full (1,000 entries)" if full else "Retarus reports only completed jobs"
        return Lookup(
            decided=False,
            evidence=f"no completed report carries reference {submission.reference} among {seen} listed; {why}, "
            "so run `faxops reconcile` again later",
        )


def updates_from_report(report: Mapping[str, Any]) -> list[StatusUpdate]:
    """faxops statuses from one Retarus job report."""
    pages = report.get("pages")
    updates = []
    for item in report.get("recipientStatus") or []:
        raw = str(item.get("status") or "")
        status, retryable = STATUS_MAP.get(raw, (Status.FAILED, None))
        reason = item.get("reason") or None
        updates.append(
            StatusUpdate(
                number=str(item.get("number")),
                status=status,
                raw=raw,
                reason=None if status == Status.DELIVERED else (reason or raw),
                retryable=retryable,
                pages=pages if isinstance(pages, int) else None,
                at=parse_iso(item.get("sentTs")),
                duration=float(item["durationInSecs"]) if isinstance(item.get("durationInSecs"), int | float) else None,
            )
        )
    return updates
