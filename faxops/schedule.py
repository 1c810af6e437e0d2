"""When a recipient may be faxed: the campaign's start and expiry, send windows in the recipient's local
time, holidays, and the retry policy per failure class. Pure: every function takes ``now``.

Time zones come from the number (libphonenumber's prefix table, the same data as
``phonenumbers.timezone``), unless the manifest fixes one. A number whose prefix spans several zones is
sendable only when the window is open in all of them: a fax at 08:00 somewhere is a fax sent too early.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from faxops.domain import FailureClass

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HORIZON_DAYS = 400  # a window that does not open within this is "never" (e.g. every day a holiday)
UNKNOWN_ZONE = "Etc/Unknown"


@lru_cache(maxsize=65536)
def _zones_of_prefix(digits: str) -> tuple[str, ...]:
    # Longest prefix first: +1 212 is New York only, while +1 alone spans the continent.
    for length in range(min(TIMEZONE_LONGEST_PREFIX, len(digits)), 0, -1):
        zones = TIMEZONE_DATA.get(digits[:length])
        if zones:
            return tuple(z for z in zones if z != UNKNOWN_ZONE) or (UNKNOWN_ZONE,)
    return (UNKNOWN_ZONE,)


def zones_for_number(number: str) -> tuple[str, ...]:
    """IANA time zones of an E.164 number; the lookup reads at most the first nine digits, so cache by them."""
    return _zones_of_prefix(number[1 : 1 + TIMEZONE_LONGEST_PREFIX])


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time


@dataclass(frozen=True)
class Schedule:
    """The manifest's ``schedule`` as times: everything in UTC except windows, which are local."""

    start_at: datetime | None = None
    expire_at: datetime | None = None
    timezone: str | None = None
    windows: tuple[Window, ...] = ()
    holidays: frozenset[date] = frozenset()
    # Plans ask the same (zones, moment) question for every recipient of a zone: answer it once.
    _cache: dict[tuple[tuple[str, ...], datetime], datetime | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def from_spec(cls, spec: object) -> Schedule:
        """From a ``faxops.manifest.ScheduleSpec`` (typed loosely to keep this module free of pydantic)."""
        zone = getattr(spec, "timezone", None)
        local = ZoneInfo(zone) if zone else UTC

        def aware(value: datetime | None) -> datetime | None:
            if value is None:
                return None
            return (value if value.tzinfo else value.replace(tzinfo=local)).astimezone(UTC)

        start = aware(getattr(spec, "start_at", None))
        expire_raw = getattr(spec, "expire_at", None)
        if isinstance(expire_raw, timedelta):
            # "48h" counts from start_at; without one it cannot be placed, and the campaign never expires.
            expire = start + expire_raw if start is not None else None
        else:
            expire = aware(expire_raw)
        windows = tuple(
            Window(frozenset(_DAYS.index(d) for d in w.days), w.start, w.end) for w in getattr(spec, "windows", ())
        )
        return cls(start, expire, zone, windows, frozenset(getattr(spec, "holidays", ())))

    @property
    def restricts_time(self) -> bool:
        return bool(self.windows or self.holidays)

    def zones(self, number: str) -> tuple[str, ...]:
        if self.timezone:
            return (self.timezone,)
        # Without windows or holidays the zone changes nothing: skip the prefix lookup for every number.
        if not self.restricts_time:
            return ("UTC",)
        return zones_for_number(number)

    def expired(self, now: datetime) -> bool:
        return self.expire_at is not None and now >= self.expire_at

    def due(self, zones: tuple[str, ...], at: datetime) -> datetime | None:
        """The first moment at or after ``at`` when sending to these zones is allowed; None: never again."""
        if self.start_at is not None and at < self.start_at:
            at = self.start_at
        if self.restricts_time:
            key = (zones, at)
            if key not in self._cache:
                self._cache[key] = _all_open(self, zones, at)
            result = self._cache[key]
        else:
            result = at
        # Due at or after the expiry is never: a late fax is worse than none (it announces a past offer).
        if result is not None and self.expire_at is not None and result >= self.expire_at:
            return None
        return result

    def open_until(self, zones: tuple[str, ...], at: datetime) -> datetime:
        """When the window open at ``at`` closes (in every zone); ``at`` itself when it is closed."""
        ends = [_zone_open_until(self, _zone(z), at) for z in zones]
        end = min(ends) if ends else at
        if self.expire_at is not None:
            end = min(end, self.expire_at)
        return end


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _intervals(schedule: Schedule, tz: ZoneInfo, day: date) -> list[tuple[datetime, datetime]]:
    """The open intervals of one local day, in UTC (a DST change makes a day 23 or 25 hours long)."""
    if day in schedule.holidays:
        return []
    if not schedule.windows:
        start = datetime.combine(day, time(0), tz).astimezone(UTC)
        return [(start, datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC))]
    out = []
    for window in schedule.windows:
        if day.weekday() in window.days:
            out.append(
                (
                    datetime.combine(day, window.start, tz).astimezone(UTC),
                    datetime.combine(day, window.end, tz).astimezone(UTC),
                )
            )
    return sorted(out)


