"""FAX.PLUS v3 (seed 002): upload each file, then one outbox request for all recipients.

The official client (``faxplus-api`` on PyPI, generated from FAX.PLUS' OpenAPI document) is the contract:
the tests validate every body sent here with its request models and parse every simulator answer with its
response models. Facts, from the seed and that client:

* Files are uploaded with ``POST /accounts/{user}/files?format=pdf|tiff`` (multipart ``fax_file``), which
  answers a path; the same upload serves every job of the run.
* ``POST /accounts/{user}/outbox`` takes ``from``, ``to[]``, ``files[]``, ``comment{text}`` (our client
  reference), ``send_time`` (``YYYY-MM-DD HH:MM:SS +ZZZZ``), ``options.retry{count 0-3, delay 0-30 min}``
  (``RetryOptions``) and ``return_ids: true`` (without it no ids come back) → 201
  ``{"ids": {destination: outbox id}}``. A fax has an outbox id until it is sent, then a fax id.
* ``GET /accounts/{user}/outbox`` answers ``{"records": [Outbox]}`` (``OutboxList``; an entry carries
  ``uid``, ``page_count`` and ``comment{text}``). ``GET /accounts/{user}/faxes?category=sent`` answers
  ``{"data": {"records": [Fax]}}`` (``FaxList``/``FaxListData``), one record per destination, *paged*:
  ``limit`` 1-50 and ``offset``, windowed by ``after``/``before`` (``YYYY-MM-DD HH:MM:SS``). In a sent
  record ``comment`` is a plain string, not ``{text}``.
* There is no search by comment: a lost answer is found by reading the whole outbox, then every page of
  the sent list since the intent, and matching our reference. Only when both were read to the end is the
  job "not found"; an answer of another shape or a list cut short decides nothing.
* Statuses are the client's ``OutboxStatus`` and ``FaxStatus`` enums, each mapped below; a value outside
  them is kept raw and classed ``unknown``. ``insufficient_credit`` is final and an account problem.
* ``DELETE /accounts/{user}/outbox/{id}`` cancels before sending; there is no retry endpoint.
* Limits: ≤ 10 files, ≤ 150 MB in all, ≤ 4,000 destinations. Sending answered 500 until an account
  was on a plan with API access: a 500 on send is an unknown outcome like any other, never a resend.

Assumed (not published): the ``after`` window is read as UTC, so the lookup starts a day before the
intent; the sent list is read at most ``MAX_SENT_PAGES`` pages deep per call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from faxops.clock import parse_iso
from faxops.domain import Document, FailureClass, Receipt, Sender, Status, StatusUpdate, Submission
from faxops.errors import OutcomeUnknownError, Problem
from faxops.fields import SecretRef, resolve_secret
from faxops.providers.base import (
    BadPush,
    JobRef,
    Lookup,
    ProviderContext,
    ProviderSettings,
    PushedUpdate,
    push_json,
    push_number,
)
from faxops.providers.http import HttpProvider, HttpSettings

MAX_TOTAL_BYTES = 150 * 1024 * 1024
PAGE_SIZE = 50  # the API's largest ``limit``
MAX_SENT_PAGES = 200  # 10,000 sent faxes per lookup: deeper than that, a lookup decides nothing
_B, _N, _X = FailureClass.BUSY, FailureClass.NO_ANSWER, FailureClass.INVALID_NUMBER
_D, _U = FailureClass.DOCUMENT, FailureClass.UNKNOWN

#: ``OutboxStatus``: every value of the official client's enum
OUTBOX_STATUS: dict[str, Status] = {
    "submitted": Status.QUEUED,
    "converting": Status.QUEUED,
    "scheduled_for_sending": Status.QUEUED,
    "sending": Status.SENDING,
}
#: ``FaxStatus``: every value of the official client's enum -> (failure class, retryable); None = delivered.
#: The words are FAX.PLUS' own (apidoc.fax.plus/concepts/fax): "retry" where it says retry.
FAX_STATUS: dict[str, tuple[FailureClass, bool | None] | None] = {
    "success": None,
    "partially_sent": (_U, None),  # the call dropped after the first pages
    "partially_received": (_U, None),  # inbound only; listed for completeness
    "insufficient_credit": (FailureClass.ACCOUNT, False),
    "failed": (_U, True),
    "failed_internal_process_error": (_U, True),
    "failed_user_busy": (_B, True),
    "failed_no_answer": (_N, True),
    "failed_unallocated_number": (_X, False),
    "failed_office_converter_issue": (_D, False),
    "failed_separate_file_pages_issue": (_D, False),
    "failed_render_header_issue": (_D, False),
    "failed_invalid_number_format": (_X, False),
    "failed_mimetype_not_supported": (_D, False),
    "failed_destination_not_supported": (_X, False),  # a special service number, or not in the plan
    "failed_image_preparation": (_D, False),
    "failed_to_send": (_U, True),  # "System was busy. Try again later."
    "failed_normal_temporary_failure": (_U, True),
    "failed_unknown_converter_issue": (_D, False),
    "failed_normal_clearing": (_B, True),  # "Destination was busy."
    "failed_convert_to_tiff_issue": (_D, False),
    "failed_fs_49": (_U, None),  # undocumented switch codes
    "failed_fs_2": (_U, None),
}


class FaxPlusSettings(HttpSettings):
    """FAX.PLUS REST API v3."""

    type: Literal["faxplus"]
    base_url: str = Field(default="https://restapi.fax.plus/v3", pattern=r"^https?://")
    token: SecretRef = Field(description="Personal access token (Bearer).")
    user_id: str = Field(default="self", description="Account whose number sends; 'self' is the token's user.")
    # RetryOptions in the API: count 0-3, delay 0-30 minutes; the API refuses anything else.
    redial_count: int | None = Field(default=None, ge=0, le=3, description="FAX.PLUS' own redials (0-3).")
    redial_delay: int | None = Field(default=None, ge=0, le=30, description="Minutes between FAX.PLUS' redials (0-30).")


class _Loose(BaseModel):
    """An answer record: fields faxops reads are checked, the others ignored."""

    model_config = ConfigDict(extra="ignore")


class _Comment(_Loose):
    text: str = ""


class OutboxEntry(_Loose):
    """An ``Outbox`` record: a fax not sent yet."""

    id: str
    uid: str
    to: list[str]
    status: str
    comment: _Comment | None = None
    page_count: int | None = None


class OutboxList(_Loose):
    records: list[OutboxEntry]


class SentFax(_Loose):
    """A ``Fax`` record of the sent list: one destination."""

    id: str
    to: str
    status: str
    comment: str = ""  # a plain string here, unlike the outbox payload's {text}
    pages: int | None = None
    cost: float | None = None
    duration: int | None = None
    start_time: str | None = None


class _FaxListData(_Loose):
    records: list[SentFax]


class FaxList(_Loose):
    data: _FaxListData


def map_fax_status(raw: str) -> tuple[Status, bool | None]:
    """faxops status and retryability of an ``OutboxStatus`` or ``FaxStatus`` value."""
    if raw in OUTBOX_STATUS:
        return OUTBOX_STATUS[raw], None
    if raw in FAX_STATUS:
        known = FAX_STATUS[raw]
        return (Status.DELIVERED, None) if known is None else (Status.FAILED, known[1])
    return Status.FAILED, None  # a status the client does not know: kept raw, classed unknown


def fax_failure(raw: str) -> FailureClass | None:
    """The failure class of a ``FaxStatus`` value (``unknown`` for a value outside the enum)."""
    if raw in OUTBOX_STATUS:
        return None
    known = FAX_STATUS.get(raw, (FailureClass.UNKNOWN, None))
    return None if known is None else known[0]


def _update(number: str, raw: str, pages: int | None, provider_id: str | None, **extra: Any) -> StatusUpdate:
    status, retryable = map_fax_status(raw)
    failure = fax_failure(raw) if status == Status.FAILED else None
    reason = None if status != Status.FAILED else raw.replace("_", " ")
    return StatusUpdate(
        number, status, raw, reason, retryable, pages, provider_id=provider_id, failure=failure, **extra
    )


class FaxPlusProvider(HttpProvider):
    """FAX.PLUS v3."""

    name = "faxplus"
    push_format = "FAX.PLUS fax_sent"
    push_before_ids = True  # the outbox id comes back at submission; the fax id only with its status
    cancels_whole_job = True
    can_schedule = True
    settings_model = FaxPlusSettings
    max_recipients_per_job = 4000
    max_documents = 10
    max_total_bytes = 150 * 1024 * 1024  # the API answers 413 above 150 MB of files in one request
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
        # FAX.PLUS sends only from a number of the account (`from` is required): without one, every job of the run
        # would be refused.
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

    def outbox_body(self, submission: Submission, paths: list[str]) -> dict[str, Any]:
        """The ``PayloadOutbox`` of one job."""
        body: dict[str, Any] = {
            "from": submission.sender.number,
            "to": [r.number for r in submission.recipients],
            "files": paths,
            "comment": {"text": submission.reference},
            # Without return_ids the answer has no id at all, and every send would need a lookup by comment.
            "return_ids": True,
        }
        if submission.send_at is not None:
            body["send_time"] = submission.send_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000")
        # Redials happen inside FAX.PLUS' one job (one id, one status): faxops sees no second send to reconcile.
        if self.faxplus.redial_count is not None:
            delay = 15 if self.faxplus.redial_delay is None else self.faxplus.redial_delay
            body["options"] = {"retry": {"count": self.faxplus.redial_count, "delay": delay}}
        return body

    def submit(self, submission: Submission) -> Receipt:
        paths = [self._upload(d) for d in submission.documents]
        body = self.outbox_body(submission, paths)
        response = self.call("POST", self._account("outbox"), json=body, sends=True)
        data = self.json(response, sends=True)
        ids = data.get("ids") if isinstance(data, dict) else None
        if not isinstance(ids, dict) or not ids:
            raise OutcomeUnknownError(f"answer without ids: {str(data)[:200]}", provider=self.name)
        ids = {str(k): str(v) for k, v in ids.items()}
        distinct = sorted(set(ids.values()))
        return Receipt(job_id=distinct[0] if len(distinct) == 1 else ",".join(distinct), recipient_ids=ids)

    # --- reading the outbox and the sent list ---------------------------------------------------

    def outbox(self) -> list[OutboxEntry]:
        """Every fax not sent yet."""
        response = self.call("GET", self._account("outbox"), sends=False)
        return self.read(OutboxList, self.json(response, sends=False), "the outbox list").records

    def sent_pages(self, after: datetime | None = None) -> Iterator[list[SentFax]]:
        """The sent list, one page at a time (the API answers at most 50 records per request)."""
        params: dict[str, Any] = {"category": "sent", "limit": PAGE_SIZE}
        if after is not None:
            params["after"] = after.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        for page in range(MAX_SENT_PAGES):
            response = self.call(
                "GET", self._account("faxes"), params={**params, "offset": page * PAGE_SIZE}, sends=False
            )
            records = self.read(FaxList, self.json(response, sends=False), "the sent fax list").data.records
            yield records
            if len(records) < PAGE_SIZE:
                return

    def _read_all(
        self, reference: str, numbers: Sequence[str], after: datetime | None
    ) -> tuple[list[OutboxEntry], list[SentFax], bool]:
        """Our reference's outbox entries and sent faxes, and whether the sent list was read to its end.

        The outbox is read first: a fax that leaves it while we read is then in the sent list."""
        outbox = [e for e in self.outbox() if e.comment is not None and e.comment.text == reference]
        wanted = set(numbers) - {n for e in outbox for n in e.to}
        sent: list[SentFax] = []
        complete = False
        for records in self.sent_pages(after):
            sent.extend(r for r in records if r.comment == reference)
            if len(records) < PAGE_SIZE:
                complete = True
            elif after is None and wanted <= {r.to for r in sent}:
                break  # status of known faxes: no need to read older pages
        return outbox, sent, complete

    def _updates(self, numbers: Sequence[str], outbox: list[OutboxEntry], sent: list[SentFax]) -> list[StatusUpdate]:
        latest: dict[str, StatusUpdate] = {}
        candidates: list[StatusUpdate] = []
        for entry in outbox:
            candidates += [_update(n, entry.status, entry.page_count, None) for n in entry.to if n in numbers]
        for fax in sent:
            if fax.to in numbers:
                cost = None if fax.cost is None else f"{fax.cost:g}"
                duration = None if fax.duration is None else float(fax.duration)
                candidates.append(_update(fax.to, fax.status, fax.pages, fax.id, cost=cost, duration=duration))
        for update in candidates:
            # A number can be in the outbox and the sent list at once while FAX.PLUS moves it: the furthest status
            # wins, so a read during the move never takes a delivered fax back to queued.
            if update.number not in latest or update.status.rank >= latest[update.number].status.rank:
                latest[update.number] = update
        return list(latest.values())

    def status(self, job: JobRef) -> list[StatusUpdate]:
        if job.reference is None:
            return []
        outbox, sent, _ = self._read_all(job.reference, job.numbers, None)
        return self._updates(job.numbers, outbox, sent)

    def cancel(self, job: JobRef) -> list[StatusUpdate]:
        # Only outbox entries can be deleted; a fax already in the sent list is past cancelling, and the DELETE
        # answers 404, which raises instead of being recorded as cancelled.
        for outbox_id in sorted(set(job.recipient_ids.values()) or {job.job_id}):
            self.call("DELETE", self._account(f"outbox/{outbox_id}"), sends=False)
        return [StatusUpdate(n, Status.CANCELED, "deleted_from_outbox", "canceled") for n in job.numbers]

    def find(self, submission: Submission, since: datetime | None = None) -> Lookup:
        numbers = [r.number for r in submission.recipients]
        # A day's margin: the API does not say in which time zone it reads ``after``.
        after = None if since is None else since - timedelta(days=1)
        outbox, sent, complete = self._read_all(submission.reference, numbers, after)
        if not outbox and not sent:
            if not complete:
                return Lookup(
                    False,
                    (),
                    f"the sent list is longer than {MAX_SENT_PAGES * PAGE_SIZE} faxes since the intent; "
                    f"comment {submission.reference} was not among them",
                )
            return Lookup(
                True, (), f"no outbox entry and no sent fax (every page read) has comment {submission.reference}"
            )
        # Sent faxes carry their fax id (one per destination), entries still in the outbox their outbox id.
        per_number = {n: e.id for e in outbox for n in e.to}
        per_number.update({f.to: f.id for f in sent})
        ids = sorted(set(per_number.values()))
        receipt = Receipt(
            job_id=ids[0] if len(ids) == 1 else ",".join(ids),
            recipient_ids=per_number,
            updates=tuple(self._updates(numbers, outbox, sent)),
        )
        where = f"{len(outbox)} outbox entr{'y' if len(outbox) == 1 else 'ies'} and {len(sent)} sent fax(es)"
        return Lookup(True, [receipt], f"{where} with comment {submission.reference}")

    @classmethod
    def parse_push(cls, body: bytes, content_type: str) -> list[PushedUpdate]:
        """A FAX.PLUS ``fax_sent`` webhook: one recipient of one outbox entry."""
        doc = push_json(body)
        hook, data = doc.get("hook") or {}, doc.get("data")
        if not isinstance(data, dict) or hook.get("event", "fax_sent") != "fax_sent":
            raise BadPush("expected a FAX.PLUS fax_sent event with a data object")
        raw = str(data.get("status") or "")
        status, retryable = map_fax_status(raw)
        # The docs show from/to; the SDK from_number/to_number.
        number = push_number(data.get("to") or data.get("to_number"))
        fax_id = str(data.get("id") or "")
        if not fax_id or not raw:
            raise BadPush("data.id and data.status are required")
        ids = tuple(dict.fromkeys(i for i in (fax_id, str(hook.get("id") or "")) if i))
        update = StatusUpdate(
            number,
            status,
            raw,
            None if status == Status.DELIVERED else raw.replace("_", " "),
            retryable,
            data.get("pages") if isinstance(data.get("pages"), int) else None,
            parse_iso(data.get("start_time")),
            provider_id=fax_id,
            failure=fax_failure(raw) if status == Status.FAILED else None,
            cost=str(data["cost"]) if data.get("cost") is not None else None,
        )
        return [(ids, update)]
