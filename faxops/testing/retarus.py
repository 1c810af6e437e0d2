"""A loopback simulator of Retarus Fax REST v1 (seed 004), strict where the real service is."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any

from faxops.testing.server import ApiError, Job, Request, Response, Simulator

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
_NUMBER = re.compile(r"^(\+|00)[1-9]\d{6,15}$")
_TYPES = {"pdf", "ps", "pcl", "tif", "tiff", "html", "htm", "txt", "xls", "xlsx", "doc", "docx"}
#: the simulator's fates -> Retarus report status and reason
_REPORT = {
    "delivered": ("OK", "Fax sent successfully"),
    "busy": ("BUSY", "Line busy"),
    "no_answer": ("RING_TO", "No answer (ring timeout)"),
    "not_fax": ("NOFAX", "No fax machine answered"),
    "invalid": ("INVALID_NUMBER", "Number not allocated"),
    "canceled": ("CANCELED", "Canceled"),
    "expired": ("EXPIRED", "Job validity ended before transmission"),
}


class RetarusSimulator(Simulator):
    """``POST /{custNr}/fax``, ``GET /{custNr}/fax/reports[/{jobId}]``, HTTP Basic."""

    name = "retarus"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        transmit_seconds: float | None = None,
        customer: str = "99999TE",
        username: str = "faxops",
        password: str = "secret",
    ) -> None:
        self.customer = customer
        self.credentials = (username, password)
        super().__init__(host, port, transmit_seconds=transmit_seconds)

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", r"/(?P<cust>[^/]+)/fax", self.send),
            ("GET", r"/(?P<cust>[^/]+)/fax/reports", self.reports),
            ("GET", r"/(?P<cust>[^/]+)/fax/reports/(?P<job>[^/]+)", self.report),
        ]

    def error(self, status: int, code: str, message: str) -> Response:
        return Response(status, {"code": status, "message": message})

    def _auth(self, request: Request, cust: str) -> None:
        if self.basic_credentials(request) != self.credentials:
            raise ApiError(401, "401", "Authentication failed")
        if cust != self.customer:
            raise ApiError(403, "403", f"customer number {cust} is not yours")

    def send(self, request: Request, cust: str) -> Response:
        self._auth(request, cust)
        body = request.json()
        if not isinstance(body, dict):
            raise ApiError(400, "400", "FaxJobRequest expected")
        recipients = body.get("recipients")
        if not isinstance(recipients, list) or not recipients:
            raise ApiError(400, "400", "recipients: must not be empty")
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
        documents = body.get("documents") or []
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
        transport = body.get("transportOptions") or {}
        if len(str(transport.get("csid", ""))) > 20:
            raise ApiError(400, "400", "transportOptions.csid: at most 20 characters")
        rendering = body.get("renderingOptions")
        if rendering is not None and rendering.get("paperFormat") not in ("A4", "LETTER"):
            raise ApiError(400, "400", "renderingOptions.paperFormat: A4 or LETTER")
        end = ((body.get("meta") or {}).get("jobValid") or {}).get("end")
        if end is not None and not isinstance(end, str):
            raise ApiError(400, "400", "meta.jobValid.end: an ISO 8601 time or duration")
        reference = (body.get("reference") or {}).get("customerDefinedId")
        if reference is not None and len(reference) > 256:
            raise ApiError(400, "400", "reference.customerDefinedId: at most 256 characters")
        job_id = "FJ" + self.new_id().upper()
        per_recipient = {
            str(r["number"]): {"properties": {p["key"]: p["value"] for p in r.get("properties") or []}}
            for r in recipients
        }
        job = self.accept(reference, numbers, body, job_id=job_id, per_recipient=per_recipient)
        start = ((body.get("meta") or {}).get("jobValid") or {}).get("start")
        if start is not None:
            try:
                job.starts = datetime.fromisoformat(str(start).replace("Z", "+00:00")).timestamp()
            except ValueError:
                raise ApiError(400, "400", f"meta.jobValid.start: {start!r} is not an ISO 8601 time") from None
        if end is not None:
            try:
                job.expires = datetime.fromisoformat(end.replace("Z", "+00:00")).timestamp()
            except ValueError:
                raise ApiError(400, "400", f"meta.jobValid.end: {end!r} is not an ISO 8601 time") from None
        return Response(200, {"jobId": job_id})

    def _report(self, job: Job) -> dict[str, Any] | None:
        fates = {n: self.fate(job, n) for n in job.numbers}
        if any(f in ("queued", "sending") for f in fates.values()):
            return None  # Retarus reports completed jobs only
        statuses = []
        for number, fate in fates.items():
            status, reason = _REPORT.get(fate, ("FAILED", fate))
            statuses.append(
                {
                    "number": number,
                    "properties": [],
                    "status": status,
                    "reason": reason,
                    "sentTs": datetime.fromtimestamp(self.now(), UTC).isoformat().replace("+00:00", "Z"),
                    "durationInSecs": 42,
                    "sentToNumber": number,
                    "remoteCsid": "SIM",
                }
            )
        return {
            "jobId": job.id,
            "recipientStatus": statuses,
            "pages": len(job.data.get("documents") or []),
            "reference": job.data.get("reference") or {},
        }

    def reports(self, request: Request, cust: str) -> Response:
        self._auth(request, cust)
        with self.lock:
            done = [r for r in (self._report(j) for j in self.jobs.values()) if r is not None]
        return Response(200, {"reports": done[:1000]})

    def report(self, request: Request, cust: str, job: str) -> Response:
        self._auth(request, cust)
        with self.lock:
            found = self.jobs.get(job)
            report = self._report(found) if found else None
        if report is None:
            raise ApiError(404, "404", f"no report for job {job}")
        return Response(200, report)
