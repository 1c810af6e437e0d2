"""Retarus Fax REST v1 (seed 004): ``POST /{custNr}/fax`` with HTTP Basic, reports per job.

Facts, from the seed, Retarus' API reference and its SDKs (``retarus-fax`` on PyPI, ``retarus-java-fax``):

* Every path is under ``/rest/v1``. Jobs are sent to the region's high-availability URL; reports are
  read (and deleted) only at the region's data-centre URLs, and each of them is asked: DE has de1 and
  de2, US us1 and us2, CH and SG one each. ``region`` derives both; ``base_url``/``report_urls`` override.
* The client reference travels in ``reference.customerDefinedId`` (≤ 256 characters).
* Document names are at most 32 characters of ``a-zA-Z0-9-_.``; the extension decides the type. faxops
  derives a safe name from each file name.
* Status comes from reports, which exist only for *completed* jobs: ``GET /{custNr}/fax/reports/{jobId}``
  (404 at a data centre that does not hold it). Per recipient a status code as Retarus spells it
  (``STATUS`` in ``retarus_reports``); a code not listed there is kept raw and classed ``unknown``, never guessed.
* There is no search by reference: a lost answer is found by listing reports at every data centre
  (``GET /{custNr}/fax/reports`` → ``{"reports": [...]}``, the oldest 1,000 each) and matching our
  reference. It is "not found" only when every data centre answered a list that was not full, after the
  job's validity ended; a job that is still running has no report yet, so until then nothing is decided.
* ``meta.jobValid.end`` bounds a job's life on their side (an instant; the API also takes ``PT80M``).
* No cancel or retry through the API. 503 and 520 mean "try again"; 429 exists, limits undocumented.
* Recipients per job: the API sets no documented maximum; faxops uses 500 per job.

Where the Python SDK contradicts the published reference, faxops follows the reference (and the Java
SDK's example report, ``src/main/resources/get_fax_reports_response.json``): report fields are ``sentTs``,
``durationInSecs``, ``sentToNumber``, ``remoteCsid`` and ``reference.customerDefinedId`` (the Python SDK's
``FaxReport`` spells them ``sendTs``, ``durationInSeconds``, ``sendToNumber``, ``remoteCsId`` and
``costumerDefinedId``), ``properties`` is a list of ``{key, value}`` (a string there), and
``renderingOptions.coverpageTemplate`` is optional (required there).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from faxops import clock
from faxops.clock import iso
from faxops.domain import Receipt, StatusUpdate, Submission
from faxops.errors import OutcomeUnknownError, ProviderError
from faxops.fields import Duration, SecretRef, resolve_secret
from faxops.providers.base import BadPush, JobRef, Lookup, ProviderContext, ProviderSettings, PushedUpdate, push_json
from faxops.providers.http import HttpProvider, HttpSettings
from faxops.providers.retarus_reports import STATUS, Report, ReportList, report_from_xml, updates_from_report

if TYPE_CHECKING:
    import httpx  # imported by the client when it first calls out (see ``providers.http``)

__all__ = [
    "REGIONS",
    "STATUS",
    "RetarusProvider",
    "RetarusSettings",
    "region_urls",
    "safe_document_name",
    "updates_from_report",
]

#: data centres per region: (high-availability host, data-centre hosts)
REGIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "DE": ("faxws-ha.de", ("faxws.de1", "faxws.de2")),
    "US": ("faxws-ha.us", ("faxws.us1", "faxws.us2")),
    "CH": ("faxws-ha.ch", ("faxws.ch1",)),
    "SG": ("faxws-ha.sg", ("faxws.sg1",)),
}


def region_urls(region: str) -> tuple[str, list[str]]:
    """The HA URL jobs are sent to and the data-centre URLs reports are read at."""
    ha, centres = REGIONS[region]
    return f"https://{ha}.retarus.com/rest/v1", [f"https://{c}.retarus.com/rest/v1" for c in centres]


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
    region: Literal["DE", "US", "CH", "SG"] = Field(
        default="DE", description="Retarus region: sets base_url (its HA URL) and report_urls (its data centres)."
    )
    base_url: str = Field(
        default="https://faxws-ha.de.retarus.com/rest/v1",
        pattern=r"^https?://",
        description="Where jobs are sent: the region's high-availability URL unless overridden.",
    )
    report_urls: list[str] = Field(
        default_factory=list,
        description="Data-centre URLs where reports are read, every one of them (default: the region's). "
        "Required with a base_url of your own.",
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

    @model_validator(mode="before")
    @classmethod
    def _region_urls(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        region = data.get("region", "DE")
        if region not in REGIONS:
            return data  # the field's own error names the choices
        ha, centres = region_urls(region)
        data = dict(data)
        if data.get("base_url") is None:
            data["base_url"] = ha
        if not data.get("report_urls"):
            if str(data["base_url"]).rstrip("/") != ha:
                # Reports are never at the HA URL: a base_url of one's own needs its data centres named.
                raise ValueError(
                    "report_urls: required with a base_url of your own: list every data-centre URL where "
                    "reports are read (Retarus keeps them there, never at the HA URL)"
                )
            data["report_urls"] = centres
        return data


class RetarusProvider(HttpProvider):
    """Retarus Fax REST v1."""

    name = "retarus"
    push_format = "Retarus status push (XML or JSON)"
    prints_header = True  # renderingOptions.header
    can_schedule = True
    settings_model = RetarusSettings
    max_recipients_per_job = 500
    document_formats = frozenset({"pdf", "ps", "pcl", "tiff", "html", "txt", "xls", "xlsx", "doc", "docx"})
    reference_field = "reference.customerDefinedId"
    lookup = "reference"
    personalisation = True
    # 520 is Retarus' own "try again" (documented beside 503); any other 5xx after a send stays unknown.
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
            # The campaign as billing code, so that Retarus' invoice can be split per campaign without our state.
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
            # Retarus refuses a CSID over 20 characters (the fax standard's limit); the manifest already checks it.
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
        start = max(clock.now(), submission.send_at) if submission.send_at else None
        body["meta"] = {"jobValid": {"end": iso((start or clock.now()) + s.job_validity)}}
        if start is not None:
            body["meta"]["jobValid"]["start"] = iso(start)
        response = self.call("POST", self._path(), json=body, auth=self._basic_auth(), sends=True)
        data = self.json(response, sends=True)
        job_id = data.get("jobId") if isinstance(data, dict) else None
        if not job_id:
            raise OutcomeUnknownError(f"answer without a jobId: {str(data)[:200]}", provider=self.name)
        return Receipt(job_id=str(job_id))

    def _named(self, name: str, fmt: str) -> str:
        """Retarus takes the type from the extension: make sure the name carries the detected one."""
        ext = self._EXTENSIONS.get(fmt, fmt)
        return name if name.lower().endswith(f".{ext}") or name.lower().endswith(f".{fmt}") else f"{name}.{ext}"

    def _report_urls(self) -> list[str]:
        return [url.rstrip("/") for url in self.retarus.report_urls]

    def status(self, job: JobRef) -> list[StatusUpdate]:
        # Every data centre is asked until one holds the report: a 404 at one says nothing about the others.
        for url in self._report_urls():
            response = self._get(f"{url}{self._path(f'/reports/{job.job_id}')}")
            if response is not None:
                report = self.read(Report, self.json(response, sends=False), f"the report of job {job.job_id}")
                return updates_from_report(report.model_dump(by_alias=True))
        return []  # no report anywhere yet: the job is still running

    def _get(self, url: str) -> httpx.Response | None:
        try:
            return self.call("GET", url, auth=self._basic_auth(), sends=False)
        except ProviderError as exc:
            # 404 at a data centre only means "not here (yet)": the others are still asked, and no report at all means
            # the job is still running.
            if exc.http_status == 404:
                return None
            raise

    def find(self, submission: Submission, since: datetime | None = None) -> Lookup:
        seen = 0
        full = False
        for url in self._report_urls():
            # A listing that fails raises: a data centre that did not answer proves nothing absent.
            response = self.call("GET", f"{url}{self._path('/reports')}", auth=self._basic_auth(), sends=False)
            reports = self.read(ReportList, self.json(response, sends=False), f"the report list at {url}").reports
            seen += len(reports)
            full = full or len(reports) >= 1000
            found = [
                Receipt(job_id=r.jobId, updates=tuple(updates_from_report(r.model_dump(by_alias=True))))
                for r in reports
                if r.reference is not None and r.reference.customerDefinedId == submission.reference
            ]
            if found:
                return Lookup(decided=True, found=found, evidence=f"report of job {found[0].job_id} at {url}")
        # Reports exist only for completed jobs: absence proves nothing while a job may still be running,
        # nor when a list was full (only the oldest 1,000 are listed), nor after reports expire (30 days).
        now = clock.now()
        settled = since is not None and now > since + self.retarus.job_validity + self.retarus.report_grace
        asked = f"{len(self._report_urls())} data centre(s)"
        if settled and not full and since is not None and now - since < timedelta(days=30):
            return Lookup(
                True,
                (),
                f"no report carries reference {submission.reference} among {seen} listed at {asked}, and "
                f"a job sent then would have ended by {iso(since + self.retarus.job_validity)}",
            )
        why = "some report lists were full (1,000 entries)" if full else "Retarus reports only completed jobs"
        return Lookup(
            decided=False,
            evidence=f"no completed report carries reference {submission.reference} among {seen} listed at "
            f"{asked}; {why}, so run `faxops reconcile` again later",
        )

    @classmethod
    def parse_push(cls, body: bytes, content_type: str) -> list[PushedUpdate]:
        """A Retarus status push: a job report, XML by default or JSON on request, one entry per recipient."""
        # By content as well as Content-Type: a push relayed by a proxy may arrive relabelled (text/plain),
        # while the body's first byte tells JSON from XML for certain.
        is_json = "json" in content_type or body.lstrip()[:1] in (b"{", b"[")
        report = push_json(body) if is_json else report_from_xml(body)
        job_id = str(report.get("jobId") or "")
        if not job_id:
            raise BadPush("a Retarus report without jobId")
        updates = updates_from_report(report)
        if not updates:
            raise BadPush("a Retarus report without recipientStatus entries")
        return [((job_id,), u) for u in updates]
