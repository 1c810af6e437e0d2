"""The faxops exception hierarchy.

Every error a user can cause or meet is a :class:`FaxopsError`; the CLI maps each class to an exit code
in one place (``faxops.cli.EXIT_CODES``). Library code raises these and never prints or exits.

::

    FaxopsError                      1   anything the user must act on
    ├── InputError                   1   bad manifest, list, document or flag; carries every Problem found
    ├── StateError                   1   lockfile or journal unreadable/corrupt/unwritable
    │   ├── StateLockedError         3   another run holds the state lock
    │   └── JournalWriteError        1   the journal cannot be written: nothing may be sent
    ├── StalePlanError               4   a saved plan no longer matches manifest, documents or state
    ├── ApprovalError                1   apply was not confirmed
    ├── UnknownOutcomesError         5   sends with an unknown outcome are held for a person
    ├── InterruptedRun             130   Ctrl-C / SIGTERM: in-flight sends finished, state saved
    └── ProviderError                1   a provider call failed (code and message are the provider's own)
        ├── AuthError                    401/403: stop the whole run
        ├── RejectedError                other 4xx: this job is rejected, the campaign goes on
        ├── TransientError               429/5xx/timeout *before* the request left: safe to try again
        └── OutcomeUnknownError          the request may have reached the provider: reconcile, never resend
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from faxops import secrets


@dataclass(frozen=True)
class Problem:
    """One finding about the user's input, located as precisely as we can."""

    message: str
    file: Path | str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    field: str | None = None  # dotted path such as ``recipients.files[0].columns.number``
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}{prefix}{field}{self.message}"


class FaxopsError(Exception):
    """Root of every error faxops reports to a user."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        # Messages often quote a provider's answer, which may echo our credentials.
        message = secrets.scrub(message)
        super().__init__(message)
        self.message = message
        self.hint = secrets.scrub(hint) if hint else hint


class InputError(FaxopsError):
    """The user's input is wrong; ``problems`` lists every finding, not just the first."""

    def __init__(self, message: str, problems: list[Problem] | None = None, *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.problems = problems or []


class StateError(FaxopsError):
    """The recorded state cannot be read or written safely."""


class StateLockedError(StateError):
    """Another process holds the campaign's state lock."""


class JournalWriteError(StateError):
    """The write-ahead journal could not be made durable; sending must stop."""


class StalePlanError(FaxopsError):
    """A saved plan was made against inputs or state that have changed since."""


class ApprovalError(FaxopsError):
    """The user did not approve the plan (or could not be asked)."""


class UnknownOutcomesError(FaxopsError):
    """Some sends have an outcome nobody can decide automatically; a person must resolve them."""


class InterruptedRun(FaxopsError):
    """The run was interrupted; everything that was sent is recorded."""

    def __init__(self, message: str, *, signal_name: str = "SIGINT") -> None:
        super().__init__(message)
        self.signal_name = signal_name


class ProviderError(FaxopsError):
    """A provider call failed. ``code`` and ``message`` are the provider's own words."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        code: str | None = None,
        http_status: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.provider = provider
        self.code = secrets.scrub(code) if code else code
        self.http_status = http_status

    def describe(self) -> str:
        parts = [self.provider]
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.code:
            parts.append(self.code)
        return f"{' '.join(parts)}: {self.message}"


class AuthError(ProviderError):
    """Credentials were refused; no further call can succeed."""


class RejectedError(ProviderError):
    """The provider refused this job; other jobs of the campaign may still go."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        code: str | None = None,
        http_status: int | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, provider=provider, code=code, http_status=http_status)
        self.retryable = retryable


class TransientError(ProviderError):
    """The request certainly did not take effect; it is safe to send it again later."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        code: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, code=code, http_status=http_status)
        self.retry_after = retry_after


class OutcomeUnknownError(ProviderError):
    """The request may have reached the provider; only a lookup (or a person) can tell."""
