"""Status pushes: `faxops webhook serve` receives them, an inbox keeps them, and the state takes them in.

The receiver must answer fast and must not lose what it accepted, yet it must not hold the state lock
(``apply`` and ``refresh`` need it while it runs). So each accepted push is appended to an inbox file
beside the manifest and fsynced *before* the 200 goes back; whoever next holds the state lock (the
receiver itself every few seconds when the lock is free, ``refresh``, ``plan``, ``apply``) moves the
inbox into the journal as ``status`` events and empties it. A crash between the two replays the inbox,
which is harmless: status events are idempotent and never move a recipient backwards.

Formats: FAX.PLUS ``fax_sent`` (JSON), Retarus' HTTP status push (XML by default, JSON on request:
a job report with one entry per recipient), and a generic JSON form::

    {"job_id": "...", "number": "+4930...", "status": "delivered|failed|queued|sending|canceled|expired",
     "raw": "provider code", "reason": "...", "pages": 2, "at": "2026-11-23T10:00:00Z"}
"""

from __future__ import annotations

import base64
import fcntl
import hmac
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from faxops import clock
from faxops.apply import updates_json
from faxops.domain import Status, StatusUpdate
from faxops.errors import FaxopsError, InputError, StateLockedError
from faxops.providers.faxplus import map_fax_status
from faxops.providers.retarus import updates_from_report
from faxops.state import StatePaths, StateWriter, read_records
from faxops.state.journal import iso, parse_iso

MAX_BODY = 1 << 20
_KEEP_UNMATCHED = timedelta(days=7)


class BadPush(ValueError):
    """A push that is not in any form faxops reads (answered 400, nothing recorded)."""


@dataclass(frozen=True)
class Push:
    """One recipient's status as a push reported it."""

    source: str
    ids: tuple[str, ...]  # provider ids that may name the attempt (job, fax, outbox ids)
    update: StatusUpdate
    at: str  # when received

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "ids": list(self.ids), "received": self.at, **updates_json([self.update])[0]}


# --- parsing ------------------------------------------------------------------------------------------


def _number(value: Any) -> str:
    text = str(value or "").strip().replace(" ", "")
    if not text:
        raise BadPush("a recipient without a number")
    return text if text.startswith("+") else "+" + text.removeprefix("00")


def parse_faxplus(body: bytes) -> list[tuple[tuple[str, ...], StatusUpdate]]:
    doc = _json(body)
    hook, data = doc.get("hook") or {}, doc.get("data")
    if not isinstance(data, dict) or hook.get("event", "fax_sent") != "fax_sent":
        raise BadPush("expected a FAX.PLUS fax_sent event with a data object")
    raw = str(data.get("status") or "")
    status, retryable = map_fax_status(raw)
    # The docs show from/to; the SDK from_number/to_number.
    number = _number(data.get("to") or data.get("to_number"))
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
        cost=str(data["cost"]) if data.get("cost") is not None else None,
    )
    return [(ids, update)]


def parse_retarus(body: bytes, content_type: str) -> list[tuple[tuple[str, ...], StatusUpdate]]:
    is_json = "json" in content_type or body.lstrip()[:1] in (b"{", b"[")
    report = _json(body) if is_json else _retarus_xml(body)
    job_id = str(report.get("jobId") or "")
    if not job_id:
        raise BadPush("a Retarus report without jobId")
    updates = updates_from_report(report)
    if not updates:
        raise BadPush("a Retarus report without recipientStatus entries")
    return [((job_id,), u) for u in updates]


def _retarus_xml(body: bytes) -> dict[str, Any]:
    """The XML report as the dict its JSON form would be (tags compared without namespaces)."""
    try:
        root = ElementTree.fromstring(body)
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise BadPush(f"malformed XML: {exc}") from None

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    def text(node: Any, name: str) -> str | None:
        for child in node.iter():
            if local(child.tag) == name and child.text and child.text.strip():
                return str(child.text.strip())
        return None

    recipients = []
    for node in root.iter():
        if local(node.tag) in ("recipientStatus", "RecipientStatus", "recipient"):
            recipients.append(
                {
                    "number": text(node, "number"),
                    "status": text(node, "status"),
                    "reason": text(node, "reason"),
                    "sentTs": text(node, "sentTs"),
                }
            )
    pages = text(root, "pages")
    return {
        "jobId": text(root, "jobId"),
        "pages": int(pages) if pages and pages.isdigit() else None,
        "recipientStatus": recipients,
    }


