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


@dataclass(frozen=True, slots=True)
class Receipt:
    """A provider's answer to an accepted submission."""

    job_id: str
    recipient_ids: Mapping[str, str] = field(default_factory=dict)  # number -> per-recipient id
    updates: Sequence[StatusUpdate] = ()  # statuses known at once (the sandbox transmits synchronously)