def _zone_next_open(schedule: Schedule, tz: ZoneInfo, at: datetime) -> datetime | None:
    day = at.astimezone(tz).date() - timedelta(days=1)  # a window may run past midnight UTC
    for offset in range(_HORIZON_DAYS):
        for start, end in _intervals(schedule, tz, day + timedelta(days=offset)):
            if at < end:
                return max(at, start)
    return None


def _zone_open_until(schedule: Schedule, tz: ZoneInfo, at: datetime) -> datetime:
    day = at.astimezone(tz).date() - timedelta(days=1)
    for offset in range(3):
        for start, end in _intervals(schedule, tz, day + timedelta(days=offset)):
            if start <= at < end:
                return end
    return at


def _all_open(schedule: Schedule, zones: Sequence[str], at: datetime) -> datetime | None:
    tzs = [_zone(z) for z in zones] or [ZoneInfo("UTC")]
    # Move to the latest next opening until all zones agree; each step moves forward, so this ends (the
    # bound guards against windows that never overlap, which are "never").
    for _ in range(64):
        candidates = [_zone_next_open(schedule, tz, at) for tz in tzs]
        if any(c is None for c in candidates):
            return None
        latest = max(c for c in candidates if c is not None)
        if latest == at:
            return at
        at = latest
    return None


# --- retry policy -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassRule:
    max_attempts: int | None  # attempts in all, the first included; None: the campaign's
    wait: timedelta


#: what a failure class allows unless the manifest says otherwise
DEFAULT_RULES: Mapping[FailureClass, ClassRule] = {
    FailureClass.BUSY: ClassRule(None, timedelta(minutes=10)),
    FailureClass.NO_ANSWER: ClassRule(None, timedelta(minutes=30)),
    FailureClass.NOT_FAX: ClassRule(2, timedelta(hours=1)),
    FailureClass.INVALID_NUMBER: ClassRule(1, timedelta(0)),
    FailureClass.BLOCKED: ClassRule(1, timedelta(0)),
    FailureClass.DOCUMENT: ClassRule(None, timedelta(0)),
    FailureClass.ACCOUNT: ClassRule(None, timedelta(0)),
    FailureClass.UNKNOWN: ClassRule(None, timedelta(minutes=30)),
}

#: failures that are not the recipient's: a run stops at the first one
CAMPAIGN_FAILURES = frozenset({FailureClass.DOCUMENT, FailureClass.ACCOUNT})

