"""Where a campaign's results go (files, webhooks, e-mail, receipts) and the secrets those need.

Every secret here is a ``SecretRef`` (env:/file: reference), never the secret itself: a manifest is
committed to Git and shown in plans, and a literal password there would leak with both.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field

from faxops.fields import Duration, SecretRef, StrictModel


class StatusPush(StrictModel):
    """How `faxops webhook serve` authenticates status pushes from the provider."""

    secret: SecretRef = Field(description="Shared secret: Basic auth password, Bearer token, or ?token= in the URL.")
    username: str = Field(default="faxops", description="User name for Basic auth.")


When = Annotated[
    Literal["final", "always", "manual"],
    Field(
        description="final: when every recipient has a final status; always: after every apply/refresh; "
        "manual: only `faxops report`.",
    ),
]


class FileReport(StrictModel):
    """A report written to a file beside the manifest."""

    type: Literal["file"]
    path: str = Field(min_length=1, description="Relative to the manifest.")
    format: Literal["json", "csv", "html"] = "json"
    # Unmasked by default only here: a file report stays beside the manifest, where the recipient lists already are;
    # the targets that leave the machine (webhook, e-mail) mask by default.
    mask_numbers: bool = Field(default=False, description="Show +4930****5678 instead of the whole number.")
    when: When = "final"


class WebhookReport(StrictModel):
    """A JSON POST of the summary (and optionally every recipient) to a URL."""

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    secret: SecretRef | None = Field(default=None, description="HMAC-SHA256 key: X-Faxops-Signature: sha256=<hex>.")
    # The summary only unless asked: every number in a POST to someone else's URL is a data-protection decision for
    # the campaign's owner, not a default.
    include_recipients: bool = False
    mask_numbers: bool = True
    retries: int = Field(default=3, ge=0, le=10)
    timeout: Duration = timedelta(seconds=10)
    when: When = "final"


class SmtpSpec(StrictModel):
    """The SMTP server that sends e-mail reports."""

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    # On by default: the SMTP password and the attached report must not cross the network in clear.
    starttls: bool = Field(default=True, description="Upgrade to TLS (the server's certificate is verified).")
    ca_file: str | None = Field(
        default=None, description="PEM file of the CA that signed the server's certificate (a private relay)."
    )
    username: SecretRef | None = None
    password: SecretRef | None = None


class EmailReport(StrictModel):
    """A summary by e-mail with the CSV report attached."""

    type: Literal["email"]
    to: list[str] = Field(min_length=1)
    sender: str = Field(alias="from")
    subject: str | None = None
    smtp: SmtpSpec
    mask_numbers: bool = True
    when: When = "final"


class ReceiptReport(StrictModel):
    """A receipt of every apply (counts, plan digest, who, where, CI run; numbers masked), to commit or attach."""

    type: Literal["receipt"]
    path: str = Field(
        default="receipts/{campaign}-{serial}.json",
        min_length=1,
        description="Relative to the manifest; {campaign} and {serial} (the state's serial after the apply) "
        "are filled in.",
    )
    when: Literal["apply"] = Field(default="apply", description="Written after every apply that ran.")


ReportTarget = Annotated[FileReport | WebhookReport | EmailReport | ReceiptReport, Field(discriminator="type")]
