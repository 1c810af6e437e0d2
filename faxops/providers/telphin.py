"""Telphin PBX API (seed 003): ``POST /extension/{id}/fax/out/``, one recipient and one file per call.

Facts and assumptions:

* OAuth2 client credentials at ``/oauth/token`` on the API host; the token is sent as a Bearer header
  and renewed when it expires or is refused.
* The file is one TIFF or PDF of at most 10 MB. A campaign with several documents is sent as one PDF
  that faxops assembles (pypdf for PDFs, Pillow for TIFF pages), so every recipient gets the same fax.
* ``dst_num`` format is not specified beyond the seed's local example; faxops sends the international
  number without ``+`` by default (``number_format: digits``), or E.164 with ``number_format: e164``.
* Status ``GET …/fax/out/{id}``: ready_to_send, sending, sent, failed, canceled, error (no reason, pages
  or cost). ``PUT …/fax/out/{id}?action=cancel|retry``.
* No client reference: a lost answer is found by listing the extension's faxes and matching the number
  and a time window. One match settles it, none proves it was not sent, several are held for a person.
  Assumed: the list is the whole list (the seed documents no paging); if it ever answers a page
  (``{"results", "next"}``) or another shape, or a matching fax's time cannot be read, nothing is decided.
* Assumed: errors are ``{"status": code, "message"}`` like the documented 429 ``rate_limit_exceeded``;
  the token endpoint sits at ``/oauth/token`` on the API host (OAuth2 client credentials, form-encoded).
* Rate limit per hour for the whole account: 429 with ``X-RateLimit-*`` headers (no ``Retry-After``).
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, RootModel

from faxops import clock
from faxops.domain import Document, Receipt, Sender, Status, StatusUpdate, Submission
from faxops.errors import AuthError, OutcomeUnknownError, Problem
from faxops.fields import SecretRef, resolve_secret
from faxops.providers.base import JobRef, Lookup, ProviderContext, ProviderSettings
from faxops.providers.http import HttpProvider, HttpSettings

MAX_FILE_BYTES = 10 * 1024 * 1024
STATUS_MAP: dict[str, tuple[Status, bool | None]] = {
    "ready_to_send": (Status.QUEUED, None),
    "sending": (Status.SENDING, None),
    "sent": (Status.DELIVERED, None),
    "failed": (Status.FAILED, True),  # Telphin gives no reason; "failed" may be sent again
    "canceled": (Status.CANCELED, False),
    # "error" is the API's own fault, not the line's: whether sending again is safe is left to the retry rules.
    "error": (Status.FAILED, None),
}


class _Fax(BaseModel):
    """A sent fax as the list shows it (the fields the lookup reads)."""

    model_config = ConfigDict(extra="ignore")
    id: int | str
    dst_num: str
    datetime: str | None = None
    status: str | None = None


_FaxList = RootModel[list[_Fax]]


class TelphinSettings(HttpSettings):
    """Telphin PBX API (and operators running the same API under their own host)."""

    type: Literal["telphin"]
    base_url: str = Field(default="https://apiproxy.telphin.ru/api/ver1.0", pattern=r"^https?://")
    token_url: str | None = Field(default=None, description="Default: /oauth/token on the API host.")
    client_id: SecretRef
    client_secret: SecretRef
    extension_id: int = Field(ge=1, description="Id of the fax extension that sends.")
    number_format: Literal["digits", "e164"] = "digits"
    timezone: str = Field(default="UTC", description="Time zone of the `datetime` fields the API returns.")


def merge_documents(documents: Sequence[Document]) -> tuple[bytes, str]:
    """One file for APIs that take one: the document itself, or all of them as one PDF."""
    if len(documents) == 1 and documents[0].format in ("pdf", "tiff"):
        return documents[0].read_bytes(), documents[0].format
    from PIL import Image, ImageSequence
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for doc in documents:
        if doc.format == "pdf":
            writer.append(PdfReader(doc.path))
        else:
            buffer = io.BytesIO()
            with Image.open(doc.path) as image:
                # Every frame, not just the first: a multi-page TIFF is one document, and dropping pages would fax
                # half of it. One bit per pixel is all a fax carries, and keeps the merged PDF small.
                frames = [frame.convert("1") for frame in ImageSequence.Iterator(image)]
            frames[0].save(buffer, format="PDF", save_all=True, append_images=frames[1:], resolution=200)
            buffer.seek(0)
            writer.append(PdfReader(buffer))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue(), "pdf"


class TelphinProvider(HttpProvider):
    """Telphin PBX fax API."""

    name = "telphin"
    settings_model = TelphinSettings
    max_recipients_per_job = 1
    document_formats = frozenset({"pdf", "tiff"})
    max_total_bytes = 10 * 1024 * 1024  # one file of at most 10 MB per fax: the documents are merged into it
    reference_field = None
    lookup = "listing"
    can_cancel = True
    can_retry = True

    def __init__(self, settings: ProviderSettings, context: ProviderContext) -> None:
        super().__init__(settings, context)
        assert isinstance(settings, TelphinSettings)
        self.telphin = settings
        self._token: tuple[str, float] | None = None
        self._file: tuple[bytes, str] | None = None

    def check(self, documents: Sequence[Document], sender: Sender | None = None) -> list[Problem]:
        problems = super().check(documents, sender)
        total = sum(d.size for d in documents)
        # The sum of the inputs, checked before anything is sent: the merged file is only built at the first submit,
        # and finding it too large there would stop a run part-way through.
        if not problems and total > MAX_FILE_BYTES:
            problems.append(
                Problem(
                    f"telphin takes one file of at most 10 MB; these documents make {total} bytes", field="documents"
                )
            )
        return problems

    # --- auth -------------------------------------------------------------------------------------

    def _token_url(self) -> str:
        if self.telphin.token_url:
            return self.telphin.token_url
        parts = urlsplit(self.telphin.base_url)
        return f"{parts.scheme}://{parts.netloc}/oauth/token"

    def auth_headers(self) -> dict[str, str]:
        if self._token is None or self._token[1] <= time.monotonic():
            base = self.context.base_dir
            response = self.client.post(
                self._token_url(),
                data={
                    "grant_type": "client_credentials",
                    "client_id": resolve_secret(self.telphin.client_id, base, identifier=True),
                    "client_secret": resolve_secret(self.telphin.client_secret, base),
                },
            )
            # An OAuth server answers bad client credentials with 400 invalid_client as often as with 401: both mean
            # the run must stop, not that this one fax was rejected.
            if response.status_code in (400, 401, 403):
                code, message = self.error_details(response)
                raise AuthError(message, provider=self.name, code=code, http_status=response.status_code)
            if not response.is_success:
                raise self._failure(response, sends=False)[0]
            token = self.json(response, sends=False)
            expires = float(token.get("expires_in", 3600))
            # Renewed a minute early so that a token never expires between this check and the call; monotonic time so
            # that a clock step on the host cannot keep a dead token alive.
            self._token = (str(token["access_token"]), time.monotonic() + max(30.0, expires - 60))
        return {"Authorization": f"Bearer {self._token[0]}"}

    # --- calls ------------------------------------------------------------------------------------

    def _out(self, suffix: str = "") -> str:
        return f"/extension/{self.telphin.extension_id}/fax/out/{suffix}"

    def _dst(self, number: str) -> str:
        # The seed's only example is a bare local number, so the form is a setting: digits by default, E.164
        # where an operator's gateway wants the +.
        return number if self.telphin.number_format == "e164" else number.lstrip("+")

    def submit(self, submission: Submission) -> Receipt:
        (recipient,) = submission.recipients
        # Merged once per run and reused: every recipient must get byte-for-byte the same fax, and merging a large PDF
        # per call would cost more than the call itself.
        if self._file is None:
            self._file = merge_documents(list(submission.documents))
        data, fmt = self._file
        filename = f"fax.{'tif' if fmt == 'tiff' else 'pdf'}"
        content_type = "image/tiff" if fmt == "tiff" else "application/pdf"
        response = self.call(
            "POST",
            self._out(),
            sends=True,
            data={"dst_num": self._dst(recipient.number)},
            files={"file": (filename, data, content_type)},
        )
        body = self.json(response, sends=True)
        if not isinstance(body, dict) or body.get("id") is None:
            raise OutcomeUnknownError(f"answer without an id: {str(body)[:200]}", provider=self.name)
        return Receipt(job_id=str(body["id"]), updates=tuple(self._updates(recipient.number, body)))

    def _updates(self, number: str, body: dict[str, Any]) -> list[StatusUpdate]:
        raw = str(body.get("status") or "")
        status, retryable = STATUS_MAP.get(raw, (Status.QUEUED, None))
        reason = None if status in (Status.QUEUED, Status.SENDING, Status.DELIVERED) else f"telphin status {raw}"
        return [StatusUpdate(number, status, raw, reason, retryable)]

    def status(self, job: JobRef) -> list[StatusUpdate]:
        body = self.json(self.call("GET", self._out(job.job_id), sends=False), sends=False)
        return self._updates(job.numbers[0], body)

    def cancel(self, job: JobRef) -> list[StatusUpdate]:
        body = self.json(self.call("PUT", self._out(job.job_id), params={"action": "cancel"}, sends=False), sends=False)
        return self._updates(job.numbers[0], body)

    def retry(self, job: JobRef) -> list[StatusUpdate]:
        body = self.json(self.call("PUT", self._out(job.job_id), params={"action": "retry"}, sends=True), sends=True)
        return self._updates(job.numbers[0], body)

    def find(self, submission: Submission, since: datetime | None = None) -> Lookup:
        (recipient,) = submission.recipients
        listed = self.json(self.call("GET", self._out(), sends=False), sends=False)
        # The seed shows a list; a paged {"results": [...], "next": ...} answer is read too. An answer of
        # another shape, or a page that says more follow, proves nothing absent.
        if isinstance(listed, dict) and listed.get("next"):
            return Lookup(False, (), "the fax list is paged and only its first page was read")
        rows = listed.get("results") if isinstance(listed, dict) else listed
        faxes = [fax.model_dump() for fax in self.read(_FaxList, rows, "the list of sent faxes").root]
        zone = ZoneInfo(self.telphin.timezone)
        # Five minutes of slack for the provider's clock: its `datetime` is its own, not ours.
        earliest = (since or clock.now() - timedelta(days=1)) - timedelta(minutes=5)
        matches = []
        for fax in faxes:
            if str(fax.get("dst_num")) != self._dst(recipient.number):
                continue
            try:
                when = datetime.strptime(str(fax.get("datetime")), "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
            except ValueError:
                # A fax to this number at an unreadable time might be this one: a person decides.
                return Lookup(
                    False, (), f"fax {fax['id']} to {fax['dst_num']} has an unreadable time {fax['datetime']!r}"
                )
            if when >= earliest:
                matches.append(fax)
        window = f"since {earliest.isoformat(timespec='seconds')}"
        # Only one match may settle it: with two faxes to the same number in the window, picking one could mark a send
        # as done that never happened, or double-count one that did.
        if len(matches) == 1:
            fax = matches[0]
            return Lookup(
                True,
                [Receipt(str(fax["id"]), updates=tuple(self._updates(recipient.number, fax)))],
                f"fax {fax['id']} to {fax['dst_num']} at {fax.get('datetime')} ({window})",
            )
        if not matches:
            return Lookup(True, (), f"no fax to {self._dst(recipient.number)} {window} among {len(faxes)} listed")
        ids = ", ".join(str(f["id"]) for f in matches)
        return Lookup(
            False,
            (),
            f"{len(matches)} faxes to {self._dst(recipient.number)} {window} ({ids}): "
            "which one is this send cannot be told",
        )
