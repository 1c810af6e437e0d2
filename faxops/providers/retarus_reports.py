"""Retarus' job reports: the status codes as Retarus spells them, the report shapes, and the XML push form.

Kept apart from the provider (``retarus.py``) because the same reports arrive three ways: read per job,
listed per data centre when an answer was lost, and pushed to ``webhook serve`` as JSON or XML.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from pydantic import BaseModel, ConfigDict

from faxops.clock import parse_iso
from faxops.domain import FailureClass, Status, StatusUpdate
from faxops.providers.base import BadPush

_F = Status.FAILED
#: Retarus' recipient status codes, as Retarus spells them -> (faxops status, failure class, retryable).
#: Line faults that Retarus retries itself and then reports have no class of their own: ``unknown``, retried.
STATUS: dict[str, tuple[Status, FailureClass | None, bool | None]] = {
    "OK": (Status.DELIVERED, None, None),
    # Every page went through; only the receiver's confirmation of the end is missing. Sending again
    # would most likely fax the recipient twice.
    "EOD_FAILED": (Status.DELIVERED, None, None),
    "BUSY": (_F, FailureClass.BUSY, True),
    "RING_TO": (_F, FailureClass.NO_ANSWER, True),  # rang until the timeout
    "WOUT_TO": (_F, FailureClass.NO_ANSWER, True),  # no reaction when dialled
    "NOFAX": (_F, FailureClass.NOT_FAX, True),  # a person, an answering machine or a modem answered
    "NOFAX_DIS": (_F, FailureClass.NOT_FAX, True),
    "NOFAX_TO": (_F, FailureClass.NOT_FAX, True),
    "WRONG_NO": (_F, FailureClass.INVALID_NUMBER, False),
    "CHANGED_NO": (_F, FailureClass.INVALID_NUMBER, False),
    "DIAL_NC": (_F, FailureClass.INVALID_NUMBER, False),  # the dialled number is invalid or incomplete
    "BLACKLIST": (_F, FailureClass.BLOCKED, False),  # Retarus' list, the Robinson list or ECOFAX
    "PBLACKLIST": (_F, FailureClass.BLOCKED, False),  # the customer's own list
    "MISSING_FAX_FILE": (_F, FailureClass.DOCUMENT, False),
    "UNKNOWN_FAX_FILE": (_F, FailureClass.DOCUMENT, False),
    "TIFF_PAGE_ERR": (_F, FailureClass.DOCUMENT, False),
    "RENDERING_ERROR": (_F, FailureClass.DOCUMENT, False),
    "REM_DIS": (_F, FailureClass.UNKNOWN, True),  # the receiver ended the call
    "NO_TRAIN": (_F, FailureClass.UNKNOWN, True),  # the modems could not agree
    "PAGE_SEND_ERR": (_F, FailureClass.UNKNOWN, True),
    "PAGE_SEND_ERROR": (_F, FailureClass.UNKNOWN, True),
    "NO_REMOTEINFO": (_F, FailureClass.UNKNOWN, True),
    "BAD_LINES": (_F, FailureClass.UNKNOWN, True),
    "FANS_GF": (_F, FailureClass.UNKNOWN, True),
    "DIAL_GF": (_F, FailureClass.UNKNOWN, True),
    "COMERROR": (_F, FailureClass.UNKNOWN, True),
    "CANCELLED": (Status.CANCELED, None, False),
}


class _Loose(BaseModel):
    """A report as the reference describes it: the fields faxops reads are checked, others ignored."""

    model_config = ConfigDict(extra="ignore")


class Reference(_Loose):
    customerDefinedId: str | None = None


class RecipientReport(_Loose):
    number: str
    status: str
    reason: str | None = None
    sentTs: str | None = None
    durationInSecs: float | None = None


class Report(_Loose):
    """One job's report (``GET …/reports/{jobId}``)."""

    jobId: str
    recipientStatus: list[RecipientReport] = []
    pages: int | None = None
    reference: Reference | None = None


class ReportList(_Loose):
    reports: list[Report]


def updates_from_report(report: Mapping[str, Any]) -> list[StatusUpdate]:
    """faxops statuses from one Retarus job report."""
    pages = report.get("pages")
    updates = []
    for item in report.get("recipientStatus") or []:
        raw = str(item.get("status") or "")
        # A code Retarus has not documented is kept as it is and classed unknown: no guess from its words.
        status, failure, retryable = STATUS.get(raw, (Status.FAILED, FailureClass.UNKNOWN, None))
        reason = item.get("reason") or None
        updates.append(
            StatusUpdate(
                number=str(item.get("number")),
                status=status,
                raw=raw,
                reason=None if status == Status.DELIVERED and raw == "OK" else (reason or raw),
                retryable=retryable,
                pages=pages if isinstance(pages, int) else None,
                at=parse_iso(item.get("sentTs")),
                failure=failure,
                duration=float(item["durationInSecs"]) if isinstance(item.get("durationInSecs"), int | float) else None,
            )
        )
    return updates


def report_from_xml(body: bytes) -> dict[str, Any]:
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
