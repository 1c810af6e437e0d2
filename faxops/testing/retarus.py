"""A loopback simulator of Retarus Fax REST v1 (seed 004), strict where the real service is.

Like the real service it serves ``/rest/v1``: jobs are sent to the high-availability URL
(``{url}/rest/v1``) and land in one of the region's data centres; reports are kept, read and deleted
only there (``{url}/{dc}/rest/v1``, ``dc`` in ``data_centres``), never at the HA URL. Jobs are placed
in turn, or where ``place`` says. Report status codes are Retarus' own. The official Python client
can send, list, read and delete here.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from faxops.testing.server import ApiError, Job, Request, Response, Simulator

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
_NUMBER = re.compile(r"^(\+|00)[1-9]\d{6,15}$")
_TYPES = {"pdf", "ps", "pcl", "tif", "tiff", "html", "htm", "txt", "xls", "xlsx", "doc", "docx"}
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
#: the simulator's fates -> Retarus report status code and reason
_REPORT = {
    "delivered": ("OK", "OK"),
    "busy": ("BUSY", "Destination number busy"),
    "no_answer": ("RING_TO", "Ring timeout: no answer"),
    "not_fax": ("NOFAX", "Call not received by a fax device"),
    "invalid": ("WRONG_NO", "Wrong number"),
    "canceled": ("CANCELLED", "Cancelled"),
    # Retarus documents no code of its own for a job whose validity ended before it was sent.
    "expired": ("CANCELLED", "Job validity ended before transmission"),
}
#: codes a test may set as an outcome, reported as they are
CODES = frozenset(
    {
        "OK",
        "EOD_FAILED",
        "BUSY",
        "NO_TRAIN",
        "PAGE_SEND_ERR",
        "REM_DIS",
        "NOFAX",
        "NOFAX_DIS",
        "NOFAX_TO",
        "RING_TO",
        "WOUT_TO",
        "WRONG_NO",
        "CHANGED_NO",
        "DIAL_NC",
        "BLACKLIST",
        "PBLACKLIST",
        "CANCELLED",
        "RENDERING_ERROR",
    }
)


def parse_validity(value: str, now: float) -> float:
    """``meta.jobValid.end``: an ISO 8601 instant, or a duration from now (``PT80M``)."""
    match = _DURATION.match(value)
    # "P" and "P1DT" match the pattern's optional parts but are not durations: they fall through to the
    # ISO instant parser, which refuses them (a 400 like any other bad jobValid).
    if match and value != "P" and not value.endswith("T"):
        days, hours, minutes, seconds = (float(g or 0) for g in match.groups())
        return now + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds()
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class RetarusSimulator(Simulator):
    """``POST /rest/v1/{custNr}/fax``; ``/{dc}/rest/v1/{custNr}/fax/reports[/{jobId}]``; HTTP Basic."""

    name = "retarus"
    api_prefix = "/rest/v1"  # base_url is the high-availability URL: where jobs are sent
    good_env: ClassVar[dict[str, str]] = {"RETARUS_USER": "faxops", "RETARUS_PASSWORD": "secret"}
    bad_env: ClassVar[dict[str, str]] = {"RETARUS_USER": "faxops", "RETARUS_PASSWORD": "wrong"}
    submit_path = r"/rest/v1/[^/]+/fax"
    account_settings: ClassVar[dict[str, object]] = {
        "customer_number": "99999TE",
        "username": "${env:RETARUS_USER}",
        "password": "${env:RETARUS_PASSWORD}",
    }

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        transmit_seconds: float | None = None,
        customer: str = "99999TE",
        username: str = "faxops",
        password: str = "secret",
        data_centres: tuple[str, ...] = ("de1", "de2"),
    ) -> None:
        self.customer = customer
        self.credentials = (username, password)
        self.data_centres = data_centres
        self.place: str | None = None  # the data centre the next jobs land in; None: in turn
        self.deleted: set[str] = set()  # jobs whose report was deleted
        super().__init__(host, port, transmit_seconds=transmit_seconds)

    @property
    def report_urls(self) -> list[str]:
        """The data centres' URLs: where reports are read and deleted."""
        return [f"{self.url}/{dc}/rest/v1" for dc in self.data_centres]

    def manifest_settings(self) -> dict[str, str | list[str]]:
        return {"base_url": self.base_url, "report_urls": self.report_urls}

    def routes(self) -> list[tuple[str, str, Any]]:
        dc = r"(?:/(?P<dc>[a-z]+\d))?/rest/v1/(?P<cust>[^/]+)/fax"
        return [
            ("POST", dc, self.send),
            ("GET", dc + r"/reports", self.reports),
            ("POST", dc + r"/reports", self.bulk),
            ("DELETE", dc + r"/reports", self.delete_reports),
            ("GET", dc + r"/reports/(?P<job>[^/]+)", self.report),
            ("DELETE", dc + r"/reports/(?P<job>[^/]+)", self.delete_report),
        ]

    def error(self, status: int, code: str, message: str) -> Response:
        return Response(status, {"code": status, "message": message})

    def _auth(self, request: Request, cust: str, dc: str | None) -> None:
        if self.basic_credentials(request) != self.credentials:
            raise ApiError(401, "401", "Authentication failed")
        # 403, not 401: the login is right but the customer number in the path is someone else's, and a client must
        # stop either way rather than count it as a refused fax.
        if cust != self.customer:
            raise ApiError(403, "403", f"customer number {cust} is not yours")
        if dc is not None and dc not in self.data_centres:
            raise ApiError(404, "404", f"no data centre {dc}")

    def _centre(self, request: Request, cust: str, dc: str | None) -> str:
        """The data centre a report request is for: never the HA URL, which keeps no reports."""
        self._auth(request, cust, dc)
        # Strict on purpose: a client that reads reports at the HA URL works against nothing real, so it must fail in
        # tests too.
        if dc is None:
            raise ApiError(404, "404", "reports are kept at the data-centre URLs, not at the high-availability URL")
        return dc

    def send(self, request: Request, cust: str, dc: str | None = None) -> Response:
        self._auth(request, cust, dc)
        body = request.json()
        if not isinstance(body, dict):
            raise ApiError(400, "400", "FaxJobRequest expected")
        recipients = body.get("recipients")
        if not isinstance(recipients, list) or not recipients:
            raise ApiError(400, "400", "recipients: must not be empty")
        numbers = self._numbers(recipients)
        _check_documents(body.get("documents") or [])
        transport = body.get("transportOptions") or {}
        if len(str(transport.get("csid", ""))) > 20:
            raise ApiError(400, "400", "transportOptions.csid: at most 20 characters")
        rendering = body.get("renderingOptions")
        if rendering is not None and rendering.get("paperFormat") not in ("A4", "LETTER"):
            raise ApiError(400, "400", "renderingOptions.paperFormat: A4 or LETTER")
        valid = (body.get("meta") or {}).get("jobValid") or {}
        reference = (body.get("reference") or {}).get("customerDefinedId")
        if reference is not None and len(reference) > 256:
            raise ApiError(400, "400", "reference.customerDefinedId: at most 256 characters")
        starts = expires = None
        try:
            if valid.get("start") is not None:
                starts = datetime.fromisoformat(str(valid["start"]).replace("Z", "+00:00")).timestamp()
            if valid.get("end") is not None:
                expires = parse_validity(str(valid["end"]), self.now())
        except ValueError:
            raise ApiError(400, "400", "meta.jobValid: an ISO 8601 time (end: or a duration such as PT80M)") from None
        with self.lock:
            centre = dc or self.place or self.data_centres[len(self.jobs) % len(self.data_centres)]
            job_id = "FJ" + self.new_id().upper()
            per_recipient = {
                str(r["number"]): {"properties": {p["key"]: p["value"] for p in r.get("properties") or []}}
                for r in recipients
            }
            job = self.accept(reference, numbers, body, job_id=job_id, per_recipient=per_recipient)
            job.data["dc"] = centre
            job.starts, job.expires = starts, expires
        return Response(200, {"jobId": job_id})

    def _numbers(self, recipients: list[Any]) -> list[str]:
        """The recipients' numbers, refusing the whole job for one bad number or property (as Retarus does)."""
        numbers = []
        for recipient in recipients:
            number = str(recipient.get("number", ""))
            if not _NUMBER.match(number):
                raise ApiError(400, "400", f"recipients.number: {number!r} is not in international format")
            if number in self.rejected:
                raise ApiError(400, "400", f"recipients.number: {number} rejected: {self.rejected[number]}")
            for prop in recipient.get("properties") or []:
                if not isinstance(prop, dict) or "key" not in prop or "value" not in prop:
                    raise ApiError(400, "400", "recipients.properties: key and value are required")
            numbers.append(number)
        return numbers

    # --- reports ------------------------------------------------------------------------------

    def _report(self, job: Job) -> dict[str, Any] | None:
        fates = {n: self.fate(job, n) for n in job.numbers}
        if any(f in ("queued", "sending") for f in fates.values()):
            return None  # Retarus reports completed jobs only
        statuses = []
        for number, fate in fates.items():
            status, reason = (fate, fate) if fate in CODES else _REPORT.get(fate, ("CANCELLED", fate))
            recipient: dict[str, Any] = next(
                (r for r in job.data.get("recipients") or [] if r.get("number") == number), {}
            )
            statuses.append(
                {
                    "number": number,
                    "properties": recipient.get("properties") or [],
                    "status": status,
                    "reason": reason,
                    "sentTs": datetime.fromtimestamp(self.now(), UTC).isoformat().replace("+00:00", "Z"),
                    "durationInSecs": 42,
                    # The dialled form (00...) beside `number` as sent: the client must key by `number`.
                    "sentToNumber": "00" + number.lstrip("+"),
                    "remoteCsid": "SIM",
                }
            )
        reference = job.data.get("reference") or {}
        return {
            "jobId": job.id,
            "recipientStatus": statuses,
            "pages": len(job.data.get("documents") or []),
            "reference": {
                "customerDefinedId": reference.get("customerDefinedId"),
                "billingCode": reference.get("billingCode"),
                "billingInfo": reference.get("billingInfo"),
            },
        }

    def _reports_at(self, dc: str) -> list[tuple[Job, dict[str, Any]]]:
        """Completed jobs' reports kept at one data centre, oldest first."""
        with self.lock:
            jobs = [j for j in self.jobs.values() if j.data.get("dc") == dc and j.id not in self.deleted]
        done = [(job, self._report(job)) for job in sorted(jobs, key=lambda j: j.created)]
        return [(job, report) for job, report in done if report is not None]

    def reports(self, request: Request, cust: str, dc: str | None = None) -> Response:
        centre = self._centre(request, cust, dc)
        # The oldest 1,000 only, as Retarus lists them: a full list proves nothing absent, which the client must know
        # before it concludes that a job never arrived.
        return Response(200, {"reports": [report for _, report in self._reports_at(centre)][:1000]})

    def report(self, request: Request, cust: str, job: str, dc: str | None = None) -> Response:
        centre = self._centre(request, cust, dc)
        for held, report in self._reports_at(centre):
            if held.id == job:
                return Response(200, report)
        raise ApiError(404, "404", f"no report for job {job}")

    def _delete(self, centre: str, job_ids: list[str]) -> list[dict[str, Any]]:
        held = {job.id for job, _ in self._reports_at(centre)}
        results: list[dict[str, Any]] = []
        with self.lock:
            for job_id in job_ids:
                if job_id in held:
                    self.deleted.add(job_id)
                    results.append({"jobId": job_id, "deleted": True})
                else:
                    results.append({"jobId": job_id, "deleted": False, "reason": "NOT_FOUND"})
        return results

    def delete_report(self, request: Request, cust: str, job: str, dc: str | None = None) -> Response:
        centre = self._centre(request, cust, dc)
        (result,) = self._delete(centre, [job])
        if not result["deleted"]:
            raise ApiError(404, "404", f"no report for job {job}")
        return Response(200, result)

    def delete_reports(self, request: Request, cust: str, dc: str | None = None) -> Response:
        """Deletes the oldest 1,000 reports of the data centre."""
        centre = self._centre(request, cust, dc)
        oldest = [job.id for job, _ in self._reports_at(centre)][:1000]
        return Response(200, {"reports": self._delete(centre, oldest)})

    def bulk(self, request: Request, cust: str, dc: str | None = None) -> Response:
        """``{"action": "GET"|"DELETE", "jobIds": [...]}`` for up to 1,000 jobs."""
        centre = self._centre(request, cust, dc)
        body = request.json()
        job_ids = body.get("jobIds") if isinstance(body, dict) else None
        action = body.get("action") if isinstance(body, dict) else None
        if action not in ("GET", "DELETE") or not isinstance(job_ids, list) or not 1 <= len(job_ids) <= 1000:
            raise ApiError(400, "400", "a BulkRequest: action GET or DELETE and 1 to 1,000 jobIds")
        if action == "DELETE":
            return Response(200, {"reports": self._delete(centre, [str(j) for j in job_ids])})
        wanted = {str(j) for j in job_ids}
        return Response(200, {"reports": [r for job, r in self._reports_at(centre) if job.id in wanted]})


def _check_documents(documents: list[Any]) -> None:
    """Refuse a job whose documents Retarus would refuse: a bad name, an unknown type, data not base64."""
    if not documents:
        raise ApiError(400, "400", "documents: at least one document is required")
    for document in documents:
        name = str(document.get("name", ""))
        if not _NAME.match(name):
            raise ApiError(400, "400", f"documents.name: {name!r} must be ≤ 32 characters of a-zA-Z0-9-_.")
        if name.rpartition(".")[2].lower() not in _TYPES:
            raise ApiError(400, "400", f"documents.name: unsupported document type {name!r}")
        try:
            base64.b64decode(document.get("data") or "", validate=True)
        except binascii.Error:
            raise ApiError(400, "400", f"documents.data: {name} is not valid base64") from None
