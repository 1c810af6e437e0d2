"""The one HTTP mechanism every API provider goes through: retries, pacing and error mapping.

Whether a failed call may be repeated depends on whether the request can have reached the provider:

=====================================================  ===============================================
what happened                                          what the engine is told
=====================================================  ===============================================
connect error/timeout, pool timeout (nothing left)     retried with backoff, then ``TransientError``
429 (with ``Retry-After`` or ``X-RateLimit-Reset``)    waited for and retried, then ``TransientError``
503 and the provider's other "not processed" codes     retried with backoff, then ``TransientError``
401 / 403, 404 (wrong base_url or account)            ``AuthError``: the run stops
other 4xx                                              ``RejectedError`` with the provider's code/message
other 5xx on a call that sends                         ``OutcomeUnknownError``: it may have been accepted
read timeout, dropped connection, unreadable answer    ``OutcomeUnknownError`` for a call that sends;
                                                       retried for a call that only reads
=====================================================  ===============================================
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from email.utils import parsedate_to_datetime
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, Field, ValidationError

from faxops import __version__, secrets
from faxops.errors import (
    AuthError,
    OutcomeUnknownError,
    ProviderError,
    RejectedError,
    TransientError,
)
from faxops.fields import Duration, resolve_secret
from faxops.providers.base import Provider, ProviderContext, ProviderSettings

if TYPE_CHECKING:
    # httpx is imported when a provider first calls out: a command that never does (a plan of a settled
    # campaign, status, validate) does not pay for loading the HTTP stack (~50 ms at every start).
    import httpx

_Model = TypeVar("_Model", bound=BaseModel)


@cache
def _send_errors() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    """httpx's errors from before and from after the request left this machine."""
    import httpx

    # Which side of "the request left this machine" each httpx error falls on decides between retrying and
    # reconciling: before, a retry cannot fax twice; after, it could, so a sending call is never repeated.
    before = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.LocalProtocolError)
    after = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)
    return before, after


class HttpSettings(ProviderSettings):
    """Settings every HTTP provider has."""

    base_url: str = Field(pattern=r"^https?://", description="API root; override for staging or a simulator.")
    timeout: Duration = Field(default=timedelta(seconds=60), description="Per-request timeout, e.g. 60s.")
    max_retries: int = Field(default=4, ge=0, le=20, description="Retries of calls that certainly did not arrive.")
    max_wait: Duration = Field(
        default=timedelta(minutes=5),
        description="Longest single wait for a rate limit (Retry-After) before giving up for now.",
    )


