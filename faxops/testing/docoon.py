"""A loopback simulator of Docoon's FaxJobs API (seed 000)."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any, ClassVar

from faxops.testing.server import ApiError, Job, Request, Response, Simulator

_ADDRESS = re.compile(r"^(\+|00)?[1-9]\d{5,15}$")
_DOCUMENT_TYPES = {"pdf", "doc", "docx", "xls", "xlsx", "html", "htm", "tif", "tiff", "txt"}
_OUTCOME = {"busy": "B", "no_answer": "N", "not_fax": "F", "invalid": "I"}


class DocoonSimulator(Simulator):
    """``POST /FaxJobs``, ``GET /JobSummaries``, ``GET /JobItems`` with HTTP Basic."""

    name = "docoon"
    api_prefix = "/api/v1"
    good_env: ClassVar[dict[str, str]] = {"DOCOON_USER": "faxops", "DOCOON_PASSWORD": "secret"}
    bad_env: ClassVar[dict[str, str]] = {"DOCOON_USER": "faxops", "DOCOON_PASSWORD": "wrong"}
    submit_path = r"/api/v1/FaxJobs"
    account_settings: ClassVar[dict[str, object]] = {
        "username": "${env:DOCOON_USER}",
        "password": "${env:DOCOON_PASSWORD}",
    }

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        transmit_seconds: float | None = None,
        username: str = "faxops",
        password: str = "secret",
    ) -> None:
        self.credentials = (username, password)
        # Job numbers in the range the seed's examples show, far from small counts a client might confuse them with.
        self.next_job = 44608862
        super().__init__(host, port, transmit_seconds=transmit_seconds)

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", r"/api/v1/FaxJobs", self.send),
            ("GET", r"/api/v1/JobSummaries", self.summaries),
            ("GET", r"/api/v1/JobItems", self.items),
        ]

    def error(self, status: int, code: str, message: str) -> Response:
        # ASP.NET Web API's shapes: a 400 nests the details under ModelState, everything else is a bare Message. The
        # client's error_details reads both, and the battery checks that the detail reaches the user.
        if status == 400:
            return Response(400, {"Message": "The request is invalid.", "ModelState": {"job": [message]}})
        return Response(status, {"Message": message})

    def _auth(self, request: Request) -> None:
        if self.basic_credentials(request) != self.credentials:
            # Web API's wording for a refused Basic pair, kept verbatim so the message the user sees is the real one.
            raise ApiError(401, "401", "Authorization has been denied for this request.")

    def send(self, request: Request) -> Response:
        self._auth(request)
        body = request.json()
        if not isinstance(body, dict) or body.get("JobType") != "NO_JTYPE":
            raise ApiError(400, "400", "JobType must be 'NO_JTYPE' for fax sending.")
        documents = body.get("Documents") or []
        if not documents:
            raise ApiError(400, "400", "Documents: at least one document is required.")
        # The whole job is refused for one bad document, before any recipient is recorded: nothing was sent.
        for doc in documents:
            if doc.get("Type") != 1:
                raise ApiError(400, "400", f"Documents: {doc.get('Name')} must have Type 1 (document).")
            if str(doc.get("Name", "")).rpartition(".")[2].lower() not in _DOCUMENT_TYPES:
                raise ApiError(400, "400", f"Documents: unsupported document format {doc.get('Name')!r}.")
            try:
                base64.b64decode(doc.get("Content") or "", validate=True)
            except binascii.Error:
                raise ApiError(400, "400", f"Documents: {doc.get('Name')} is not valid base64.") from None
        recipients = body.get("AdhocRecipients") or []
        if not recipients and not body.get("Lists"):
            raise ApiError(400, "400", "AdhocRecipients or Lists is required.")
        numbers = []
        per: dict[str, dict[str, Any]] = {}
        for recipient in recipients:
            address = str(recipient.get("Address", ""))
            if not _ADDRESS.match(address):
                raise ApiError(400, "400", f"AdhocRecipients: invalid Address {address!r}.")
            # Kept in E.164, the form tests and the client's state use, whichever prefix the request used.
            number = "+" + address.removeprefix("00").lstrip("+")
            if number in self.rejected:
                raise ApiError(400, "400", f"AdhocRecipients: {address} rejected: {self.rejected[number]}.")
            numbers.append(number)
            per[number] = {"name": recipient.get("Name"), "fields": recipient.get("OptionalFields") or []}
        if body.get("LaunchType", 0) not in (0, 1, 2):
            raise ApiError(400, "400", "LaunchType: 0 (send), 1 (proof) or 2 (preview).")
        parameter = body.get("Parameter") or {}
        if parameter.get("Media", 0) != 0 or parameter.get("Resolution", 0) not in (0, 1):
            raise ApiError(400, "400", "Parameter: Media 0 (fax); Resolution 0 (standard) or 1 (fine).")
        for listed in body.get("Lists") or []:
            if listed.get("Type") != 0:
                raise ApiError(400, "400", f"Lists: {listed.get('Name')} must have Type 0 (list).")
        csid = parameter.get("Csid")
        if csid is not None and len(str(csid)) > 20:
            raise ApiError(400, "400", "Parameter.Csid: at most 20 characters.")
        # The seed spells it both ways; accepting both keeps the simulator from passing a client that the real API
        # might read differently.
        tracking = body.get("TrackingID", body.get("TrackingId"))
        starts = _time(body.get("ScheduledStartTime"), "ScheduledStartTime")
        with self.lock:
            job_id = str(self.next_job)
            self.next_job += 1
            self.accept(tracking, numbers, body, job_id=job_id, per_recipient=per).starts = starts
        return Response(200, {"JobNumber": int(job_id)})

    def _jobs(self, request: Request) -> list[Job]:
        tid = request.arg("filterTid")
        with self.lock:
            return [j for j in self.jobs.values() if tid is None or j.reference == tid]

    def summaries(self, request: Request) -> Response:
        self._auth(request)
        return Response(
            200,
            [{"JobNumber": int(j.id), "Tid": j.reference, "Recipients": len(j.numbers)} for j in self._jobs(request)],
        )

    def items(self, request: Request) -> Response:
        self._auth(request)
        out = []
        for job in self._jobs(request):
            for number in job.numbers:
                fate = self.fate(job, number)
                item: dict[str, Any] = {
                    "JobNumber": int(job.id),
                    "Tid": job.reference,
                    "Address": "00" + number[1:],
                    # Open items carry no Disposition at all: the client must treat a missing one as still pending.
                    "Attempts": 0,
                }
                if fate == "delivered":
                    item.update(Disposition="SENT", Outcome="S", Attempts=1, SentUnits=2, Calltime=42)
                elif fate not in ("queued", "sending"):
                    item.update(Disposition="FAIL", Outcome=_OUTCOME.get(fate, "X"), Attempts=3)
                out.append(item)
        return Response(200, out)


def _time(value: Any, field: str) -> float | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ApiError(400, "400", f"{field}: {value!r} is not an ISO 8601 time.") from None
