"""A loopback simulator of FAX.PLUS v3 (seed 002): files, outbox, sent faxes, Bearer token."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from faxops.testing.server import ApiError, Job, Request, Response, Simulator

_FATE = {
    "delivered": "success",
    "busy": "failed_user_busy",
    "no_answer": "failed_no_answer",
    "not_fax": "failed_not_fax",
    "invalid": "failed_invalid_number",
}


class FaxPlusSimulator(Simulator):
    """``/v3/accounts/{user}/files``, ``/outbox``, ``/outbox/{id}``, ``/faxes?category=sent``."""

    name = "faxplus"
    api_prefix = "/v3"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, transmit_seconds: float | None = None, token: str = "secret"
    ) -> None:
        self.token = token
        self.files: dict[str, bytes] = {}
        super().__init__(host, port, transmit_seconds=transmit_seconds)

    def routes(self) -> list[tuple[str, str, Any]]:
        account = r"/v3/accounts/(?P<user>[^/]+)"
        return [
            ("POST", account + r"/files", self.upload),
            ("POST", account + r"/outbox", self.send),
            ("GET", account + r"/outbox", self.outbox),
            ("DELETE", account + r"/outbox/(?P<outbox>[^/]+)", self.delete),
            ("GET", account + r"/faxes", self.faxes),
        ]

    def error(self, status: int, code: str, message: str) -> Response:
        return Response(status, {"error": code, "description": message})

    def _auth(self, request: Request) -> None:
        if request.headers.get("Authorization", "") != f"Bearer {self.token}":
            raise ApiError(401, "invalid_token", "The access token provided is invalid")

    def upload(self, request: Request, user: str) -> Response:
        self._auth(request)
        fmt = request.arg("format")
        if fmt not in ("pdf", "tiff"):
            raise ApiError(400, "invalid_file_format", "format must be 'pdf' or 'tiff'")
        parts = [p for p in request.form() if p.name == "fax_file"]
        if len(parts) != 1:
            raise ApiError(400, "invalid_file", "exactly one fax_file is required")
        data = parts[0].data
        ok = data.startswith(b"%PDF-") if fmt == "pdf" else data[:4] in (b"II*\x00", b"MM\x00*")
        if not ok:
            raise ApiError(400, "invalid_file", f"the file is not a {fmt}")
        path = f"/storage/{self.new_id()}.{fmt}"
        self.files[path] = data
        return Response(200, {"path": path})

    def send(self, request: Request, user: str) -> Response:
        self._auth(request)
        body = request.json()
        if not isinstance(body, dict) or not body.get("from"):
            raise ApiError(400, "invalid_from", "from: the number used to send the fax is required")
        to = body.get("to")
        if not isinstance(to, list) or not to or len(to) > 4000:
            raise ApiError(400, "invalid_to", "to: between 1 and 4000 destinations are required")
        files = body.get("files")
        if not isinstance(files, list) or not files or len(files) > 10:
            raise ApiError(400, "invalid_files", "files: between 1 and 10 uploaded files are required")
        unknown = [f for f in files if f not in self.files]
        if unknown:
            raise ApiError(400, "invalid_files", f"files: {unknown[0]} was not uploaded")
        if sum(len(self.files[f]) for f in files) > 150 * 1024 * 1024:
            raise ApiError(413, "too_large", "the files exceed 150 MB")
        for number in to:
            if not str(number).startswith("+") or number in self.rejected:
                raise ApiError(400, "invalid_to", f"to: {number} {self.rejected.get(number, 'is not valid')}")
        comment = (body.get("comment") or {}).get("text")
        with self.lock:
            outbox_id = self.new_id()
            job = self.accept(comment, [str(n) for n in to], body, job_id=outbox_id)
            job.data["fax_ids"] = {n: self.new_id() for n in job.numbers}
            if body.get("send_time"):
                try:
                    job.starts = datetime.strptime(body["send_time"], "%Y-%m-%d %H:%M:%S %z").timestamp()
                except ValueError:
                    raise ApiError(400, "invalid_send_time", "send_time: YYYY-MM-DD HH:MM:SS +ZZZZ") from None
        ids = {n: outbox_id for n in job.numbers} if body.get("return_ids") else {}
        return Response(201, {"ids": ids} if ids else {})

    def _split(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        outbox, sent = [], []
        with self.lock:
            jobs: list[Job] = list(self.jobs.values())
        for job in jobs:
            comment = {"text": job.reference} if job.reference is not None else None
            pending = []
            for number in job.numbers:
                fate = self.fate(job, number)
                if fate in ("queued", "sending"):
                    pending.append((number, "submitted" if fate == "queued" else "sending"))
                elif fate != "canceled":
                    sent.append(
                        {
                            "id": job.data["fax_ids"][number],
                            "to": number,
                            "comment": comment,
                            "status": _FATE.get(fate, "failed"),
                            "pages": len(job.data["files"]),
                            "cost": 1,
                            "from": job.data["from"],
                        }
                    )
            if pending:
                outbox.append(
                    {
                        "id": job.id,
                        "to": [n for n, _ in pending],
                        "comment": comment,
                        "status": pending[0][1],
                        "files": job.data["files"],
                    }
                )
        return outbox, sent

    def outbox(self, request: Request, user: str) -> Response:
        self._auth(request)
        return Response(200, {"records": self._split()[0]})

    def faxes(self, request: Request, user: str) -> Response:
        self._auth(request)
        if request.arg("category") != "sent":
            return Response(200, {"records": []})
        return Response(200, {"records": self._split()[1]})

    def delete(self, request: Request, user: str, outbox: str) -> Response:
        self._auth(request)
        job = self.jobs.get(outbox)
        if job is None or all(self.fate(job, n) not in ("queued",) for n in job.numbers):
            raise ApiError(404, "not_found", f"no outbox entry {outbox} that can still be deleted")
        job.canceled.update(job.numbers)
        return Response(204)
