"""VoipNow UAPI faxes (seed 001): ``POST /uapi/faxes/{userId}/{extension}``, multipart, Bearer token.

Facts and assumptions:

* The body is multipart: one ``files`` part per document (jpg, tif, pdf, txt) and a ``request`` part
  with ``{"recipients": [...]}``. The answer is ``{id, uid}``; 204 means nothing was sent.
* Errors are ``{"error": {"code", "message"}}`` with ``fx_recipients_invalid``, ``fx_file_invalid``,
  ``fx_max_files_reached``, ``internal_server_error``.
* Recipients and files per fax are capped by the server's administrator (defaults 5 and 5, at most
  999 and 10): ``max_recipients`` and ``max_files`` must match the server.
* There is **no** status, list, cancel or lookup endpoint. faxops records that the service accepted a
  fax, and says so ("accepted; delivery not reported by this provider"); an unknown outcome cannot be
  settled automatically and is held for a person (``faxops resolve``).
* Numbers are sent as international digits without ``+`` (the seed's example is a bare local number).
* Assumed (the seed is silent): a refused token answers 401 with the same ``{"error": {code, message}}``
  body; ``userId`` is ``@me``, ``@viewer``, ``@owner`` or a numeric user id, as the seed lists them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Literal
from urllib.parse import quote

from pydantic import Field

from faxops.domain import Document, Receipt, Sender, Status, StatusUpdate, Submission
from faxops.errors import OutcomeUnknownError, Problem, RejectedError
from faxops.fields import SecretRef, resolve_secret
from faxops.providers.base import Lookup, ProviderContext, ProviderSettings
from faxops.providers.http import HttpProvider, HttpSettings

_CONTENT_TYPES = {"pdf": "application/pdf", "tiff": "image/tiff", "jpeg": "image/jpeg", "txt": "text/plain"}


class VoipNowSettings(HttpSettings):
    """VoipNow unified API (UAPI)."""

    type: Literal["voipnow"]
    base_url: str = Field(pattern=r"^https?://", description="Your VoipNow server, e.g. https://voip.example.com")
    token: SecretRef = Field(description="OAuth2 access token of the app (Bearer).")
    user_id: str = Field(default="@me", description="@me, @viewer, @owner or a user id.")
    extension: str = Field(min_length=1, description="Extension number that sends, e.g. 0003*210.")
    max_recipients: int = Field(default=5, ge=1, le=999, description="The server's recipients-per-fax limit.")
    max_files: int = Field(default=5, ge=1, le=10, description="The server's files-per-fax limit.")


class VoipNowProvider(HttpProvider):
    """VoipNow UAPI faxes. Acceptance only: the API reports no delivery."""

    name = "voipnow"
    settings_model = VoipNowSettings
    max_recipients_per_job = 999
    document_formats = frozenset({"pdf", "tiff", "jpeg", "txt"})
    reference_field = None
    lookup = "none"
    reports_status = False

    def __init__(self, settings: ProviderSettings, context: ProviderContext) -> None:
        super().__init__(settings, context)
        assert isinstance(settings, VoipNowSettings)
        self.voipnow = settings
        # Per instance, not per class: the files-per-fax cap is the administrator's choice on each server.
        self.max_documents = settings.max_files  # type: ignore[misc]

    # The server's own cap, not the API's 999: a batch above it is refused whole, and the administrator's default is
    # 5.
    def job_size(self) -> int:
        return self.voipnow.max_recipients

    def check(self, documents: Sequence[Document], sender: Sender | None = None) -> list[Problem]:
        problems = super().check(documents, sender)
        if len(documents) > self.voipnow.max_files:
            problems.append(
                Problem(
                    f"voipnow takes at most {self.voipnow.max_files} files per fax (max_files), got {len(documents)}",
                    field="documents",
                )
            )
        return problems

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {resolve_secret(self.voipnow.token, self.context.base_dir)}"}

    def submit(self, submission: Submission) -> Receipt:
        s = self.voipnow
        # Quoted, but keeping '@' (in @me) and '*' (in 0003*210) as the seed writes them in the path.
        url = f"/uapi/faxes/{quote(s.user_id, safe='@')}/{quote(s.extension, safe='*')}"
        files = [
            ("files", (d.name, d.read_bytes(), _CONTENT_TYPES.get(d.format, "application/octet-stream")))
            for d in submission.documents
        ]
        request = json.dumps({"recipients": [r.number.lstrip("+") for r in submission.recipients]})
        files.append(("request", ("request.json", request.encode(), "application/json")))
        response = self.call("POST", url, files=files, sends=True)
        # 204 answers a request that was understood and sends nothing: recorded as rejected, never as unknown, so the
        # recipient is not held for a person to look into.
        if response.status_code == 204:
            raise RejectedError("the service says there are no faxes to be sent", provider=self.name, http_status=204)
        body = self.json(response, sends=True)
        if not isinstance(body, dict) or not body.get("id"):
            raise OutcomeUnknownError(f"answer without an id: {str(body)[:200]}", provider=self.name)
        note = "accepted; delivery not reported by this provider"
        return Receipt(
            job_id=str(body["id"]),
            # Queued for good: with no status API a recipient never becomes delivered here, and never failed either,
            # so nothing is ever retried on a guess.
            updates=tuple(StatusUpdate(r.number, Status.QUEUED, "accepted", note) for r in submission.recipients),
        )

    def find(self, submission: Submission, since: datetime | None = None) -> Lookup:
        # Undecided, never "not found": with no way to look, resending after a lost answer could fax twice.
        return Lookup(
            decided=False,
            evidence="VoipNow has no API to list or look up faxes: check the fax history in the VoipNow web "
            "interface, then record what you find with `faxops resolve`",
        )
