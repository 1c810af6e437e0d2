"""The one interface every fax provider implements.

A provider is a class with its facts as class attributes (what it accepts, what it can look up) and a
handful of methods. The engine (``faxops.apply``) is its only caller. Methods raise the
``ProviderError`` subclasses of ``faxops.errors``; which one decides what the engine does:

* ``TransientError``: the request certainly did not take effect; try again later.
* ``RejectedError``: this job was refused (the provider's code and message are kept).
* ``AuthError``: stop the run; nothing else can succeed.
* ``OutcomeUnknownError``: the request may have been accepted; reconcile, never resend blindly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import orjson

from faxops.domain import Document, Receipt, Sender, StatusUpdate, Submission
from faxops.errors import Problem, ProviderError
from faxops.fields import StrictModel


class BadPush(ValueError):
    """A status push that is not in any form faxops reads (answered 400, nothing recorded)."""


#: one recipient's status from a push, with the provider ids that may name its attempt (job, fax, outbox)
PushedUpdate = tuple[tuple[str, ...], StatusUpdate]


class ProviderSettings(StrictModel):
    """Base of each provider's settings section in the manifest (``provider:``)."""

    type: str


@dataclass(frozen=True)
class ProviderContext:
    """What a provider may know about where it runs."""

    base_dir: Path  # the manifest's directory; relative paths in settings are relative to it
    campaign: str


@dataclass(frozen=True)
class JobRef:
    """A submitted job as the lockfile knows it: enough to ask the provider about it again."""

    job_id: str
    numbers: Sequence[str]
    reference: str | None = None
    recipient_ids: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Lookup:
    """The answer to "did you receive the submission with this reference?".

    ``found`` holds the receipts the provider has for it; ``decided`` is False when the provider cannot
    tell (no lookup in its API), in which case a person must decide.
    """

    decided: bool
    found: Sequence[Receipt] = ()
    evidence: str = ""


class Provider(ABC):
    """A fax service. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]
    settings_model: ClassVar[type[ProviderSettings]]
    #: most recipients one job may carry
    max_recipients_per_job: ClassVar[int] = 1
    #: recipients per job when ``schedule.batch_size`` is not set (None: as many as ``job_size()``)
    default_batch_size: ClassVar[int | None] = None
    #: document formats (``faxops.documents`` names) the API accepts
    document_formats: ClassVar[frozenset[str]]
    max_document_bytes: ClassVar[int | None] = None
    #: most bytes of all documents of one fax together (what the API takes in one request)
    max_total_bytes: ClassVar[int | None] = None
    max_documents: ClassVar[int | None] = None
    #: where our client reference travels in the API, or None when it has no such field
    reference_field: ClassVar[str | None] = None
    #: how a lost answer is found again: by our reference, by listing recent jobs, or not at all
    lookup: ClassVar[Literal["reference", "listing", "none"]] = "none"
    #: whether the provider prints ``sender.header`` (the identification line) on every page
    prints_header: ClassVar[bool] = False
    #: whether the API takes a start time, so that scheduled faxes can be handed over early
    can_schedule: ClassVar[bool] = False
    #: least time between two status polls the provider asks for
    min_poll_interval: ClassVar[float] = 0.0
    can_cancel: ClassVar[bool] = False
    #: a cancel stops every recipient of the job, not one (FAX.PLUS deletes the whole outbox entry)
    cancels_whole_job: ClassVar[bool] = False
    can_retry: ClassVar[bool] = False
    #: whether per-recipient fields (name, personalisation) reach the provider
    personalisation: ClassVar[bool] = False
    reports_status: ClassVar[bool] = True
    #: what the provider's status push is called, or None when it sends none (``webhook serve`` offers
    #: ``/<name>`` for each provider that has one)
    push_format: ClassVar[str | None] = None
    #: a push may name a fax id faxops has not learnt yet (it comes with the first status poll): such a
    #: push is matched to the number's latest attempt when it began before the fax did
    push_before_ids: ClassVar[bool] = False

    def __init__(self, settings: ProviderSettings, context: ProviderContext) -> None:
        self.settings = settings
        self.context = context

    def check(self, documents: Sequence[Document], sender: Sender | None = None) -> list[Problem]:
        """Problems that would make the provider refuse this campaign, found before anything is sent."""
        problems: list[Problem] = []
        for doc in documents:
            if doc.format not in self.document_formats:
                allowed = ", ".join(sorted(self.document_formats))
                problems.append(
                    Problem(
                        f"{self.name} does not accept {doc.format} documents (it accepts {allowed})",
                        file=doc.path,
                    )
                )
            if self.max_document_bytes is not None and doc.size > self.max_document_bytes:
                problems.append(
                    Problem(
                        f"{doc.size} bytes is over {self.name}'s limit of {self.max_document_bytes} bytes",
                        file=doc.path,
                    )
                )
        total = sum(doc.size for doc in documents)
        if self.max_total_bytes is not None and total > self.max_total_bytes:
            problems.append(
                Problem(
                    f"the documents add up to {total:,} bytes, over {self.name}'s limit of "
                    f"{self.max_total_bytes:,} bytes per fax",
                    field="documents",
                )
            )
        if self.max_documents is not None and len(documents) > self.max_documents:
            problems.append(
                Problem(
                    f"{self.name} takes at most {self.max_documents} documents, got {len(documents)}",
                    field="documents",
                )
            )
        return problems

    def job_size(self) -> int:
        """Most recipients to put in one job with these settings."""
        return self.max_recipients_per_job

    @abstractmethod
    def submit(self, submission: Submission) -> Receipt:
        """Send one job. Returns the provider's receipt, or raises a ``ProviderError`` subclass."""

    @abstractmethod
    def find(self, submission: Submission, since: datetime | None = None) -> Lookup:
        """Look for a submission whose answer was lost (crash, timeout after the request left).

        ``since`` is when its intent was recorded: providers without a client reference match by number
        and time."""

    def status(self, job: JobRef) -> list[StatusUpdate]:
        """What the provider says about each recipient of a job now; [] when it does not report status."""
        return []

    def cancel(self, job: JobRef) -> list[StatusUpdate]:
        """Cancel a fax that has not been sent yet (where ``can_cancel``)."""
        raise ProviderError(f"{self.name} cannot cancel faxes through its API", provider=self.name)

    def retry(self, job: JobRef) -> list[StatusUpdate]:
        """Ask the provider to send a failed fax again under the same id (where ``can_retry``)."""
        raise ProviderError(f"{self.name} cannot retry a fax through its API", provider=self.name)

    def close(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing
        """Release connections."""

    @classmethod
    def parse_push(cls, body: bytes, content_type: str) -> list[PushedUpdate]:
        """The updates in one status push of this provider (where ``push_format``); ``BadPush`` if unreadable.

        A class method: the webhook receiver has no settings and no connection, only the request.
        """
        raise BadPush(f"{cls.name} sends no status pushes")


def push_json(body: bytes, *, allow_list: bool = False) -> Any:
    """A push body as JSON (an object, or a list where allowed); ``BadPush`` otherwise."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadPush(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict) and not (allow_list and isinstance(doc, list)):
        raise BadPush("expected a JSON object")
    return doc


def push_number(value: object) -> str:
    """A pushed recipient number as E.164 (pushes write ``4930...``, ``004930...`` or ``+49 30 ...``)."""
    text = str(value or "").strip().replace(" ", "")
    if not text:
        raise BadPush("a recipient without a number")
    return text if text.startswith("+") else "+" + text.removeprefix("00")
