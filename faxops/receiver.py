"""`faxops webhook serve`: the HTTP endpoint that faces the internet and writes status pushes to the inbox.

Served by uvicorn (an ASGI server on h11) rather than the standard library's ``http.server``, because
ASGI hands the application the headers *before* the body: a push is authenticated, and its declared
size checked, before its body is read (uvicorn stops reading a connection once 64 KiB wait unread).
What the server must survive, and where it is handled:

=============================================  ==============================================================
a malformed request (``Content-Length: abc``,  h11 refuses it: 400 at once, one warning line, no traceback
``-1``, oversized headers)
an unauthenticated body of any size            401 decided from the headers alone; a body up to ``max_body``
                                               is drained and dropped (so the client reads the 401, not a
                                               reset), a larger one is not read at all
an authenticated body over ``max_body``        413 from ``Content-Length``, or as soon as a chunked body
                                               passes it
a client that stalls before its headers        the connection is closed ``timeout`` seconds after it opened
a client that stalls in its body               408 ``timeout`` seconds after its headers
many slow clients at once                      each is bounded in time; past ``max_connections`` uvicorn
                                               answers 503 instead of queueing
a client that hangs up                         one log line
=============================================  ==============================================================

Every answer closes the connection (``Connection: close``): one request per connection keeps the time
bound simple (no keep-alive connection can start a second, slow request), and providers push rarely.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from faxops.errors import FaxopsError, InputError, StateLockedError
from faxops.providers.base import BadPush
from faxops.reports import mask_number
from faxops.state import LocalStore, StatePaths, StateStore
from faxops.webhook import PARSERS, Push, inbox_items, ingest, parse, push_paths

MAX_BODY = 1 << 20
#: seconds a client has to send its headers (from connecting), then its body (from the headers)
TIMEOUT = 10.0
MAX_CONNECTIONS = 256

log = logging.getLogger("faxops.webhook")

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Credentials:
    """What a push must present: ``status_push.secret`` as Basic password, Bearer token or ``?token=``."""

    username: str
    secret: str

    def allows(self, authorization: str, query: dict[str, list[str]]) -> bool:
        offered: list[tuple[str | None, str]] = []
        if authorization.startswith("Basic "):
            try:
                name, _, password = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            offered.append((name, password))
        elif authorization.startswith("Bearer "):
            offered.append((None, authorization[7:].strip()))
        offered.extend((None, token) for token in query.get("token", []))
        for user, offered_secret in offered:
            # Constant-time comparisons, and every offered form is tried to the end: an endpoint on the internet must
            # not tell an attacker, by how fast it answers, how much of a guess was right.
            same_secret = hmac.compare_digest(offered_secret.encode(), self.secret.encode())
            same_user = user is None or hmac.compare_digest(user.encode(), self.username.encode())
            if same_secret and same_user:
                return True
        return False


def credentials_for(loaded: Any) -> Credentials:
    """The credentials a campaign's ``status_push`` section asks of pushes."""
    from faxops.fields import resolve_secret

    push = loaded.model.status_push
    if push is None:
        raise InputError(
            f"{loaded.path}: no status_push section",
            [loaded.problem((), "add `status_push: {secret: ${env:FAXOPS_PUSH_SECRET}}` to accept pushes")],
        )
    return Credentials(push.username, resolve_secret(push.secret, loaded.base_dir))


