"""The HTTP side of the simulators: request and response values, faults, and the handler that applies them.

Kept apart from ``server`` (the simulated provider's jobs and clock) so that the wire protocol and the
fault injection can be read, and changed, without the bookkeeping of faxes.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import json
import re
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from faxops.testing.server import Simulator


class ApiError(Exception):
    """Raised by a route to answer with an error in the API's own format."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass
class Part:
    """One part of a multipart/form-data body."""

    name: str
    filename: str | None
    content_type: str
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any  # email.message.Message: case-insensitive
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise ApiError(400, "invalid_json", "the body is not valid JSON") from None

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def form(self) -> list[Part]:
        content_type = self.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            raise ApiError(400, "not_multipart", "expected multipart/form-data")
        # The standard library's MIME parser (the cgi module is gone since 3.13): a hand-written multipart split would
        # accept bodies a real server refuses, and the simulator must be at least as strict.
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + self.body
        )
        parts = []
        for item in message.iter_parts():
            disposition = item.get("Content-Disposition", "")
            if "form-data" not in disposition:
                continue
            payload = item.get_payload(decode=True)
            name = item.get_param("name", header="content-disposition")
            filename = item.get_param("filename", header="content-disposition")
            parts.append(
                Part(
                    name if isinstance(name, str) else "",
                    filename if isinstance(filename, str) else None,
                    item.get_content_type(),
                    payload if isinstance(payload, bytes) else b"",
                )
            )
        return parts


@dataclass
class Response:
    status: int = 200
    body: Any = None  # bytes, str, or JSON-able
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        if isinstance(self.body, str):
            return self.body.encode(), self.headers.get("Content-Type", "text/plain; charset=utf-8")
        if self.body is None:
            return b"", ""
        return json.dumps(self.body).encode(), "application/json"


@dataclass
class Fault:
    kind: str
    path: str = ".*"
    method: str | None = None
    status: int = 500
    times: int = 1
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, request: Request) -> bool:
        return (self.method is None or self.method == request.method) and re.fullmatch(
            self.path, request.path
        ) is not None


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """(user, password) of an HTTP Basic ``Authorization`` header, or None."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def _echo_credentials(request: Request) -> str:
    """An error message that repeats the caller's credentials back (the fault faxops must never pass on)."""
    auth = str(request.headers.get("Authorization", ""))
    parts = [f"request refused; Authorization: {auth!r}"]
    basic = basic_credentials(request)
    if basic is not None:
        parts.append(f"user {basic[0]!r} password {basic[1]!r}")
    if "client_secret" in (form := parse_qs(request.body.decode("utf-8", "replace"))):
        parts.append(f"client_secret {form['client_secret'][0]!r}")
    return "; ".join(parts)


class _Handler(BaseHTTPRequestHandler):
    """Speaks HTTP/1.1 for one simulator: control requests, recorded API requests, injected faults."""

    sim: ClassVar[Simulator]
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm the body then waits for the
    # client's delayed ACK (~40 ms per answer), which a real provider's server does not add.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read self.sim.requests
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Request(self.command, parts.path, parse_qs(parts.query), self.headers, body)
        control = self.sim._control(request)
        if control is not None:
            self._send(control)
            return
        # Control requests (/_sim/) were answered above and are not recorded: tests count API calls, and their own
        # set-up must not show up among them.
        with self.sim.lock:
            self.sim.requests.append((request.method, request.path))
            self.sim.log.append(request)
        fault = self.sim.take_fault(request)
        if fault is not None and fault.kind == "latency":
            # Real time, not the simulated clock: latency stands for the network, and the client's timeouts are
            # measured in real time.
            time.sleep(fault.delay)
            fault = None
        if fault is not None and self._refuse(fault, request):
            return
        response = self.sim.dispatch(request)
        if fault is None:
            self._send(response)
        else:
            self._spoil(fault)

    def _refuse(self, fault: Fault, request: Request) -> bool:
        """Apply a fault that acts before the request is processed; True if it did."""
        if fault.kind == "status":
            response = self.sim.error(fault.status, f"simulated_{fault.status}", "simulated failure")
            response.headers.update(fault.headers)
            self._send(response)
        elif fault.kind == "echo_auth":
            self._send(self.sim.error(fault.status, "echo", _echo_credentials(request)))
        elif fault.kind == "drop_before":
            self.close_connection = True
        else:
            return False
        return True

    def _spoil(self, fault: Fault) -> None:
        """Answer a request that was processed as the fault says: the caller cannot tell it was."""
        if fault.kind == "drop_after":
            self.close_connection = True
        elif fault.kind == "error_after":
            self._send(self.sim.error(500, "internal_error", "simulated failure after processing"))
        # A 200 whose body is not JSON, as a proxy in front of an API may answer: after a send the client must record
        # an unknown outcome, never a success.
        elif fault.kind == "malformed":
            self._send(Response(200, b"<html>upstream proxy error", {"Content-Type": "application/json"}))

    def _send(self, response: Response) -> None:
        data, content_type = response.encode()
        self.send_response(response.status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for key, value in response.headers.items():
            if key != "Content-Type":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _handle


def handler_for(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    """The request handler class of ``sim``'s server (http.server makes one handler per request)."""
    return type("Handler", (_Handler,), {"sim": sim})
