"""When and how a campaign sends: its schedule, its retry rules and its budget guards."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Literal

import phonenumbers
from pydantic import Field, field_validator, model_validator

from faxops.fields import ClockTime, Duration, LocalDateTime, StrictModel

_DAY = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class SendWindow(StrictModel):
    """Days and hours (in the recipient's local time) when sending is allowed."""

    days: list[_DAY] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])  # type: ignore[arg-type]
    start: ClockTime = time(9, 0)
    end: ClockTime = time(17, 0)

    @model_validator(mode="after")
    def _order(self) -> SendWindow:
        # A window over midnight is written as two windows: one comparison per window then decides, with no question
        # of which day an overnight hour belongs to.
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Rate(StrictModel):
    per_minute: int | None = Field(default=None, ge=1)
    per_hour: int | None = Field(default=None, ge=1)


class ScheduleSpec(StrictModel):
    """When and how fast to send."""

    start_at: LocalDateTime | None = None
    expire_at: LocalDateTime | Duration | None = Field(
        default=None, description="A time, or a duration after start_at such as 48h."
    )
    timezone: str | None = Field(default=None, description="Fix one IANA time zone instead of the recipient's.")
    windows: list[SendWindow] = Field(default_factory=list)
    holidays: list[date] = Field(default_factory=list)
    rate: Rate | None = None
    # Capped at 64: each submission in flight is a thread and an open connection, and providers throttle far below
    # that anyway.
    concurrency: int = Field(default=4, ge=1, le=64, description="Submissions in flight at once.")
    batch_size: int | None = Field(default=None, ge=1, description="Recipients per provider job (capped by the API).")
    provider_side: bool = Field(default=False, description="Let the provider schedule where its API can.")

    @model_validator(mode="after")
    def _expiry(self) -> ScheduleSpec:
        if isinstance(self.expire_at, timedelta) and self.start_at is None:
            raise ValueError("expire_at as a duration counts from start_at: set start_at, or give expire_at a time")
        if isinstance(self.expire_at, datetime) and self.start_at is not None:
            start, end = self.start_at, self.expire_at
            if (start.tzinfo is None) == (end.tzinfo is None) and end <= start:
                raise ValueError("expire_at must be after start_at")
        return self

    # A field validator, not a model validator: its error is located on the `timezone:` line itself.
    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)") from exc
        return value


class RetryClass(StrictModel):
    """The retry rule of one failure class."""

    max_attempts: int | None = Field(default=None, ge=1, le=20, description="Attempts in all, the first included.")
    wait: Duration | None = Field(default=None, description="Least time after the failure before the next attempt.")


class RetrySpec(StrictModel):
    """How often, and how soon, a failed recipient may be tried again."""

    max_attempts: int = Field(default=3, ge=1, le=20, description="Attempts per recipient, the first included.")
    min_gap: Duration = Field(
        default=timedelta(minutes=5), description="Least time between two attempts to one number, whatever failed."
    )
    classes: dict[
        Literal["busy", "no_answer", "not_fax", "invalid_number", "blocked", "document", "account", "unknown"],
        RetryClass,
    ] = Field(
        default_factory=dict,
        description=(
            "Per failure class. Defaults: busy wait 10m; no_answer wait 30m; not_fax max_attempts 2, wait 1h; "
            "invalid_number and blocked max_attempts 1 (never retried); document and account stop the run; "
            "unknown wait 30m."
        ),
    )


class Budget(StrictModel):
    """Cost estimate and guards: apply refuses a run that would exceed one."""

    currency: str = Field(default="EUR", min_length=3, max_length=3)
    per_page: dict[str, float] = Field(
        default_factory=dict,
        description="Price per page by region code (DE, FR, US...), '*' for every other region.",
    )
    max_cost: float | None = Field(default=None, ge=0, description="Most this run may cost (estimated).")
    max_sends: int | None = Field(default=None, ge=0, description="Most faxes one run may submit.")
    max_pages: int | None = Field(default=None, ge=0, description="Most pages one run may submit.")

    @model_validator(mode="after")
    def _regions(self) -> Budget:
        for key in self.per_page:
            if key != "*" and key.upper() not in phonenumbers.SUPPORTED_REGIONS:
                raise ValueError(f"per_page: {key!r} is not a region code such as DE, FR, GB or US, or '*'")
        return self
