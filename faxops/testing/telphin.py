"""A loopback simulator of Telphin's fax API (seed 003), with its OAuth2 token and hourly rate limit."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs

from faxops.testing.server import ApiError, Job, Request, Response, Simulator

MAX_FILE = 10 * 1024 * 1024
_FATE = {"queued": "ready_to_send", "sending": "sending", "delivered": "sent", "canceled": "canceled"}


class TelphinSimulator(Simulator):
    """``POST /oauth/token``, ``/extension/{id}/fax/out/[{id}]`` (GET, POST, PUT ?action=)."""

    name = "telphin"
    api_prefix = "/api/ver1.0"
    good_env: ClassVar[dict[str, str]] = {"TELPHIN_CLIENT_ID": "faxops", "TELPHIN_CLIENT_SECRET": "secret"}
    bad_env: ClassVar[dict[str, str]] = {"TELPHIN_CLIENT_ID": "faxops", "TELPHIN_CLIENT_SECRET": "wrong"}
    submit_path = r".*/fax/out/"
    account_settings: ClassVar[dict[str, object]] = {
        "extension_id": 122,
        "client_id": "${env:TELPHIN_CLIENT_ID}",
        "client_secret": "${env:TELPHIN_CLIENT_SECRET}",
    }

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        transmit_seconds: float | None = None,
        client_id: str = "faxops",
        client_secret: str = "secret",
        extension_id: int = 122,
        hourly_limit: int | None = None,
    ) -> None:
        self.client = (client_id, client_secret)
        self.extension_id = extension_id
        self.hourly_limit = hourly_limit
        self.tokens: set[str] = set()
        self.calls_this_hour = 0
        super().__init__(host, port, transmit_seconds=transmit_seconds)

    def routes(self) -> list[tuple[str, str, Any]]:
        out = r"/api/ver1\.0/extension/(?P<ext>\d+)/fax/out/"
        return [
            ("POST", r"/oauth/token", self.token),
            ("POST", out, self.send),
            ("GET", out, self.list),
            ("GET", out + r"(?P<fax>\d+)", self.get),
            ("PUT", out + r"(?P<fax>\d+)", self.act),
        ]

    def error(self, status: int, code: str, message: str) -> Response:
        return Response(status, {"status": code, "message": message})

    def token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            raise ApiError(400, "unsupported_grant_type", "grant_type must be client_credentials")
        if (form.get("client_id"), form.get("client_secret")) != self.client:
            raise ApiError(401, "invalid_client", "Client authentication failed")
        token = secrets.token_hex(16)
        self.tokens.add(token)
        return Response(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def _guard(self, request: Request, ext: str) -> None:
        auth = request.headers.get("Authorization", "")
        # Only tokens this simulator issued: a client that skips the token endpoint, or keeps a token across
        # simulators, must fail here as it would against Telphin.
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            raise ApiError(401, "invalid_token", "The access token is invalid or has expired")
        if int(ext) != self.extension_id:
            raise ApiError(404, "not_found", f"extension {ext} not found")
        # The limit is for the whole account and counts every call, reads included: a refresh loop can use up the hour
        # that sending needs, which is what the provider's pacing must survive.
        if self.hourly_limit is not None:
            self.calls_this_hour += 1
            reset = str(int(time.time()) + 3600)
            if self.calls_this_hour > self.hourly_limit:
                raise ApiError(
                    429,
                    "rate_limit_exceeded",
                    "Rate limit exceeded",
                    {
                        "X-RateLimit-Limit": str(self.hourly_limit),
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": reset,
                    },
                )

    def send(self, request: Request, ext: str) -> Response:
        self._guard(request, ext)
        parts = {p.name: p for p in request.form()}
        dst = parts.get("dst_num")
        upload = [p for p in request.form() if p.name == "file"]
        if dst is None or not dst.text.strip():
            raise ApiError(400, "bad_request", "dst_num: this field is required")
        if len(upload) != 1:
            raise ApiError(400, "bad_request", "file: exactly one file is required")
        data = upload[0].data
        # By content, not by file name or Content-Type: the API converts nothing, so a mislabelled file must fail here
        # too.
        if not (data.startswith(b"%PDF-") or data[:4] in (b"II*\x00", b"MM\x00*")):
            raise ApiError(400, "bad_request", "file: a file in tiff or pdf format is required")
        if len(data) > MAX_FILE:
            raise ApiError(400, "bad_request", "file: the maximum file size is 10 megabytes")
        number = dst.text.strip()
        # Recorded in E.164 whichever number_format the client used, so tests compare received numbers directly.
        e164 = number if number.startswith("+") else "+" + number
        if e164 in self.rejected:
            raise ApiError(400, "bad_request", f"dst_num: {self.rejected[e164]}")
        with self.lock:
            # Numeric ids as in the seed's examples (the list answers them as integers); not starting at 1 so that a
            # client confusing an id with a count or an index fails.
            fax_id = str(len(self.jobs) + 174)
            job = self.accept(None, [e164], {"dst_num": number, "size": len(data)}, job_id=fax_id)
        return Response(201, self._view(job))

    def _view(self, job: Job) -> dict[str, Any]:
        number = job.numbers[0]
        fate = self.fate(job, number)
        status = _FATE.get(fate, "failed")
        # No zone in the text, as the API answers: the client must apply its timezone setting to read it.
        when = datetime.fromtimestamp(job.created, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return {"datetime": when, "dst_num": job.data["dst_num"], "id": int(job.id), "status": status}

    def list(self, request: Request, ext: str) -> Response:
        self._guard(request, ext)
        with self.lock:
            return Response(200, [self._view(j) for j in self.jobs.values()])

    def get(self, request: Request, ext: str, fax: str) -> Response:
        self._guard(request, ext)
        job = self.jobs.get(fax)
        if job is None:
            raise ApiError(404, "not_found", f"fax {fax} not found")
        return Response(200, self._view(job))

    def act(self, request: Request, ext: str, fax: str) -> Response:
        self._guard(request, ext)
        job = self.jobs.get(fax)
        if job is None:
            raise ApiError(404, "not_found", f"fax {fax} not found")
        action = request.arg("action")
        status = self._view(job)["status"]
        number = job.numbers[0]
        # A fax already sending or sent cannot be called back: the simulator refuses, so faxops must never report a
        # cancel that did not happen.
        if action == "cancel" and status in ("ready_to_send", "failed"):
            job.canceled.add(number)
        elif action == "retry" and status == "failed":
            job.retried[number] = self.now()
            self.outcomes.pop(number, None)
        else:
            raise ApiError(400, "bad_request", f"cannot {action} a fax that is {status}")
        return Response(200, self._view(job))
