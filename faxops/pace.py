"""How fast a campaign goes out: rate, concurrency and batch size, read once from the manifest.

The same :class:`Pace` feeds the estimate ``plan`` shows (``steady_per_minute``), the sender's rate
limiter and its batching, so the estimate and the run cannot disagree about the pace.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from faxops import clock

if TYPE_CHECKING:
    from faxops.manifest import ScheduleSpec
    from faxops.providers import Provider


@dataclass(frozen=True)
class Pace:
    """The schedule's pace, with the provider's limits applied."""

    per_minute: int | None = None
    per_hour: int | None = None
    concurrency: int = 4
    batch_size: int = 1  # recipients per provider job, within the provider's limit
    requested_batch_size: int | None = None  # schedule.batch_size as written (for the warning when capped)

    @classmethod
    def of(cls, spec: ScheduleSpec, provider: Provider, parallelism: int | None = None) -> Pace:
        """The pace of ``spec`` on ``provider``; ``parallelism`` (``apply --parallelism``) overrides concurrency."""
        size = provider.job_size()
        # Without schedule.batch_size a provider may still prefer smaller jobs than its API allows
        # (the sandbox sends one recipient per job so that each number's simulated outcome is its own).
        wanted = spec.batch_size or provider.default_batch_size
        return cls(
            per_minute=spec.rate.per_minute if spec.rate else None,
            per_hour=spec.rate.per_hour if spec.rate else None,
            concurrency=parallelism or spec.concurrency,
            batch_size=min(size, wanted) if wanted else size,
            requested_batch_size=spec.batch_size,
        )

    @property
    def steady_per_minute(self) -> float | None:
        """Faxes per minute over a long run: the tighter of the two rates; None when unlimited."""
        paces = [p for p in (self.per_minute, self.per_hour / 60 if self.per_hour else None) if p]
        return min(paces) if paces else None

    @property
    def batch_capped(self) -> bool:
        """Whether the provider takes fewer recipients per job than ``schedule.batch_size`` asked for."""
        return self.requested_batch_size is not None and self.requested_batch_size > self.batch_size

    def limiter(self) -> RateLimiter:
        """A fresh limiter for one run."""
        return RateLimiter(self.per_minute, self.per_hour)


class RateLimiter:
    """Faxes per minute (paced evenly: receiving machines and providers prefer a steady stream) and per
    hour (a sliding window), across the whole run. Reservations are made in submission order."""

    def __init__(self, per_minute: int | None, per_hour: int | None) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.per_hour = per_hour
        self._next = 0.0
        self._window: deque[tuple[float, int]] = deque()
        self._in_window = 0

    def reserve(self, count: int, now: float) -> float:
        """Seconds to wait before sending ``count`` faxes (and book them)."""
        start = max(now, self._next)
        if self.per_hour:
            while self._window and self._window[0][0] <= start - 3600:
                self._in_window -= self._window.popleft()[1]
            while self._window and self._in_window + count > self.per_hour:
                moment, booked = self._window.popleft()
                self._in_window -= booked
                start = max(start, moment + 3600)
            self._window.append((start, count))
            self._in_window += count
        self._next = start + self.interval * count
        return start - now

    def wait(self, count: int, stop: threading.Event) -> bool:
        """Wait for the turn of ``count`` faxes; False when ``stop`` was set first."""
        if not (self.interval or self.per_hour):
            return not stop.is_set()
        delay = self.reserve(count, clock.CLOCK.monotonic())
        return clock.CLOCK.sleep(delay, stop)
