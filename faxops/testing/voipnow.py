"""A loopback simulator of VoipNow's UAPI fax endpoint (seed 001). Like the real API: no status."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from faxops.testing.server import ApiError, Request, Response, Simulator

_ALLOWED = {"jpg", "jpeg", "tif", "tiff", "pdf", "txt"}


class VoipNowSimulator(Simulator):
    """``POST /uapi/faxes/{userId}/{extension}``, Bearer token, admin limits on recipients and files."""

    name = "voipnow"
    good_env: ClassVar[dict[str, str]] = {"VOIPNOW_TOKEN": "secret"}
    bad_env: ClassVar[dict[str, str]] = {"VOIPNOW_TOKEN": "expired"}
    submit_path = r"/uapi/faxes/.*"
    account_settings: ClassVar[dict[str, object]] = {"token": "${env:VOIPNOW_TOKEN}", "extension": "0003*210"}

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        transmit_seconds: float | None = None,
        token: str = "secret",
        # The server administrator's defaults, which a real server keeps unless changed: a client that assumes the
        # API's maxima (999 and 10) is refused here as it would be there.
        max_recipients: int = 5,
        max_files: int = 5,
    ) -> None:
        self.token = token
        self.max_recipients = max_recipients
        self.max_files = max_files
        self.next_id = 1
        super().__init__(host, port, transmit_seconds=transmit_seconds)

    def routes(self) -> list[tuple[str, str, Any]]:
        return [("POST", r"/uapi/faxes/(?P<user>[^/]+)/(?P<extension>[^/]+)", self.send)]

    def error(self, status: int, code: str, message: str) -> Response:
        return Response(status, {"error": {"code": code, "message": message}})

    def send(self, request: Request, user: str, extension: str) -> Response:
        if request.headers.get("Authorization", "") != f"Bearer {self.token}":
            raise ApiError(401, "unauthorized", "The access token is invalid")
        if user not in ("@me", "@viewer", "@owner") and not user.isdigit():
            raise ApiError(400, "fx_user_invalid", "userId: @me, @viewer, @owner or a user's id")
        if extension == "@self":
            raise ApiError(400, "fx_extension_invalid", "Extension cannot be set to @self")
        parts = request.form()
        files = [p for p in parts if p.name == "files"]
        requests = [p for p in parts if p.name == "request"]
        if not requests:
            raise ApiError(400, "fx_recipients_invalid", "Value supplied in the Recipients parameter is missing")
        try:
            recipients = json.loads(requests[0].data).get("recipients")
        except (ValueError, AttributeError):
            raise ApiError(400, "fx_recipients_invalid", "The request part is not valid JSON") from None
        if not isinstance(recipients, list) or not recipients or len(recipients) > self.max_recipients:
            raise ApiError(
                400,
                "fx_recipients_invalid",
                f"Recipients missing, invalid or more than the maximum of {self.max_recipients}",
            )
        # Checked before the empty case below: the seed's order, so a client sees the error a real server gives.
        if len(files) > self.max_files:
            raise ApiError(400, "fx_max_files_reached", "The number of files that can be sent was exceeded")
        if not files:
            # The seed's "nothing to send" answer: success without a body, which a client must not record as a fax.
            return Response(204)
        for part in files:
            if (part.filename or "").rpartition(".")[2].lower() not in _ALLOWED:
                raise ApiError(400, "fx_file_invalid", "Allowed file types are: jpg, tif, pdf and txt")
        numbers = ["+" + str(n).lstrip("+") for n in recipients]
        for number in numbers:
            if number in self.rejected or not number[1:].isdigit():
                raise ApiError(
                    400,
                    "fx_recipients_invalid",
                    f"Invalid recipient {number}: {self.rejected.get(number, 'not a phone number')}",
                )
        with self.lock:
            fax_id = str(self.next_id)
            self.next_id += 1
            job = self.accept(None, numbers, {"user": user, "extension": extension}, job_id=fax_id)
        # No status route exists for this id, on purpose: the API reports no delivery, and a client that polls anyway
        # must find out here rather than against a customer's server.
        return Response(200, {"id": job.id, "uid": self.new_id() * 2 + "abcdefgh"})