def retry_after(response: httpx.Response, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait, from ``Retry-After`` (seconds or a date) or ``X-RateLimit-Reset`` (epoch or seconds)."""
    value = response.headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - now())
            except (TypeError, ValueError):
                return None
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            number = float(reset)
        except ValueError:
            return None
        # Telphin-style headers give an epoch; others give seconds from now.
        return max(0.0, number - now()) if number > 1e9 else max(0.0, number)
    return None


class HttpProvider(Provider):
    """Base of the API providers: an httpx client and ``call()``, the shared mapping of failures."""

    #: statuses that mean "not processed, try again" for this API (besides 429)
    transient_statuses: ClassVar[frozenset[int]] = frozenset({503})

    def __init__(self, settings: ProviderSettings, context: ProviderContext) -> None:
        super().__init__(settings, context)
        assert isinstance(settings, HttpSettings)
        self.http_settings = settings
        # Backoff between retries of one call waits in real time (the provider's clock, not the campaign's
        # schedule); tests replace it so that nothing really waits.
        self.sleep: Callable[[float], None] = time.sleep
        self._basic: httpx.BasicAuth | None = None
        # A base_url with user:password in it would otherwise be printed whole in every connection error.
        secrets.register_url(settings.base_url)
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        """The HTTP client, made on first use (by one thread: apply's senders start together)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    import httpx

                    settings = self.http_settings
                    self._client = httpx.Client(
                        base_url=settings.base_url.rstrip("/"),
                        timeout=settings.timeout.total_seconds(),
                        headers={"User-Agent": f"faxops/{__version__}"},
                    )
        return self._client

    @client.setter
    def client(self, client: httpx.Client) -> None:
        self._client = client

    # --- what each API says differently ------------------------------------------------------

    def basic_auth(self, username: str, password: str) -> httpx.BasicAuth:
        """HTTP Basic credentials from two secret references, resolved once."""
        if self._basic is None:
            base = self.context.base_dir
            user, secret = resolve_secret(username, base, identifier=True), resolve_secret(password, base)
            secrets.register_basic(user, secret)
            import httpx

            self._basic = httpx.BasicAuth(user, secret)
        return self._basic

    def auth_headers(self) -> Mapping[str, str]:
        """Headers that authenticate a request (providers with tokens fetch them here)."""
        return {}

    def error_details(self, response: httpx.Response) -> tuple[str | None, str]:
        """The provider's own error code and message from an error response."""
        try:
            body = response.json()
        except ValueError:
            return None, response.text[:300] or response.reason_phrase
        if isinstance(body, dict):
            # {"error": {"code", "message"}}, {"code", "message"}, {"status", "message"} or OAuth's
            # {"error": "...", "error_description": "..."} (also FAX.PLUS' {"error", "description"}).
            nested = body.get("error")
            error: dict[str, Any] = nested if isinstance(nested, dict) else body
            code = error.get("code") or error.get("status") or (nested if isinstance(nested, str) else None)
            message = (
                error.get("message")
                or error.get("Message")
                or error.get("description")
                or error.get("error_description")
                or error.get("detail")
                or code
                or str(body)[:300]
            )
            return (str(code) if code is not None else None), str(message)
        return None, str(body)[:300]

    # --- the shared mechanism ---------------------------------------------------------------------

    def call(self, method: str, url: str, *, sends: bool, **kwargs: Any) -> httpx.Response:
        """One API call. ``sends`` marks a call that creates something at the provider (never repeated
        once it may have arrived). Returns a 2xx response or raises a ``ProviderError`` subclass."""
        settings = self.http_settings
        before_send, after_send = _send_errors()
        attempt = 0
        while True:
            attempt += 1
            try:
                headers = {**self.auth_headers(), **kwargs.pop("headers", {})}
                secrets.register_authorization(headers.get("Authorization"))  # tokens fetched at run time too
                response = self.client.request(method, url, headers=headers, **kwargs)
            except before_send as exc:
                failure: ProviderError = TransientError(
                    f"could not reach {self.name}: {type(exc).__name__}: {exc}", provider=self.name
                )
                wait = None
            except after_send as exc:
                if sends:
                    raise OutcomeUnknownError(
                        f"the request was sent but no answer came back ({type(exc).__name__}: {exc})",
                        provider=self.name,
                    ) from exc
                failure = TransientError(f"{type(exc).__name__}: {exc}", provider=self.name)
                wait = None
            else:
                if response.is_success:
                    return response
                failure, wait = self._failure(response, sends)
            # Only TransientError is retried here: OutcomeUnknownError in particular must go to reconcile, which asks
            # the provider whether the fax exists before anything is sent again.
            if not isinstance(failure, TransientError) or attempt > settings.max_retries:
                raise failure
            # Jitter spreads retries of parallel sends; it needs no cryptographic randomness.
            backoff = min(30.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random())  # noqa: S311
            delay = wait if wait is not None else backoff
            # A Retry-After longer than max_wait ends this call instead of blocking a worker for an hour: the
            # recipient stays pending and a later run picks it up.
            if delay > settings.max_wait.total_seconds():
                raise failure
            self.sleep(delay)

    def _failure(self, response: httpx.Response, sends: bool) -> tuple[ProviderError, float | None]:
        status = response.status_code
        code, message = self.error_details(response)
        kwargs: dict[str, Any] = {"provider": self.name, "code": code, "http_status": status}
        if status in (401, 403):
            return AuthError(message, hint=f"check the {self.name} credentials in the environment", **kwargs), None
        if status == 404:
            # The endpoint is not there: a wrong base_url (a missing /v3 or /api/v1) or account. It says
            # nothing about the fax, so it must stop the run like a refused login, not charge every
            # recipient an attempt as a "document" failure. (Retarus' "no report yet" 404 is caught there.)
            path = response.request.url.path
            return AuthError(
                f"{path} not found (HTTP 404: {message}); check provider.base_url (with the API's path prefix, "
                f"as `faxops simulate` prints it) and the {self.name} account",
                **kwargs,
            ), None
        if status == 429:
            wait = retry_after(response)
            return TransientError(f"rate limited: {message}", retry_after=wait, **kwargs), wait
        if status in self.transient_statuses:
            return TransientError(message, retry_after=retry_after(response), **kwargs), retry_after(response)
        # Any other 4xx is about this request (a bad number, a refused document): reject this fax with the provider's
        # own code and let the campaign go on.
        if 400 <= status < 500:
            return RejectedError(message, **kwargs), None
        if sends:
            return OutcomeUnknownError(f"the provider failed after receiving the request: {message}", **kwargs), None
        # A 5xx on a read changes nothing at the provider: retrying it is always safe.
        return TransientError(message, **kwargs), None

    def json(self, response: httpx.Response, *, sends: bool) -> Any:
        """The JSON body of a 2xx answer; an unreadable one is an unknown outcome for a call that sends."""
        try:
            return response.json()
        except ValueError as exc:
            error_cls = OutcomeUnknownError if sends else TransientError
            raise error_cls(
                f"unreadable answer: {response.text[:200]!r}", provider=self.name, http_status=response.status_code
            ) from exc

    def read(self, model: type[_Model], data: Any, what: str) -> _Model:
        """A read answer in the shape ``model`` describes. Another shape is a ``TransientError``: nothing is
        concluded from an answer faxops cannot read (reconcile holds the job instead of crashing)."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top)"
            raise TransientError(
                f"unexpected shape of {what}: {where}: {first['msg']} (got {str(data)[:160]})", provider=self.name
            ) from exc

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
