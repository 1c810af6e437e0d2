"""Value types shared by the engine, the state and the providers.

They are plain frozen dataclasses with ``__slots__``: a million recipients must fit in memory, and none
of these need validation (the manifest models did that).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


class Status(enum.StrEnum):
    """faxops' normalised status of one recipient's attempt. Providers keep their raw status beside it."""

    PENDING = "pending"  # intent recorded, provider's answer not (yet) known
    NOT_SENT = "not_sent"  # the request certainly never took effect
    QUEUED = "queued"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        return self in _FINAL

    @property
    def rank(self) -> int:
        """Order of progress; an update never moves an attempt to a lower rank."""
        return _RANK[self]


_FINAL = frozenset({Status.DELIVERED, Status.FAILED, Status.CANCELED, Status.EXPIRED, Status.NOT_SENT})
_RANK = {
    Status.PENDING: 0,
    Status.QUEUED: 1,
    Status.SENDING: 2,
    Status.DELIVERED: 3,
    Status.FAILED: 3,
    Status.CANCELED: 3,
    Status.EXPIRED: 3,
    Status.NOT_SENT: 3,
}


class FailureClass(enum.StrEnum):
    """Why a fax failed, in the terms a retry policy needs. Providers keep their raw code beside it."""

    BUSY = "busy"  # line busy: retry later
    NO_ANSWER = "no_answer"  # rang out: retry later
    NOT_FAX = "not_fax"  # a person or a voice line answered: retry at most once
    INVALID_NUMBER = "invalid_number"  # unallocated, invalid, not in service: never retry
    BLOCKED = "blocked"  # on the provider's or a national do-not-fax list: never retry
    DOCUMENT = "document"  # the document was refused or could not be rendered: stop the campaign
    ACCOUNT = "account"  # credit, plan, credentials: stop the campaign, keep state
    UNKNOWN = "unknown"


# Provider codes seen in the five APIs and the sandbox, upper-cased; anything else is classified by words.
# (FAX.PLUS and Retarus updates carry their class from the provider module, which knows every code.)
_CODES: dict[str, FailureClass] = {
    "BUSY": FailureClass.BUSY,
    "USER_BUSY": FailureClass.BUSY,
    "FAILED_USER_BUSY": FailureClass.BUSY,
    "NO_ANSWER": FailureClass.NO_ANSWER,
    "RING_TO": FailureClass.NO_ANSWER,
    "FAILED_NO_ANSWER": FailureClass.NO_ANSWER,
    "NOFAX": FailureClass.NOT_FAX,
    "NO_FAX": FailureClass.NOT_FAX,
    "INVALID_NUMBER": FailureClass.INVALID_NUMBER,
    "NUMBER_UNKNOWN": FailureClass.INVALID_NUMBER,
    "FX_RECIPIENTS_INVALID": FailureClass.INVALID_NUMBER,
    "BLACKLISTED": FailureClass.BLOCKED,
    "FX_FILE_INVALID": FailureClass.DOCUMENT,
    "FX_MAX_FILES_REACHED": FailureClass.DOCUMENT,
}
_WORDS: tuple[tuple[tuple[str, ...], FailureClass], ...] = (
    (("busy",), FailureClass.BUSY),
    (("no answer", "no_answer", "noanswer", "ring", "timeout", "timed out"), FailureClass.NO_ANSWER),
    (("not a fax", "not_fax", "nofax", "no fax", "voice", "human"), FailureClass.NOT_FAX),
    (("blacklist", "blocklist", "robinson", "do not fax", "opt-out"), FailureClass.BLOCKED),
    (
        ("invalid number", "not allocated", "unallocated", "number unknown", "not in service", "no such number"),
        FailureClass.INVALID_NUMBER,
    ),
    (("document", "file", "render", "conversion", "convert"), FailureClass.DOCUMENT),
    (("credit", "balance", "payment", "quota", "account", "unauthori", "forbidden"), FailureClass.ACCOUNT),
)


def classify(raw: str | None, reason: str | None = None, retryable: bool | None = None) -> FailureClass:
    """The failure class of a provider's code and message (the code decides where it is known)."""
    for code in (raw, reason):
        if code:
            known = _CODES.get(code.strip().upper().replace("-", "_").replace(" ", "_"))
            if known is not None:
                return known
    text = " ".join(p for p in (raw, reason) if p).lower().replace("_", " ")
    for words, failure in _WORDS:
        if any(word.replace("_", " ") in text for word in words):
            return failure
    if retryable is False:
        return FailureClass.INVALID_NUMBER
    return FailureClass.UNKNOWN


# Recipient and Invalid are built once per list row: plain slotted dataclasses, because frozen ones cost
# four times as much to construct. Treat them as immutable all the same.
@dataclass(slots=True)
class Recipient:
    """One destination, identified by its E.164 number."""

    number: str
    name: str | None = None
    fields: Mapping[str, str] | None = None
    source: str = ""  # where it came from, e.g. ``recipients.csv:12``


@dataclass(slots=True)
class Invalid:
    """A list entry whose number is not a valid fax number."""

    raw: str
    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class Document:
    """A document as read from disk: what it is, how many pages, and its fingerprint."""

    path: Path
    name: str  # the file name presented to providers
    format: str  # pdf, tiff, jpeg, png, txt, html, doc, docx, xls, xlsx, ps, pcl
    size: int
    sha256: str
    pages: int | None  # None where the format does not tell without rendering

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


@dataclass(frozen=True, slots=True)
class Sender:
    """How the campaign identifies itself on the line and on the page."""

    csid: str | None = None
    header: str | None = None
    number: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    """One provider job: the same documents to one or more recipients."""

    reference: str  # our deterministic client reference, stored wherever the API keeps one
    recipients: Sequence[Recipient]
    documents: Sequence[Document]
    sender: Sender
    campaign: str
    send_at: datetime | None = None  # provider-side scheduling: transmit no earlier than this


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """What a provider says about one recipient of one job."""

    number: str
    status: Status
    raw: str | None = None  # the provider's own status word or code
    reason: str | None = None
    retryable: bool | None = None
    pages: int | None = None
    at: datetime | None = None
    provider_id: str | None = None  # an id the provider gave this recipient's fax later (FAX.PLUS fax id)
    failure: FailureClass | None = None  # where the provider's code says it; else classified from raw/reason
    duration: float | None = None  # seconds on the line
    cost: str | None = None  # as the provider states it, with its currency

    def failure_class(self) -> FailureClass | None:
        if self.status != Status.FAILED:
            return None
        return self.failure or classify(self.raw, self.reason, self.retryable)


@dataclass(frozen=True, slots=True)
class Receipt:
    """A provider's answer to an accepted submission."""

    job_id: str
    recipient_ids: Mapping[str, str] = field(default_factory=dict)  # number -> per-recipient id
    updates: Sequence[StatusUpdate] = ()  # statuses known at once (the sandbox transmits synchronously)
