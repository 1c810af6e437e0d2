"""Pace: rate limits measured where the faxes arrive, batch sizes, and provider-side scheduling."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from faxops import clock
from faxops.pace import RateLimiter
from faxops.testing.server import QUEUED_FOR
from tests.campaigns import BUSY, FINE, INVALID
from tests.conftest import CampaignDir, Result, write_csv

Cli = Callable[..., Result]
Make = Callable[..., CampaignDir]


def test_per_minute_rate_is_kept_at_the_provider(http_campaign: Callable[[str], Any], cli: Cli) -> None:
    camp = http_campaign("retarus")
    numbers = [f"+4930123456{i:02d}" for i in range(5)]
    write_csv(camp.root / "list.csv", [(n, f"R{i}") for i, n in enumerate(numbers)])
    camp.write("schedule: {batch_size: 1, concurrency: 5, rate: {per_minute: 120}}\n")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    arrivals = sorted(float(r["at"]) for r in camp.sim.received)
    assert len(arrivals) == 5
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # 120/min is one every 500 ms; five workers would otherwise arrive within a few milliseconds. The
    # slack (200 ms) absorbs a late thread on a loaded machine: with 100 ms spacing it did not.
    assert min(gaps) >= 0.3, gaps
    assert arrivals[-1] - arrivals[0] >= 1.6


def test_per_hour_window_and_per_minute_spacing() -> None:
    limiter = RateLimiter(per_minute=None, per_hour=3)
    assert [limiter.reserve(1, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.reserve(1, 10.0) == 3590.0  # the fourth waits until the first leaves the hour
    spaced = RateLimiter(per_minute=30, per_hour=None)
    assert [spaced.reserve(1, 0.0) for _ in range(3)] == [0.0, 2.0, 4.0]
    assert spaced.reserve(5, 0.0) == 6.0  # a job of five counts five faxes
    assert spaced.reserve(1, 0.0) == 16.0


def test_batch_size_groups_recipients_into_jobs(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    text = camp.manifest.read_text().replace("  latency: 0s\n", "  latency: 0s\n  max_recipients_per_job: 10\n")
    camp.manifest.write_text(text + "schedule: {batch_size: 2}\n")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    sizes = sorted(Counter(str(r["job_id"]) for r in camp.sent()).values())
    assert sizes == [1, 2, 2]


def test_provider_side_scheduling_hands_over_early_and_records_it(
    http_campaign: Callable[[str], Any], cli: Cli
) -> None:
    camp = http_campaign("retarus")
    start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    camp.write(f"schedule: {{start_at: '{start.isoformat()}', provider_side: true}}\n")
    plan = cli("plan", camp.manifest, "--json").json
    assert plan["summary"]["send"] == 3
    assert plan["summary"]["deferred"] == 0
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert len(camp.sim.received) == 3
    job = next(iter(camp.sim.jobs.values()))
    assert job.data["meta"]["jobValid"]["start"].startswith(start.strftime("%Y-%m-%dT%H:%M"))
    attempts = [r["attempts"][-1] for r in camp.lock_data()["recipients"].values()]
    assert {a["send_at"][:16] for a in attempts} == {start.strftime("%Y-%m-%dT%H:%M")}
    camp.sim.advance(QUEUED_FOR * 10)
    assert cli("refresh", camp.manifest).code == 0
    assert {r["status"] for r in camp.status(cli).values()} == {"queued"}  # not before its start


def test_provider_side_needs_a_provider_that_schedules(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    camp.manifest.write_text(camp.manifest.read_text() + "schedule: {provider_side: true}\n")
    result = cli("validate", camp.manifest)
    assert result.code == 1
    assert "schedule.provider_side" in result.err
    assert "cannot schedule faxes on its side" in result.err


def test_expiry_marks_unsent_recipients_expired(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    camp.manifest.write_text(
        camp.manifest.read_text() + "schedule: {start_at: '2026-01-05T09:00:00Z', expire_at: 48h}\n"
    )
    result = cli("apply", camp.manifest, "--auto-approve")
    assert result.code == 0
    assert camp.sent() == []
    assert cli("status", camp.manifest, "--json").json["counts"] == {"expired": 5}
    plan = cli("plan", camp.manifest, "--json").json
    assert plan["summary"]["skip"] == 5
    assert all("never sent late" in a["reason"] for a in plan["actions"])
    lockfile_before = camp.lockfile.read_text()
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert camp.lockfile.read_text() == lockfile_before  # nothing new to record on later runs


def test_apply_wait_backs_off_while_the_provider_takes_nothing(
    http_campaign: Callable[[str], Any], cli: Cli, manual_clock: clock.ManualClock
) -> None:
    camp = http_campaign("retarus")
    camp.sim.inject("status", path=r"/rest/v1/[^/]+/fax", method="POST", status=503, times=2)
    result = cli("apply", camp.manifest, "--auto-approve", "--wait")
    assert result.code == 1  # the two failed rounds are reported as errors
    assert manual_clock.slept.count(60) == 2
    assert sorted(r["number"] for r in camp.sim.received) == sorted([BUSY, FINE, INVALID])
    assert {r["status"] for r in camp.status(cli).values()} == {"queued"}


def test_the_sandbox_honours_batch_size_without_a_setting_of_its_own(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign([(f"+49 30 1234{i:04d}", f"R{i}") for i in range(250)])
    camp.manifest.write_text(camp.manifest.read_text() + "schedule: {batch_size: 100}\n")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    sizes = sorted(Counter(str(r["job_id"]) for r in camp.sent()).values())
    assert sizes == [50, 100, 100]


def test_plan_says_when_the_provider_caps_the_batch(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    text = camp.manifest.read_text().replace("  latency: 0s\n", "  latency: 0s\n  max_recipients_per_job: 10\n")
    camp.manifest.write_text(text + "schedule: {batch_size: 50}\n")
    plan = cli("plan", camp.manifest)
    assert plan.code == 0
    assert "schedule.batch_size: sandbox takes at most 10 recipient(s) per job: jobs will hold 10, not 50" in plan.err
