"""What send windows cost the planner: 1,000,000 recipients in five time zones, with and without a
weekday 09:00-17:00 window. Pure ``make_plan``, no I/O: ``.venv/bin/python bench/plan_windows.py``."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from datetime import time as clock_time

from faxops.domain import Recipient
from faxops.plan import Action, Rules, make_plan
from faxops.schedule import Schedule, Window

N = 1_000_000
PREFIXES = ["+49301", "+1212736", "+81332", "+61293", "+44207"]  # Berlin, New York, Tokyo, Sydney, London


def candidates() -> Iterator[Recipient]:
    for i in range(N):
        prefix = PREFIXES[i % len(PREFIXES)]
        yield Recipient(prefix + str(i).rjust(12 - len(prefix), "0"), source=f"list.csv:{i + 2}")


def main() -> None:
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    windows = Schedule(windows=(Window(frozenset(range(5)), clock_time(9), clock_time(17)),))
    for label, rules in (
        ("windows in 5 zones, 1,000/min", Rules(now=now, schedule=windows, per_minute=1000)),
        ("no schedule", Rules(now=now)),
    ):
        started = time.perf_counter()
        plan = make_plan("bench", candidates(), {}, rules=rules, pages_per_fax=2)
        elapsed = time.perf_counter() - started
        finish = plan.estimate.finish if plan.estimate else None
        print(
            f"{label}: {elapsed:.1f} s · send {plan.count(Action.SEND):,} · deferred {plan.count(Action.DEFER):,}"
            f" · last fax {finish} · peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
        )


if __name__ == "__main__":
    main()
