"""A loopback simulator of FAX.PLUS v3 (seed 002), shaped by the official client's models.

Answers follow ``faxplus-api`` (the client FAX.PLUS generates from its OpenAPI document): ``OutboxList``
``{"records": [Outbox]}``, ``FaxList`` ``{"data": {"records": [Fax]}}`` paged by ``limit`` (1-50) and
``offset`` and windowed by ``after``/``before``, ``Fax.comment`` a plain string, statuses from the
``OutboxStatus`` and ``FaxStatus`` enums only. The official client can send, list, read and delete here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar

from faxops.testing.server import ApiError, Job, Request, Response, Simulator

#: the simulator's fates -> a ``FaxStatus`` value (FAX.PLUS has no "not a fax" or expiry status of its own)
_FATE = {
    "delivered": "success",
    "busy": "failed_user_busy",
    "no_answer": "failed_no_answer",
    "not_fax": "failed",
    "invalid": "failed_unallocated_number",
    "expired": "failed",
}
#: ``FaxStatus`` values: an outcome set to one of them is reported as it is
FAX_STATUSES = frozenset(
    {
        "success",
        "partially_sent",
        "partially_received",
        "insufficient_credit",
        "failed",
        "failed_internal_process_error",
        "failed_user_busy",
        "failed_no_answer",
        "failed_unallocated_number",
        "failed_office_converter_issue",
        "failed_separate_file_pages_issue",
        "failed_render_header_issue",
        "failed_invalid_number_format",
        "failed_mimetype_not_supported",
        "failed_destination_not_supported",
        "failed_image_preparation",
        "failed_to_send",
        "failed_normal_temporary_failure",
        "failed_unknown_converter_issue",
        "failed_normal_clearing",
        "failed_convert_to_tiff_issue",
        "failed_fs_49",
        "failed_fs_2",
    }
)
_FROM = re.compile(r"^([+][0-9]{8,}([*]{0,10}[0-9]+)?)|(no_number)|(NO_NUMBER)$")
_SEND_TIME = "%Y-%m-%d %H:%M:%S %z"
_LIST_TIME = "%Y-%m-%d %H:%M:%S"
OWNER = "7724157c0974440293e45877c57f0703"


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime(_LIST_TIME)


class FaxPlusSimulator(Simulator):
    """``/v3/accounts/{user}/files``, ``/outbox[/{id}]``, ``/faxes[/{id}]?category=sent``, Bearer token."""

    name = "faxplus"
    api_prefix = "/v3"
    good_env: ClassVar[dict[str, str]] = {"FAXPLUS_TOKEN": "secret"}
    bad_env: ClassVar[dict[str, str]] = {"FAXPLUS_TOKEN": "revoked"}
    submit_path = r"/v3/accounts/[^/]+/outbox"
    account_settings: ClassVar[dict[str, object]] = {"token": "${env:FAXPLUS_TOKEN}"}

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, transmit_seconds: float | None = None, token: str = "secret"
    ) -> None:
        self.token = token
        self.files: dict[str, bytes] = {}
        self.deleted_faxes: set[str] = set()
        super().__init__(host, port, transmit_seconds=transmit_seconds)

    def routes(self) -> list[tuple[str, str, Any]]:
        account = r"/v3/accounts/(?P<user>[^/]+)"
        return [
            ("POST", account + r"/files", self.upload),
            ("POST", account + r"/outbox", self.send),
            ("GET", account + r"/outbox", self.outbox),
            ("GET", account + r"/outbox/(?P<outbox>[^/]+)", self.outbox_entry),
            ("DELETE", account + r"/outbox/(?P<outbox>[^/]+)", self.delete),
            ("GET", account + r"/faxes", self.faxes),
            ("GET", account + r"/faxes/(?P<fax>[^/]+)", self.fax),
            ("DELETE", account + r"/faxes/(?P<fax>[^/]+)", self.delete_fax),
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
        # By magic bytes: the declared format must match the content, as FAX.PLUS' converter would find out.
        ok = data.startswith(b"%PDF-") if fmt == "pdf" else data[:4] in (b"II*\x00", b"MM\x00*")
        if not ok:
            raise ApiError(400, "invalid_file", f"the file is not a {fmt}")
        # An upload is only a file: nothing is sent until an outbox entry names its path, so a crash between the two
        # calls must leave no fax behind (the client relies on it when it uploads again).
        path = f"/storage/{self.new_id()}.{fmt}"
        self.files[path] = data
        return Response(200, {"path": path})

    def send(self, request: Request, user: str) -> Response:
        self._auth(request)
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("from"), str) or not _FROM.match(body["from"]):
            raise ApiError(400, "invalid_from", "from: the number used to send the fax is required")
        to = body.get("to")
        # FAX.PLUS' limits (4,000 destinations, 10 files, 150 MB in all), so a client's batch sizes are held to them.
        if not isinstance(to, list) or not to or len(to) > 4000:
            raise ApiError(400, "invalid_to", "to: between 1 and 4000 destinations are required")
        files = body.get("files")
        if not isinstance(files, list) or not files or len(files) > 10:
            raise ApiError(400, "invalid_files", "files: between 1 and 10 uploaded files are required")
        unknown = [f for f in files if f not in self.files]
        if unknown:
            raise ApiError(400, "invalid_files", f"files: {unknown[0]} was not uploaded")
        # 413 and not 400: a client must class it as this job's documents, not as a bad recipient.
        if sum(len(self.files[f]) for f in files) > 150 * 1024 * 1024:
            raise ApiError(413, "too_large", "the files exceed 150 MB")
        for number in to:
            if not str(number).startswith("+") or number in self.rejected:
                raise ApiError(400, "invalid_to", f"to: {number} {self.rejected.get(number, 'is not valid')}")
        comment = body.get("comment")
        if comment is not None and not (isinstance(comment, dict) and isinstance(comment.get("text", ""), str)):
            raise ApiError(400, "invalid_comment", "comment: an object {text, tags}")
        retry = ((body.get("options") or {}).get("retry")) or {}
        if not (0 <= int(retry.get("count", 0)) <= 3 and 0 <= int(retry.get("delay", 0)) <= 30):
            raise ApiError(400, "invalid_options", "options.retry: count 0-3 and delay 0-30 (minutes)")
        starts = None
        if body.get("send_time"):
            try:
                starts = datetime.strptime(body["send_time"], _SEND_TIME).timestamp()
            except ValueError:
                raise ApiError(400, "invalid_send_time", "send_time: YYYY-MM-DD HH:MM:SS +ZZZZ") from None
        with self.lock:
            outbox_id = self.new_id()
            job = self.accept((comment or {}).get("text"), [str(n) for n in to], body, job_id=outbox_id)
            job.starts = starts
            job.data["fax_ids"] = {n: self.new_id() for n in job.numbers}
            job.data["seq"] = len(self.jobs)
        # Without return_ids the answer carries no id at all: the client must then find its job by comment.
        ids = {n: outbox_id for n in job.numbers} if body.get("return_ids") else {}
        return Response(201, {"ids": ids} if ids else {})

    # --- the two lists ------------------------------------------------------------------------

    def _entry(self, job: Job, pending: list[tuple[str, str]]) -> dict[str, Any]:
        """An ``Outbox`` record."""
        retry = (job.data.get("options") or {}).get("retry") or {"count": 0, "delay": 0}
        submitted = _stamp(job.created)
        return {
            "id": job.id,
            "uid": OWNER,
            "to": [n for n, _ in pending],
            # The outbox keeps the comment as the {text, tags} object that was sent; the sent list flattens it.
            "comment": {"text": job.reference or "", "tags": []},
            # One status per outbox entry, not per number: the entry shows while any of its numbers is still open.
            "status": pending[0][1],
            "files": job.data["files"],
            "page_count": len(job.data["files"]),
            "src": job.data["from"],
            "designated_src": job.data["from"],
            "submit_time": submitted,
            "last_updated_status_time": submitted,
            "status_changes": [{"at": submitted, "status": "submitted"}],
            "retry": {"count": int(retry.get("count", 0)), "delay": int(retry.get("delay", 0))},
            "options": {},
            "should_enhance": False,
            "ip": "127.0.0.1",
            "contact_name": "",
            "extra_info": {},
        }

    def _fax(self, job: Job, number: str, fate: str) -> dict[str, Any]:
        """A ``Fax`` record of the sent list."""
        retry = (job.data.get("options") or {}).get("retry") or {"count": 0, "delay": 0}
        started = max(job.created, job.starts or 0.0) + self.queued_for
        pages = len(job.data["files"])
        return {
            "id": job.data["fax_ids"][number],
            "to": number,
            "from": job.data["from"],
            "comment": job.reference or "",  # a string here, unlike the {text} sent to the outbox
            "status": fate if fate in FAX_STATUSES else _FATE.get(fate, "failed"),
            "direction": "outgoing",
            "pages": pages,
            "cost": pages,
            "cost_details": {"multiplier": 1.0, "notification_cost": 0.0},
            "duration": int(self.sending_for),
            "file": job.data["files"][0],
            "file_name": f"fax-to-{number.lstrip('+')}",
            "header": "",
            "is_read": True,
            "is_spam": False,
            "owner_id": OWNER,
            "max_retry": int(retry.get("count", 0)),
            "retry_delay": int(retry.get("delay", 0)),
            "submit_time": _stamp(job.created),
            "start_time": _stamp(started),
            "last_update": _stamp(started + self.sending_for),
        }

    def _split(self) -> tuple[list[dict[str, Any]], list[tuple[float, int, dict[str, Any]]]]:
        outbox, sent = [], []
        with self.lock:
            jobs: list[Job] = list(self.jobs.values())
        for job in jobs:
            pending = []
            for number in job.numbers:
                fate = self.fate(job, number)
                if fate in ("queued", "sending"):
                    pending.append((number, "submitted" if fate == "queued" else "sending"))
                # A cancelled number is in neither list: only the client's own record says it was ever submitted,
                # which is why faxops journals a cancel instead of asking the provider afterwards.
                elif fate != "canceled" and job.data["fax_ids"][number] not in self.deleted_faxes:
                    sent.append((job.created, job.data["seq"], self._fax(job, number, fate)))
            if pending:
                outbox.append(self._entry(job, pending))
        return outbox, sent

    def outbox(self, request: Request, user: str) -> Response:
        self._auth(request)
        return Response(200, {"records": self._split()[0]})

    def outbox_entry(self, request: Request, user: str, outbox: str) -> Response:
        self._auth(request)
        for entry in self._split()[0]:
            if entry["id"] == outbox:
                return Response(200, entry)
        raise ApiError(404, "not_found", f"no outbox entry {outbox}")

    def _window(self, request: Request, name: str) -> float | None:
        value = request.arg(name)
        if value is None:
            return None
        try:
            return datetime.strptime(value, _LIST_TIME).replace(tzinfo=UTC).timestamp()
        except ValueError:
            raise ApiError(400, "invalid_parameter", f"{name}: YYYY-MM-DD HH:mm:ss") from None

    def faxes(self, request: Request, user: str) -> Response:
        """``FaxList``, newest first, ``limit`` 1-50 (default 50) from ``offset``."""
        self._auth(request)
        try:
            limit = int(request.arg("limit") or 50)
            offset = int(request.arg("offset") or 0)
        except ValueError:
            raise ApiError(400, "invalid_parameter", "limit and offset are integers") from None
        if not 1 <= limit <= 50 or offset < 0:
            raise ApiError(400, "invalid_parameter", "limit: 1-50; offset: 0 or more")
        after, before = self._window(request, "after"), self._window(request, "before")
        if request.arg("category") != "sent":
            return Response(200, {"data": {"records": []}})
        # Newest first, with the submission order breaking ties: faxes submitted in the same second must page the same
        # way on every call, or a paged lookup could skip or repeat one.
        sent = sorted(self._split()[1], key=lambda item: (item[0], item[1]), reverse=True)
        records = [
            record
            for created, _, record in sent
            # after inclusive, before exclusive: adjacent windows never count a fax twice.
            if (after is None or created >= after) and (before is None or created < before)
        ]
        return Response(200, {"data": {"records": records[offset : offset + limit]}})

    def fax(self, request: Request, user: str, fax: str) -> Response:
        self._auth(request)
        for _, _, record in self._split()[1]:
            if record["id"] == fax:
                return Response(200, record)
        raise ApiError(404, "not_found", f"no fax {fax}")

    def delete_fax(self, request: Request, user: str, fax: str) -> Response:
        self._auth(request)
        if not any(record["id"] == fax for _, _, record in self._split()[1]):
            raise ApiError(404, "not_found", f"no fax {fax}")
        with self.lock:
            self.deleted_faxes.add(fax)
        return Response(204)

    def delete(self, request: Request, user: str, outbox: str) -> Response:
        self._auth(request)
        job = self.jobs.get(outbox)
        # Only an entry still waiting can be deleted: once a number is being dialled the fax cannot be called back.
        if job is None or all(self.fate(job, n) not in ("queued",) for n in job.numbers):
            raise ApiError(404, "not_found", f"no outbox entry {outbox} that can still be deleted")
        job.canceled.update(job.numbers)
        return Response(204)