def parse_generic(body: bytes) -> list[tuple[tuple[str, ...], StatusUpdate]]:
    doc = _json(body, allow_list=True)
    items = doc if isinstance(doc, list) else [doc]
    out: list[tuple[tuple[str, ...], StatusUpdate]] = []
    for item in items:
        if not isinstance(item, dict):
            raise BadPush("each update must be an object")
        try:
            status = Status(str(item.get("status")))
        except ValueError:
            raise BadPush(f"status must be one of {', '.join(s.value for s in Status)}") from None
        job_id = str(item.get("job_id") or "")
        if not job_id:
            raise BadPush("job_id is required")
        update = StatusUpdate(
            _number(item.get("number")),
            status,
            item.get("raw"),
            item.get("reason"),
            None,
            item.get("pages") if isinstance(item.get("pages"), int) else None,
            parse_iso(item.get("at")),
        )
        out.append(((job_id,), update))
    return out


def _json(body: bytes, *, allow_list: bool = False) -> Any:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadPush(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict) and not (allow_list and isinstance(doc, list)):
        raise BadPush("expected a JSON object")
    return doc


PARSERS = {"faxplus": "FAX.PLUS fax_sent", "retarus": "Retarus status push", "generic": "generic JSON"}


def parse(source: str, body: bytes, content_type: str) -> list[Push]:
    if source == "faxplus":
        found = parse_faxplus(body)
    elif source == "retarus":
        found = parse_retarus(body, content_type)
    elif source == "generic":
        found = parse_generic(body)
    else:
        raise KeyError(source)
    at = iso(clock.now())
    return [Push(source, ids, update, at) for ids, update in found]


# --- the inbox ----------------------------------------------------------------------------------------


def inbox_path(paths: StatePaths) -> Path:
    return paths.journal.with_suffix(".inbox")


class Inbox:
    """An append-only file of accepted pushes; flock makes appends and the hand-over exclusive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, pushes: Iterable[Push]) -> None:
        data = b"".join(orjson.dumps(p.to_json()) + b"\n" for p in pushes)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, data)
                os.fsync(fd)  # on disk before the provider hears 200
            finally:
                os.close(fd)


def ingest(paths: StatePaths, writer: StateWriter) -> int:
    path = inbox_path(paths)
    if not path.exists():
        return 0
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size == 0:
            return 0
        data = os.pread(fd, size, 0)
        items = []
        for line in data.splitlines():
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue  # a torn last line: its sender never got 200
        taken, keep = _match(paths, items)
        for event in taken:
            writer.record(event)
        kept = b"".join(orjson.dumps(i) + b"\n" for i in keep)
        os.ftruncate(fd, 0)
        if kept:
            os.pwrite(fd, kept, 0)
        os.fsync(fd)
        return len(taken)
    finally:
        os.close(fd)


def _match(paths: StatePaths, items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Status events for pushes that name a recorded attempt; pushes not matched yet are kept a while."""
    wanted_numbers = {i.get("number") for i in items}
    by_id: dict[tuple[str, str], str] = {}  # (provider id, number) -> attempt reference
    latest: dict[str, dict[str, Any]] = {}  # number -> its latest attempt
    for number, record in read_records(paths):
        if number not in wanted_numbers:
            continue
        attempts = record.get("attempts") or []
        for attempt in attempts:
            for key in ("job_id", "recipient_id", "fax_id"):
                if attempt.get(key):
                    by_id[(str(attempt[key]), number)] = attempt["reference"]
        if attempts:
            latest[number] = attempts[-1]
    taken, keep = [], []
    now = clock.now()
    for item in items:
        number = item.get("number", "")
        ref = next((by_id[(i, number)] for i in item.get("ids", ()) if (i, number) in by_id), None)
        if ref is None and item.get("source") == "faxplus" and number in latest:
            # A fax id is learnt from the first status poll; a push can come before it. Attach it to the
            # latest attempt only when that attempt has no fax id yet and began before the fax did.
            attempt = latest[number]
            started = parse_iso(attempt.get("submitted_at"))
            pushed = parse_iso(item.get("at")) or parse_iso(item.get("received"))
            if not attempt.get("fax_id") and started and pushed and pushed >= started - timedelta(minutes=1):
                ref = attempt["reference"]
        if ref is None:
            received = parse_iso(item.get("received"))
            if received is None or now - received < _KEEP_UNMATCHED:
                keep.append(item)
            continue
        event = {k: v for k, v in item.items() if k not in ("source", "ids", "received")}
        taken.append({"t": "status", "ref": ref, **event, "at": item.get("at") or item.get("received")})
    return taken, keep


