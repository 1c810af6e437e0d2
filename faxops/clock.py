"""The one source of "now" and of waiting, so that schedules, retry waits and rate limits can be tested
with a clock that tests move by hand (no sleeping in tests); and the one spelling of times in state files.

Nothing else in faxops calls ``datetime.now`` or ``time.sleep`` on the program's behalf: a provider that
did would put its own idea of "now" into a schedule the tests cannot move. (The loopback simulators in
``faxops.testing`` keep real time on purpose: they stand for a provider's servers.)"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock time, and sleeping that a stop event interrupts."""

    def now(self) -> datetime:
        # Always aware, always UTC: naive and aware datetimes cannot be compared, and one naive "now" in a schedule
        # would raise deep inside a run.
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Wait ``seconds``; False when ``stop`` was set first."""
        if seconds <= 0:
            return not (stop and stop.is_set())
        if stop is None:
            time.sleep(seconds)
            return True
        # Event.wait, not time.sleep: Ctrl-C and `apply --wait`'s stop must end a long rate-limit wait at once.
        return not stop.wait(seconds)


class ManualClock(Clock):
    """A clock that only moves when told to; ``sleep`` moves it instead of waiting."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            # Monotonic time follows the manual clock too: rate limiters and token expiry measure with it, and a test
            # that moves "now" must move them along.
            return self._now.timestamp()

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        if stop is not None and stop.is_set():
            return False
        with self._lock:
            self.slept.append(seconds)
            self._now += timedelta(seconds=max(0.0, seconds))
        return True


#: what the program uses; tests replace it with a ``ManualClock``
CLOCK: Clock = Clock()


def now() -> datetime:
    """Now, from the program's clock (a test's ``ManualClock`` when one is installed)."""
    return CLOCK.now()


def sleep(seconds: float, stop: threading.Event | None = None) -> bool:
    """Wait on the program's clock; False when ``stop`` was set first."""
    return CLOCK.sleep(seconds, stop)


def iso(moment: datetime) -> str:
    """Timestamps in state files: UTC, milliseconds, ``Z``."""
    # One fixed width and zone: the state files are diffed in Git and sorted as text, so two spellings of the same
    # instant would show as a change and sort wrongly.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: object) -> datetime | None:
    """A timestamp as ``iso`` writes it (or any ISO 8601 form); naive ones are UTC; None when unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except ValueError:
        return None
    # Without an offset, UTC and never the host's local time, which differs between a laptop and CI; a provider
    # whose times are local says so in its own setting (Telphin's timezone).
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def now_iso() -> str:
    """Now, as ``iso`` writes it."""
    return iso(CLOCK.now())
