"""FAX.PLUS v3 (seed 002): upload each file, then one outbox request for all recipients.

Facts and assumptions:

* Files are uploaded with ``POST /accounts/{user}/files?format=pdf|tiff`` (multipart ``fax_file``), which
  answers a path; the same upload serves every job of the run.
* ``POST /accounts/{user}/outbox`` takes ``from``, ``to[]``, ``files[]``, ``comment{text}`` (our client
  reference), ``send_time`` and ``return_ids: true`` (without it no ids come back) → 201
  ``{"ids": {destination: outbox id}}``. A fax has an outbox id until it is sent, then a fax id.
* There is no search by comment: a lost answer is found by listing the outbox and the sent faxes and
  matching our reference in ``comment``. Status comes from the same two lists.
* ``DELETE /accounts/{user}/outbox/{id}`` cancels before sending; there is no retry endpoint.
* Limits: ≤ 10 files, ≤ 150 MB in all, ≤ 4,000 destinations. Sending answered 500 until an account
  was on a plan with API access: a 500 on send is an unknown outcome like any other, never a resend.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field

from faxops.domain import Document, Receipt, Sender, Status, StatusUpdate, Submission
from faxops.errors import OutcomeUnknownError, Problem
from faxops.fields import SecretRef, resolve_secret
from faxops.providers.base import JobRef, Lookup, ProviderContext, ProviderSettings
from faxops.providers.http import HttpProvider, HttpSettings

MAX_TOTAL_BYTES = 150 * 1024 * 1024
_OUTBOX = {
    "submitted": Status.QUEUED,
    "converting": Status.QUEUED,
    "scheduled_for_sending": Status.QUEUED,
    "sending": Status.SENDING,
}
_RETRYABLE = ("busy", "no_answer", "not_fax", "timeout")


class FaxPlusSettings(HttpSettings):
    """FAX.PLUS REST API v3."""

    type: Literal["faxplus"]
    base_url: str = Field(default="https://restapi.fax.plus/v3", pattern=r"^https?://")
    token: SecretRef = Field(description="Personal access token (Bearer).")
    user_id: str = Field(default="self", description="Account whose number sends; 'self' is the token's user.")
    redial_count: int | None = Field(default=None, ge=0, le=10, description="FAX.PLUS' own redials (options.retry).")
    redial_delay: int | None = Field(default=None, ge=1, description="Minutes between FAX.PLUS' redials.")


def map_fax_status(raw: str) -> tuple[Status, bool | None]:
    if raw in _OUTBOX:
        return _OUTBOX[raw], None
    if raw == "success":
        return Status.DELIVERED, None
    if raw.startswith("failed") or raw == "partially_sent":
        return Status.FAILED, any(word in raw for word in _RETRYABLE) or None
    return Status.QUEUED, None


class FaxPlusProvider(HttpProvider):
    """FAX.PLUS v3."""

    name = "faxplus"
    cancels_whole_job = True
    can_schedule = True
    settings_model = FaxPlusSettings
    max_recipients_per_job = 4000
    max_documents = 10
    document_formats = frozenset({"pdf", "tiff"})
    reference_field = "comment.text"
    lookup = "reference"
    can_cancel = True

    def __init__(self, settings: ProviderSettings, context: ProviderContext) -> None:
        super().__init__(settings, context)
        assert isinstance(settings, FaxPlusSettings)
        self.faxplus = settings
        self._uploaded: dict[str, str] = {}  # document sha256 -> FAX.PLUS path

    def check(self, documents: Sequence[Document], sender: Sender | None = None) -> list[Problem]:
        problems = super().check(documents, sender)
        if sum(d.size for d in documents) > MAX_TOTAL_BYTES:
            problems.append(Problem("faxplus takes at most 150 MB of documents per fax", field="documents"))
        if sender is None or not sender.number:
            problems.append(
                Problem("faxplus needs sender.number: the FAX.PLUS number the fax is sent from", field="sender")
            )
        return problems

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {resolve_secret(self.faxplus.token, self.context.base_dir)}"}

    def _account(self, suffix: str) -> str:
        return f"/accounts/{self.faxplus.user_id}/{suffix}"

    def _upload(self, document: Document) -> str:
        if document.sha256 not in self._uploaded:
            content_type = "application/pdf" if document.format == "pdf" else "image/tiff"
            # An upload creates nothing that is sent: repeating it after a failure is harmless.
            response = self.call(
                "POST",
                self._account("files"),
                params={"format": document.format},
                sends=False,
                files={"fax_file": (document.name, document.read_bytes(), content_type)},
            )
            self._uploaded[document.sha256] = str(self.json(response, sends=False)["path"])
        return self._uploaded[document.sha256]

    def submit(self, submission: Submission) -> Receipt:
        paths = [self._upload(d) for d in submission.documents]
        body: dict[str, Any] = {
            "from": submission.sender.number,
            "to": [r.number for r in submission.recipients],
            "files": paths,
            "comment": {"text": submission.reference},
            "return_ids": True,
        }
        if submission.send_at is not None:
            # The API reference gives the form "2020-01-01 00:00:00 +0000" (an assumption for other forms).
            body["send_time"] = submission.send_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000")
        if self.faxplus.redial_count is not None:
            body["options"] = {"retry": {"count": self.faxplus.redial_count, "delay": self.faxplus.redial_delay or 15}}
        response = self.call("POST", self._account("outbox"), json=body, sends=True)
        data = self.json(response, sends=True)
        ids = data.get("ids") if isinstance(data, dict) else None
        if not isinstance(ids, dict) or not ids:
            raise OutcomeUnknownError(f"answer without ids: {str(data)[:200]}", provider=self.name)
        ids = {str(k): str(v) for k, v in ids.items()}
        distinct = sorted(set(ids.values()))
        return Receipt(job_id=distinct[0] if len(distinct) == 1 else ",".join(distinct), recipient_ids=ids)

    def _records(self) -> list[dict[str, Any]]:
        """Outbox entries, then sent faxes, each tagged with where it was found."""
        out: list[dict[str, Any]] = []
        for url, params, where in (
            (self._account("outbox"), {}, "outbox"),
            (self._account("faxes"), {"category": "sent"}, "sent"),
        ):
            body = self.json(self.call("GET", url, params=params, sends=False), sends=False)
            for record in (body or {}).get("records", []) if isinstance(body, dict) else []:
                out.append({**record, "_where": where})
        return out

    def _updates_for(self, reference: str, numbers: Sequence[str], records: list[dict[str, Any]]) -> list[StatusUpdate]:
        latest: dict[str, StatusUpdate] = {}
        for record in records:
            comment = record.get("comment")
            text = comment.get("text") if isinstance(comment, dict) else comment
            if text != reference:
                continue
            destinations = record.get("to") or record.get("to_number") or []
            for number in [destinations] if isinstance(destinations, str) else destinations:
                if number not in numbers:
                    continue
                raw = str(record.get("status") or "")
                status, retryable = map_fax_status(raw)
                reason = None if status != Status.FAILED else raw.replace("_", " ")
                fax_id = str(record["id"]) if record.get("_where") == "sent" and record.get("id") else None
                update = StatusUpdate(number, status, raw, reason, retryable, record.get("pages"), provider_id=fax_id)
                if number not in latest or update.status.rank >= latest[number].status.rank:
                    latest[number] = update
        return list(latest.values())

    def status(self, job: JobRef) -> list[StatusUpdate]:
        if job.reference is None:
            return []
        return self._updates_for(job.reference, job.numbers, self._records())

    def cancel(self, job: JobRef) -> list[StatusUpdate]:
        for outbox_id in sorted(set(job.recipient_ids.values()) or {job.job_id}):
            self.call("DELETE", self._account(f"outbox/{outbox_id}"), sends=False)
        return [StatusUpdate(n, Status.CANCELED, "deleted_from_outbox", "canceled") for n in job.numbers]

    def find(self, submission: Submission, since: datetime | None = None) -> Lookup:
        records = self._records()
        numbers = [r.number for r in submission.recipients]
        mine = [r for r in records if (r.get("comment") or {}).get("text") == submission.reference]
        if not mine:
            return Lookup(
                True, (), f"no outbox entry or sent fax has comment {submission.reference} ({len(records)} listed)"
            )
        ids = sorted({str(r["id"]) for r in mine})
        # Sent faxes carry their fax id (one per destination), entries still in the outbox their outbox id.
        per_number = {}
        for record in mine:
            destinations = record.get("to") or []
            for number in [destinations] if isinstance(destinations, str) else destinations:
                per_number[str(number)] = str(record["id"])
        receipt = Receipt(
            job_id=ids[0] if len(ids) == 1 else ",".join(ids),
            recipient_ids=per_number,
            updates=tuple(self._updates_for(submission.reference, numbers, records)),
        )
        return Lookup(True, [receipt], f"{len(mine)} record(s) with comment {submission.reference}")