# --- the receiver -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    username: str
    secret: str

    def allows(self, headers: Any, query: dict[str, list[str]]) -> bool:
        auth = str(headers.get("Authorization") or "")
        offered: list[tuple[str | None, str]] = []
        if auth.startswith("Basic "):
            try:
                name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                offered.append((name, password))
            except (ValueError, UnicodeDecodeError):
                return False
        elif auth.startswith("Bearer "):
            offered.append((None, auth[7:].strip()))
        for token in query.get("token", []):
            offered.append((None, token))
        for user, offered_secret in offered:
            same_secret = hmac.compare_digest(offered_secret.encode(), self.secret.encode())
            same_user = user is None or hmac.compare_digest(user.encode(), self.username.encode())
            if same_secret and same_user:
                return True
        return False


class Receiver:
    """`faxops webhook serve`: an HTTP endpoint per push format, writing to the inbox."""

    def __init__(
        self,
        paths: StatePaths,
        campaign: str,
        credentials: Credentials,
        host: str = "127.0.0.1",
        port: int = 0,
        ingest_every: float = 5.0,
    ) -> None:
        self.paths = paths
        self.campaign = campaign
        self.credentials = credentials
        self.inbox = Inbox(inbox_path(paths))
        self.accepted = 0
        self.rejected = 0
        self.ingested = 0
        self.ingest_every = ingest_every
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Receiver:
        serve = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        ingest_loop = threading.Thread(target=self._ingest_loop, daemon=True)
        self._threads = [serve, ingest_loop]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads[1:]:
            thread.join(timeout=10)
        self.ingest_now()

    def ingest_now(self) -> int:
        """Take the inbox into the state if nobody else holds the state lock."""
        try:
            writer = StateWriter(self.paths, self.campaign, operation="webhook ingest")
        except StateLockedError:
            return 0  # apply/refresh holds it and will take the inbox in itself
        except FaxopsError:
            return 0
        try:
            count = ingest(self.paths, writer)
        finally:
            writer.close()
        self.ingested += count
        return count

    def _ingest_loop(self) -> None:
        while not self._stop.wait(self.ingest_every):
            inbox = inbox_path(self.paths)
            if inbox.exists() and inbox.stat().st_size:
                self.ingest_now()

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        url = urlsplit(target)
        source = url.path.strip("/").split("/")[-1] or "generic"
        if method != "POST":
            return 405, {"error": "POST a status push to /faxplus, /retarus or /generic"}
        if source not in PARSERS:
            return 404, {"error": f"unknown push path /{source}: use /faxplus, /retarus or /generic"}
        if not self.credentials.allows(headers, parse_qs(url.query)):
            self.rejected += 1
            return 401, {"error": "authentication required"}
        try:
            pushes = parse(source, body, str(headers.get("Content-Type") or ""))
        except BadPush as exc:
            self.rejected += 1
            return 400, {"error": str(exc)}
        self.inbox.append(pushes)
        self.accepted += len(pushes)
        return 200, {"accepted": len(pushes)}


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "faxops-webhook"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(413, {"error": "body too large"})
                return
            body = self.rfile.read(length) if length else b""
            try:
                code, doc = receiver.handle(self.command, self.path, self.headers, body)
            except OSError as exc:  # the inbox cannot be written: the provider must try again
                code, doc = 503, {"error": f"cannot record the push: {exc.strerror}"}
            self._answer(code, doc)

        def _answer(self, code: int, doc: dict[str, Any]) -> None:
            data = orjson.dumps(doc)
            self.send_response(code)
            if code == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="faxops"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_GET = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # request lines carry tokens in query strings; never log them

    return Handler


def credentials_for(loaded: Any) -> Credentials:
    from faxops.fields import resolve_secret

    push = loaded.model.status_push
    if push is None:
        raise InputError(
            f"{loaded.path}: no status_push section",
            [loaded.problem((), "add `status_push: {secret: ${env:FAXOPS_PUSH_SECRET}}` to accept pushes")],
        )
    return Credentials(push.username, resolve_secret(push.secret, loaded.base_dir))
