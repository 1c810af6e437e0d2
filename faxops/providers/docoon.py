"""Docoon FaxJobs (seed 000): ``POST /FaxJobs`` with JSON, HTTP Basic; status per recipient in JobItems.

Facts and assumptions:

* ``TrackingID`` carries our client reference (the seed also spells it ``TrackingId``; the simulator
  takes both). ``JobItems``/``JobSummaries`` filter by it (``filterTid``), which makes recovery exact.
* Recipients are ``AdhocRecipients`` (Name, Address, OptionalFields); the first five optional fields
  appear in reports and personalise the document as ``BCF3``…; faxops sends the manifest's fields in
  order. Addresses use the international ``00`` prefix as in the seed's examples.
* Per recipient, ``Disposition`` is SENT or FAIL and ``Outcome`` a class letter; the letters are not
  documented publicly, so faxops keeps the raw letter and treats a failure as retryable unless its
  letter says the number is invalid (assumed ``I``) or the document was refused (assumed ``D``).
* Docoon asks not to poll more than every 5 minutes (enforced by ``faxops refresh``), and answers 429 with
  ``Retry-After`` past 300 requests per minute.
* Recipients per job: many; faxops uses at most 1,000 per job.
* Assumed (the seed documents only ``/FaxJobs``): ``JobSummaries`` and ``JobItems`` answer a JSON list of
  the job's entries, filtered by ``filterTid``, unpaged; errors other than 400's ``{Message, ModelState}``
  are ``{"Message"}`` (401 with Basic credentials refused). An answer of another shape decides nothing.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from faxops.clock import iso
from faxops.domain import FailureClass, Receipt, Status, StatusUpdate, Submission
from faxops.errors import OutcomeUnknownError
from faxops.fields import SecretRef
from faxops.providers.base import JobRef, Lookup, ProviderContext, ProviderSettings
from faxops.providers.http import HttpProvider, HttpSettings

if TYPE_CHECKING:
    import httpx  # imported by the client when it first calls out (see ``providers.http``)

#: Outcome letters known to be final for the number (assumed; the raw letter is always kept)
PERMANENT_OUTCOMES = {"I": "invalid number", "D": "document refused"}
#: Outcome letters as failure classes: an assumption (Docoon does not publish the letters), kept in one place
OUTCOME_CLASSES = {
    "B": FailureClass.BUSY,
    "N": FailureClass.NO_ANSWER,
    "F": FailureClass.NOT_FAX,
    "I": FailureClass.INVALID_NUMBER,
    "D": FailureClass.DOCUMENT,
}


class _Summary(BaseModel):
    """A ``JobSummaries`` entry (the fields the lookup reads)."""

    model_config = ConfigDict(extra="ignore")
    JobNumber: int | str


_Summaries = RootModel[list[_Summary]]


class DocoonSettings(HttpSettings):
    """Docoon (Odyssey Messaging) REST API v1."""

    type: Literal["docoon"]
    base_url: str = Field(default="https://api.odyssey-services.fr/api/v1", pattern=r"^https?://")
    username: SecretRef
    password: SecretRef
    resolution: Literal["standard", "fine"] = "fine"
    launch_type: Literal["send", "proof", "preview"] = Field(
        default="send", description="proof/preview make Docoon render without sending (a provider-side dry run)."
    )


class DocoonProvider(HttpProvider):
    """Docoon FaxJobs."""

    name = "docoon"
    can_schedule = True
    min_poll_interval = 300.0  # Docoon asks for at most one status poll per 5 minutes
    settings_model = DocoonSettings
    max_recipients_per_job = 1000
    document_formats = frozenset({"pdf", "doc", "docx", "xls", "xlsx", "html", "tiff", "txt"})
    reference_field = "TrackingID"
    lookup = "reference"
    personalisation = True

    def _basic_auth(self) -> httpx.BasicAuth:
        return self.basic_auth(self.docoon.username, self.docoon.password)

    def __init__(self, settings: ProviderSettings, context: ProviderContext) -> None:
        super().__init__(settings, context)
        assert isinstance(settings, DocoonSettings)
        self.docoon = settings

    def error_details(self, response: httpx.Response) -> tuple[str | None, str]:
        try:
            body = response.json()
        except ValueError:
            return None, response.text[:300] or response.reason_phrase
        if isinstance(body, dict) and "Message" in body:
            details = [m for messages in (body.get("ModelState") or {}).values() for m in messages]
            message = str(body["Message"]) + (f" ({'; '.join(details)})" if details else "")
            return None, message
        return super().error_details(response)

    @staticmethod
    def address(number: str) -> str:
        return "00" + number.lstrip("+")

    def submit(self, submission: Submission) -> Receipt:
        sender = submission.sender
        body: dict[str, Any] = {
            "JobType": "NO_JTYPE",
            "TrackingID": submission.reference,
            "LaunchType": {"send": 0, "proof": 1, "preview": 2}[self.docoon.launch_type],
            "Documents": [
                {"Name": d.name, "Type": 1, "Content": base64.b64encode(d.read_bytes()).decode()}
                for d in submission.documents
            ],
            "AdhocRecipients": [
                {
                    "Name": r.name or "",
                    "Address": self.address(r.number),
                    # Positional: Docoon knows the fields only as BCF3, BCF4... in order, so the manifest's order is
                    # the contract.
                    "OptionalFields": [str(v) for v in (r.fields or {}).values()],
                }
                for r in submission.recipients
            ],
            # Fine by default: small print and signatures become unreadable at standard resolution, and a fax cannot
            # be re-sent to fix that.
            "Parameter": {"Media": 0, "Resolution": 1 if self.docoon.resolution == "fine" else 0},
        }
        if sender.csid:
            body["Parameter"]["Csid"] = sender.csid
        # Scheduled on Docoon's side only when the planner asked for it (schedule.provider_side): the job then
        # waits there instead of for a later run of faxops.
        if submission.send_at is not None:
            body["ScheduledStartTime"] = iso(submission.send_at)
        response = self.call("POST", "/FaxJobs", json=body, auth=self._basic_auth(), sends=True)
        data = self.json(response, sends=True)
        job = data.get("JobNumber") if isinstance(data, dict) else None
        if job is None:
            raise OutcomeUnknownError(f"answer without a JobNumber: {str(data)[:200]}", provider=self.name)
        return Receipt(job_id=str(job))

    def _items(self, reference: str) -> list[dict[str, Any]]:
        response = self.call("GET", "/JobItems", params={"filterTid": reference}, auth=self._basic_auth(), sends=False)
        items = self.json(response, sends=False)
        return items if isinstance(items, list) else []

    def _updates(self, items: list[dict[str, Any]]) -> list[StatusUpdate]:
        updates = []
        for item in items:
            # Back to E.164, the form the state is keyed by: a number that came back as 0049... must meet its record.
            number = "+" + str(item.get("Address", "")).removeprefix("00").lstrip("+")
            disposition = str(item.get("Disposition") or "").upper()
            outcome = str(item.get("Outcome") or "")
            raw = f"{disposition or 'PENDING'}{'/' + outcome if outcome else ''}"
            pages = item.get("SentUnits") if isinstance(item.get("SentUnits"), int) else None
            if disposition == "SENT":
                updates.append(StatusUpdate(number, Status.DELIVERED, raw, None, None, pages))
            elif disposition == "FAIL":
                permanent = PERMANENT_OUTCOMES.get(outcome)
                reason = permanent or f"failed (outcome {outcome or '?'}, {item.get('Attempts', '?')} attempt(s))"
                updates.append(
                    StatusUpdate(
                        number,
                        Status.FAILED,
                        raw,
                        reason,
                        permanent is None,
                        pages,
                        failure=OUTCOME_CLASSES.get(outcome, FailureClass.UNKNOWN),
                    )
                )
            else:
                # Neither SENT nor FAIL (or a disposition we do not know) is still open: polling goes on, nothing is
                # retried, so an unknown word can never cause a second fax.
                updates.append(StatusUpdate(number, Status.QUEUED, raw))
        return updates

    def status(self, job: JobRef) -> list[StatusUpdate]:
        # JobItems can only be filtered by TrackingID: a job recorded without one cannot be asked about.
        if job.reference is None:
            return []
        # Only this job's items: one TrackingID can name more than one job (the same attempt tried again after a
        # crash keeps its reference), and each job's record must get its own statuses.
        wanted = {str(job.job_id)}
        return self._updates([i for i in self._items(job.reference) if str(i.get("JobNumber")) in wanted])

    def find(self, submission: Submission, since: datetime | None = None) -> Lookup:
        response = self.call(
            "GET", "/JobSummaries", params={"filterTid": submission.reference}, auth=self._basic_auth(), sends=False
        )
        # Anything but a list of summaries decides nothing (an empty list of the right shape does).
        jobs = self.read(_Summaries, self.json(response, sends=False), "the job summaries").root
        if not jobs:
            return Lookup(True, (), f"no job with TrackingID {submission.reference}")
        found = [Receipt(job_id=str(j.JobNumber)) for j in jobs]
        items = self._items(submission.reference)
        # Statuses only when one job matched: with several, which items belong to which job is not known here.
        if len(found) == 1:
            found = [Receipt(job_id=found[0].job_id, updates=tuple(self._updates(items)))]
        return Lookup(True, found, f"job {', '.join(r.job_id for r in found)} has TrackingID {submission.reference}")