_NEVER = {
    FailureClass.INVALID_NUMBER: "invalid or unallocated number",
    FailureClass.BLOCKED: "on a do-not-fax list",
}


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    min_gap: timedelta = timedelta(minutes=5)
    rules: Mapping[FailureClass, ClassRule] = field(default_factory=lambda: dict(DEFAULT_RULES))

    @classmethod
    def from_spec(cls, spec: object) -> RetryPolicy:
        rules = dict(DEFAULT_RULES)
        for name, rule in (getattr(spec, "classes", None) or {}).items():
            base = rules[FailureClass(name)]
            rules[FailureClass(name)] = ClassRule(
                rule.max_attempts if rule.max_attempts is not None else base.max_attempts,
                rule.wait if rule.wait is not None else base.wait,
            )
        return cls(getattr(spec, "max_attempts", 3), getattr(spec, "min_gap", timedelta(minutes=5)), rules)

    def limit(self, failure: FailureClass) -> int:
        rule = self.rules[failure]
        return min(self.max_attempts, rule.max_attempts) if rule.max_attempts is not None else self.max_attempts

    def next_attempt(
        self, failure: FailureClass, attempts: int, failed_at: datetime | None
    ) -> tuple[datetime | None, str]:
        """When a recipient that failed this way may be tried again (None: never), and why."""
        limit = self.limit(failure)
        if attempts >= limit:
            if failure in _NEVER:
                return None, f"{_NEVER[failure]}: never retried"
            return None, f"out of attempts ({attempts} of {limit} for {failure})"
        if failed_at is None:
            return datetime.min.replace(tzinfo=UTC), ""
        # min_gap is a floor for every class: no number is dialled twice within it, whatever its rule says.
        return failed_at + max(self.rules[failure].wait, self.min_gap), ""


# --- duration estimate ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    finish: datetime | None  # None: some recipients never become due (expiry, windows)
    per_minute: float | None  # the pace assumed
    unreachable: int = 0  # recipients that would not be sent before the expiry


@dataclass
class _Bucket:
    due: datetime
    count: int


def estimate(
    schedule: Schedule,
    due_counts: Mapping[tuple[tuple[str, ...], datetime], int],
    now: datetime,
    per_minute: float | None,
) -> Estimate:
    """When the last recipient would be sent at ``per_minute`` within its windows.

    ``due_counts`` counts recipients by (time zones, first due time). Simulated a minute at a time
    (jumping over closed hours), so a million recipients in a dozen zones cost a few thousand steps.
    """
    queues: dict[tuple[str, ...], list[_Bucket]] = {}
    for (zones, due), count in sorted(due_counts.items(), key=lambda item: item[0][1]):
        queues.setdefault(zones, []).append(_Bucket(due, count))
    t = now.replace(second=0, microsecond=0)
    finish = now
    capacity = float(per_minute) if per_minute else float("inf")
    credit = 0.0
    for _ in range(2_000_000):  # a bound, not a limit met in practice: about four years of minutes
        waiting = [z for z, q in queues.items() if q]
        if not waiting:
            return Estimate(finish, per_minute)
        step_end = t + timedelta(minutes=1)
        sendable = [z for z in waiting if queues[z][0].due < step_end and schedule.due(z, t) == t]
        if not sendable:
            upcoming = [schedule.due(z, max(t, queues[z][0].due)) for z in waiting]
            future = [u for u in upcoming if u is not None and u > t]
            if not future:
                left = sum(b.count for q in queues.values() for b in q)
                return Estimate(None, per_minute, left)
            nxt = min(future)
            t = nxt.replace(second=0, microsecond=0)
            if t < nxt:
                t += timedelta(minutes=1)
            continue
        # Unused capacity carries over one minute at most: a closed window does not save up a burst.
        credit = min(credit + capacity, max(capacity, 1.0))
        for zones in sendable:
            queue = queues[zones]
            while queue and queue[0].due < step_end and credit >= 1:
                take = queue[0].count if credit == float("inf") else min(queue[0].count, int(credit))
                queue[0].count -= take
                credit -= take
                finish = max(finish, step_end if per_minute else max(t, queue[0].due))
                if queue[0].count <= 0:
                    queue.pop(0)
        t = step_end
    return Estimate(None, per_minute)