class _Answer(Exception):
    """Ends a request with this status and JSON body."""

    def __init__(self, status: int, doc: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.doc = doc


class _HungUp(Exception):
    """The client closed the connection before its request was complete."""


class _DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the request headers, which uvicorn itself lacks."""

    header_timeout = TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_overdue)

    def connection_lost(self, exc: Exception | None) -> None:
        self._header_deadline.cancel()
        super().connection_lost(exc)

    def _headers_overdue(self) -> None:
        if self.cycle is None and not self.transport.is_closing():
            host = self.client[0] if self.client else "?"
            log.warning("closed a connection from %s: no request headers within %.0fs", host, self.header_timeout)
            self.transport.close()


class Receiver:
    """An HTTP endpoint per push format (``/faxplus``, ``/retarus``, ``/generic``) writing to the inbox."""

    def __init__(
        self,
        paths: StatePaths,
        campaign: str,
        credentials: Credentials,
        host: str = "127.0.0.1",
        port: int = 0,
        ingest_every: float = 5.0,
        *,
        timeout: float = TIMEOUT,
        max_body: int = MAX_BODY,
        max_connections: int = MAX_CONNECTIONS,
        store: StateStore | None = None,
    ) -> None:
        self.paths = paths
        self.campaign = campaign
        self.store = store if store is not None else LocalStore(paths, campaign)
        self.credentials = credentials
        self.inbox = self.store.push_inbox()
        self.accepted = 0
        self.rejected = 0
        self.ingested = 0
        self.ingest_every = ingest_every
        self.timeout = timeout
        self.max_body = max_body
        self._stop = threading.Event()
        # The socket is bound here, not by uvicorn, so that port 0 is resolved before start() returns and `url` is
        # right at once (tests and the command print it).
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family)
        protocol = type("Protocol", (_DeadlineProtocol,), {"header_timeout": timeout})
        config = uvicorn.Config(
            self._asgi,
            http=protocol,
            interface="asgi3",
            lifespan="off",
            # X-Forwarded-For is not believed: anyone can send it, and the logs must show who really connected.
            proxy_headers=False,
            access_log=False,  # request lines carry ?token= secrets: never logged
            log_config=None,
            limit_concurrency=max_connections,
            timeout_graceful_shutdown=max(1, int(timeout)),
        )
        self._server = uvicorn.Server(config)
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> Receiver:
        serve = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        ingest_loop = threading.Thread(target=self._ingest_loop, daemon=True)
        self._threads = [serve, ingest_loop]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        # A last ingest after the server has stopped: pushes accepted in the final seconds reach the state now instead
        # of waiting in the inbox for the next command.
        self._server.should_exit = True
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)
        self._socket.close()
        self.ingest_now()
        self.inbox.close()

    def ingest_now(self) -> int:
        """Take the inbox into the state if nobody else holds the state lock."""
        try:
            with self.store.writer("webhook ingest") as writer:
                count = ingest(self.store, writer)
        except StateLockedError:
            return 0  # apply/refresh holds it and will take the inbox in itself
        except FaxopsError:
            return 0  # a damaged state: the inbox keeps the pushes until a command reports the damage
        self.ingested += count
        return count

    def _ingest_loop(self) -> None:
        while not self._stop.wait(self.ingest_every):
            # Only when something arrived: taking the state lock every few seconds for nothing would make apply and
            # refresh wait on the receiver.
            try:
                waiting = self.inbox.waiting()
            except FaxopsError:
                continue  # the database is unreachable for now: the pushes wait, the receiver keeps serving
            if waiting:
                self.ingest_now()

    # --- one request ------------------------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        client = scope.get("client") or ("?", 0)
        try:
            status, doc = await self._request(scope, receive)
        except _Answer as answer:
            status, doc = answer.status, answer.doc
        except _HungUp:
            log.info("%s hung up before its request was complete", client[0])
            return
        if status >= 400:
            self.rejected += 1
            # The path only: a query string may hold the secret.
            log.warning("%s %s from %s: %d %s", scope["method"], scope["path"], client[0], status, doc.get("error"))
        body = orjson.dumps(doc)
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        # Clients that send Basic credentials only after a challenge (curl --anyauth) need this header.
        if status == 401:
            headers.append((b"www-authenticate", b'Basic realm="faxops"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _request(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        # The last path segment, so the receiver also works behind a reverse proxy that adds a prefix.
        source = scope["path"].strip("/").split("/")[-1] or "generic"
        declared = headers.get("content-length", "")
        if scope["method"] != "POST":
            await self._discard(receive, declared)
            raise _Answer(405, {"error": f"POST a status push to {push_paths()}"})
        if source not in PARSERS:
            await self._discard(receive, declared)
            raise _Answer(404, {"error": f"unknown push path /{source}: use {push_paths()}"})
        query = parse_qs(scope["query_string"].decode("latin-1"))
        if not self.credentials.allows(headers.get("authorization", ""), query):
            await self._discard(receive, declared)
            raise _Answer(401, {"error": "authentication required"})
        # Checked after authentication: a stranger gets 401 whatever the size, and never learns the limit.
        if declared.isdigit() and int(declared) > self.max_body:  # h11 refused any other form with 400
            raise _Answer(413, {"error": f"body over {self.max_body} bytes"})
        body = await self._body(receive)
        try:
            pushes = parse(source, body, headers.get("content-type", ""))
        except BadPush as exc:
            raise _Answer(400, {"error": str(exc)}) from None
        try:
            # fsync happens in a worker thread: the event loop keeps serving others meanwhile
            # 200 only once the push is durable (fsynced to the inbox file, or committed in the state database): a
            # provider that gets 200 never sends it again, so answering before the write could lose a status for good.
            await asyncio.to_thread(self.inbox.append, inbox_items(pushes))
        except OSError as exc:  # the inbox cannot be written: the provider must try again
            raise _Answer(503, {"error": f"cannot record the push: {exc.strerror}"}) from None
        except FaxopsError as exc:  # the state database cannot be written (its message names no password)
            log.warning("cannot record a push: %s", exc.message)
            raise _Answer(503, {"error": "cannot record the push: the state database is unavailable"}) from None
        self.accepted += len(pushes)
        for push in pushes:
            _log_accepted(push)
        return 200, {"accepted": len(pushes)}

    async def _discard(self, receive: Receive, declared: str) -> None:
        """Read and drop a small body the request will not use, so that the client reads our answer.

        Closing a socket with unread data in it makes the kernel send a reset, and a client that is
        still writing its body then sees "connection reset" instead of the 401 (seen under load). The
        decision was already taken from the headers; only a body no larger than ``max_body`` is
        drained, chunk by chunk and never kept, within the request's deadline. A larger one is
        answered at once: its sender gets the reset it asked for."""
        if declared and (not declared.isdigit() or int(declared) > self.max_body):
            return
        size = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timeout):
                while size <= self.max_body:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    size += len(message.get("body", b""))
                    if not message.get("more_body"):
                        return

    async def _body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _HungUp
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body:
                        raise _Answer(413, {"error": f"body over {self.max_body} bytes"})
                    chunks.append(chunk)
                    if not message.get("more_body"):
                        return b"".join(chunks)
        except TimeoutError:
            raise _Answer(408, {"error": f"the body did not arrive within {self.timeout:g}s"}) from None


def _log_accepted(push: Push) -> None:
    update = push.update
    job = push.ids[0] if push.ids else "?"
    log.info("accepted %s push: %s %s (job %s)", push.source, mask_number(update.number), update.status, job)
