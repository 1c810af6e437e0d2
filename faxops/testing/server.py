"""The common machinery of the provider simulators: an HTTP server on loopback that speaks one API.

A simulator records every recipient it accepts, moves faxes through statuses as (simulated) time
passes, and injects faults on request. It is driven from Python (tests) or over HTTP under
``/_sim/`` (``faxops simulate``):

* ``POST /_sim/faults`` ``{"kind": ..., "path": regex, "method": "POST", "status": 500, "times": 1,
  "delay": 0.2, "headers": {...}}`` with kind one of ``latency``, ``status`` (answer without processing),
  ``drop_before`` (close without processing), ``drop_after`` (process, then close without answering),
  ``error_after`` (process, then answer 500), ``malformed`` (process, then answer garbage),
  ``echo_auth`` (answer ``status`` with an error message quoting the request's credentials: its
  ``Authorization`` header, the Basic pair decoded, and a form body's ``client_secret``, as some APIs do);
* ``POST /_sim/outcomes`` ``{"+4930...": "busy"}``: how a number's fax ends (default delivered);
* ``POST /_sim/reject`` ``{"+4930...": "reason"}``: numbers refused at submission;
* ``POST /_sim/advance`` ``{"seconds": 60}``: move the simulated clock;
* ``GET /_sim/received``: every accepted recipient (what the provider "really sent").
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any, ClassVar

from faxops.testing.wire import ApiError, Fault, Part, Request, Response, basic_credentials, handler_for

__all__ = ["FAULT_KINDS", "QUEUED_FOR", "SENDING_FOR", "ApiError", "Job", "Part", "Request", "Response", "Simulator"]

FAULT_KINDS = ("latency", "status", "drop_before", "drop_after", "error_after", "malformed", "echo_auth")
#: a fax's life in a simulator: seconds after acceptance at which it moves on
QUEUED_FOR = 5.0
SENDING_FOR = 30.0


@dataclass
class Job:
    """A job as the simulated provider holds it."""

    id: str
    reference: str | None
    numbers: list[str]
    created: float
    data: dict[str, Any] = field(default_factory=dict)
    canceled: set[str] = field(default_factory=set)
    retried: dict[str, float] = field(default_factory=dict)
    expires: float | None = None  # a provider-side validity end (Retarus meta.jobValid.end)
    starts: float | None = None  # a provider-side start (scheduled sending)


Route = tuple[str, re.Pattern[str], Callable[..., Response]]


class Simulator:
    """Base of the API simulators; subclasses add their routes in ``routes()``."""

    name: ClassVar[str]
    api_prefix: ClassVar[str] = ""  # the path the real API's base URL ends in, e.g. /v3
    # What the shared test battery and the example manifests need to know, kept with the simulator so
    # that a new provider cannot be registered without them (tests derive their cases from SIMULATORS).
    #: environment variables the manifest's ``${env:...}`` credentials read: accepted ones, refused ones
    good_env: ClassVar[dict[str, str]] = {}
    bad_env: ClassVar[dict[str, str]] = {}
    #: regex of the API path that submits a fax (faults aimed at sending use it)
    submit_path: ClassVar[str] = ""
    #: the ``provider:`` settings besides the URLs: account fields, credentials as ``${env:...}``
    account_settings: ClassVar[dict[str, object]] = {}

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, transmit_seconds: float | None = None) -> None:
        self.lock = threading.RLock()
        # How long a fax stays queued, then sending (simulated seconds); tests usually move the clock.
        total = QUEUED_FOR + SENDING_FOR if transmit_seconds is None else transmit_seconds
        self.queued_for = total * QUEUED_FOR / (QUEUED_FOR + SENDING_FOR)
        self.sending_for = total - self.queued_for
        self.faults: list[Fault] = []
        self.received: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.log: list[Request] = []  # every API request as received, for request-shape tests
        self.jobs: dict[str, Job] = {}
        self.outcomes: dict[str, str] = {}
        self.rejected: dict[str, str] = {}
        self.offset = 0.0
        self._routes: list[Route] = [(m, re.compile(p), h) for m, p, h in self.routes()]
        self._server = ThreadingHTTPServer((host, port), handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """What a manifest's ``provider.base_url`` must say to reach this simulator."""
        return self.url + self.api_prefix

    def manifest_settings(self) -> dict[str, str | list[str]]:
        """The URL settings a manifest needs to reach this simulator (``base_url`` first)."""
        return {"base_url": self.base_url}

    def provider_settings(self) -> dict[str, object]:
        """Everything besides ``type`` that a manifest's ``provider:`` needs to use this simulator."""
        return {**self.manifest_settings(), **self.account_settings}

    def start(self) -> Simulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sim-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- control --------------------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.offset += seconds

    def inject(self, kind: str, **kwargs: Any) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r} (one of {', '.join(FAULT_KINDS)})")
        with self.lock:
            self.faults.append(Fault(kind, **kwargs))

    def new_id(self) -> str:
        return uuid.uuid4().hex[:12]

    def accept(
        self,
        reference: str | None,
        numbers: list[str],
        data: dict[str, Any],
        job_id: str | None = None,
        per_recipient: dict[str, dict[str, Any]] | None = None,
    ) -> Job:
        """Record a job the way the real service would have taken it."""
        with self.lock:
            job = Job(job_id or self.new_id(), reference, numbers, self.now(), data)
            self.jobs[job.id] = job
            for number in numbers:
                self.received.append(
                    {
                        "job_id": job.id,
                        "number": number,
                        "reference": reference,
                        "at": time.time(),
                        **(per_recipient or {}).get(number, {}),
                    }
                )
            return job

    def fate(self, job: Job, number: str) -> str:
        """Where a recipient's fax stands now: queued, sending, delivered, canceled, or its failure."""
        if number in job.canceled:
            return "canceled"
        start = job.retried.get(number, max(job.created, job.starts or 0.0))
        now = self.now()
        done_at = start + self.queued_for + self.sending_for
        if job.expires is not None and min(now, done_at) >= job.expires:
            return "expired"  # its validity ended before it could be transmitted
        if now < start + self.queued_for:
            return "queued"
        if now < done_at:
            return "sending"
        return self.outcomes.get(number, "delivered")

    def routes(self) -> list[tuple[str, str, Callable[..., Response]]]:
        return []

    basic_credentials = staticmethod(basic_credentials)

    def error(self, status: int, code: str, message: str) -> Response:
        """An error in the API's own format."""
        return Response(status, {"code": code, "message": message})

    # --- dispatch -------------------------------------------------------------------------------

    def _control(self, request: Request) -> Response | None:
        if not request.path.startswith("/_sim/"):
            return None
        what = str(request.path[len("/_sim/") :])
        if request.method == "GET" and what == "received":
            with self.lock:
                return Response(200, list(self.received))
        body = request.json() or {}
        if what == "faults":
            self.inject(**body)
        elif what == "outcomes":
            self.outcomes.update(body)
        elif what == "reject":
            self.rejected.update(body)
        elif what == "advance":
            self.advance(float(body.get("seconds", 0)))
        else:
            return Response(404, {"error": "no such control"})
        return Response(204)

    def take_fault(self, request: Request) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(request):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def dispatch(self, request: Request) -> Response:
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                try:
                    return handler(request, **match.groupdict())
                except ApiError as exc:
                    response = self.error(exc.status, exc.code, exc.message)
                    response.headers.update(exc.headers)
                    return response
        return self.error(404, "not_found", f"no route for {request.method} {request.path}")
