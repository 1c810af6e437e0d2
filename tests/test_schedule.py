"""Send windows in the recipient's time zone, DST, holidays, start and expiry, retry waits, estimates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from faxops import clock
from faxops.domain import FailureClass, Recipient, Status
from faxops.plan import Action, Rules, make_plan
from faxops.schedule import RetryPolicy, Schedule, Window, estimate, zones_for_number
from faxops.state.records import Summary
from tests.conftest import CampaignDir, Result, write_csv

Cli = Callable[..., Result]
Make = Callable[..., CampaignDir]

WEEKDAYS = Window(frozenset(range(5)), time(9), time(17))
BERLIN, NEW_YORK, TOKYO = "+493012345678", "+12127365000", "+81332249999"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_time_zone_comes_from_the_number() -> None:
    assert zones_for_number(BERLIN) == ("Europe/Berlin",)
    assert zones_for_number(NEW_YORK) == ("America/New_York",)
    assert zones_for_number(TOKYO) == ("Asia/Tokyo",)
    assert zones_for_number("+13105551234") == ("America/Los_Angeles",)


def test_window_is_evaluated_in_each_recipients_local_time() -> None:
    schedule = Schedule(windows=(WEEKDAYS,))
    now = utc(2026, 11, 23, 12, 0)  # Monday: 13:00 Berlin, 07:00 New York, 21:00 Tokyo
    assert schedule.due(("Europe/Berlin",), now) == now
    assert schedule.due(("America/New_York",), now) == utc(2026, 11, 23, 14, 0)  # 09:00 EST
    assert schedule.due(("Asia/Tokyo",), now) == utc(2026, 11, 24, 0, 0)  # Tuesday 09:00 JST


def test_weekend_and_holidays_move_to_the_next_working_morning() -> None:
    schedule = Schedule(windows=(WEEKDAYS,), holidays=frozenset({date(2026, 11, 30)}))
    friday_evening = utc(2026, 11, 27, 17, 30)  # 18:30 in Berlin
    # Saturday and Sunday are outside the window, Monday 30 Nov is a holiday: Tuesday 09:00 CET
    assert schedule.due(("Europe/Berlin",), friday_evening) == utc(2026, 12, 1, 8, 0)


def test_dst_change_keeps_the_local_window() -> None:
    schedule = Schedule(windows=(Window(frozenset(range(7)), time(9), time(17)),))
    # Europe moves to summer time on Sunday 29 March 2026: 09:00 local is 08:00Z before, 07:00Z after.
    assert schedule.due(("Europe/Berlin",), utc(2026, 3, 28, 18, 0)) == utc(2026, 3, 29, 7, 0)
    assert schedule.due(("Europe/Berlin",), utc(2026, 3, 27, 18, 0)) == utc(2026, 3, 28, 8, 0)
    # the US changed two weeks earlier (8 March): New York's 09:00 is 13:00Z in between
    assert schedule.due(("America/New_York",), utc(2026, 3, 20, 2, 0)) == utc(2026, 3, 20, 13, 0)
    # and a window is open until its local end, whatever the UTC offset
    assert schedule.open_until(("Europe/Berlin",), utc(2026, 3, 29, 10, 0)) == utc(2026, 3, 29, 15, 0)


def test_a_number_spanning_zones_waits_for_all_of_them() -> None:
    schedule = Schedule(windows=(WEEKDAYS,))
    now = utc(2026, 11, 23, 14, 30)  # 09:30 New York, 06:30 Los Angeles
    assert schedule.due(("America/New_York", "America/Los_Angeles"), now) == utc(2026, 11, 23, 17, 0)


def test_start_and_expiry() -> None:
    schedule = Schedule(start_at=utc(2026, 11, 24, 6), expire_at=utc(2026, 11, 24, 23), windows=(WEEKDAYS,))
    assert schedule.due(("Europe/Berlin",), utc(2026, 11, 23, 12)) == utc(2026, 11, 24, 8)
    assert schedule.due(("Asia/Tokyo",), utc(2026, 11, 24, 10)) is None  # next window opens after expiry
    assert schedule.expired(utc(2026, 11, 24, 23))


def _r(number: str) -> Recipient:
    return Recipient(number, source="list.csv:2")


def test_plan_defers_recipients_outside_their_window_grouped_by_zone() -> None:
    rules = Rules(now=utc(2026, 11, 23, 12, 0), schedule=Schedule(windows=(WEEKDAYS,)))
    plan = make_plan("c", [_r(BERLIN), _r(NEW_YORK), _r(TOKYO)], {}, rules=rules, pages_per_fax=1)
    assert [a.number for a in plan.groups[Action.SEND]] == [BERLIN]
    deferred = {a.number: (a.zone, a.due) for a in plan.groups[Action.DEFER]}
    assert deferred == {
        NEW_YORK: ("America/New_York", utc(2026, 11, 23, 14, 0)),
        TOKYO: ("Asia/Tokyo", utc(2026, 11, 24, 0, 0)),
    }
    assert plan.estimate is not None
    assert plan.estimate.finish is not None
    assert plan.estimate.finish >= utc(2026, 11, 24, 0, 0)


def test_expired_campaign_never_sends_late() -> None:
    rules = Rules(now=utc(2026, 11, 23, 12), schedule=Schedule(expire_at=utc(2026, 11, 23, 11)))
    state = {"+4930111": Summary(Status.FAILED, 1, reason="line busy", failure=FailureClass.BUSY)}
    plan = make_plan("c", [_r(BERLIN), _r("+4930111")], state, rules=rules)
    assert plan.to_submit == []
    assert sorted(plan.expired) == sorted([BERLIN, "+4930111"])
    assert all(a.status == "expired" for a in plan.groups[Action.SKIP])


def test_retry_wait_and_min_gap_per_failure_class() -> None:
    failed_at = utc(2026, 11, 23, 12, 0)
    policy = RetryPolicy(max_attempts=3, min_gap=timedelta(minutes=20))
    stamp = failed_at.isoformat()
    state = {
        "+1": Summary(Status.FAILED, 1, failure=FailureClass.BUSY, reason="busy", updated_at=stamp),
        "+2": Summary(Status.FAILED, 1, failure=FailureClass.NOT_FAX, reason="voice", updated_at=stamp),
        "+3": Summary(Status.FAILED, 2, failure=FailureClass.NOT_FAX, reason="voice", updated_at=stamp),
        "+4": Summary(Status.FAILED, 1, failure=FailureClass.INVALID_NUMBER, reason="unallocated", updated_at=stamp),
    }
    rules = Rules(now=failed_at + timedelta(minutes=15), policy=policy)
    plan = make_plan("c", [_r("+1"), _r("+2"), _r("+3"), _r("+4")], state, rules=rules)
    due = {a.number: a.due for a in plan.groups[Action.DEFER]}
    assert due == {"+1": failed_at + timedelta(minutes=20), "+2": failed_at + timedelta(hours=1)}  # busy: gap wins
    skipped = {a.number: a.reason or "" for a in plan.groups[Action.SKIP]}
    assert "out of attempts (2 of 2 for not_fax)" in skipped["+3"]  # not a fax machine: retried at most once
    assert "never retried" in skipped["+4"]


def test_estimate_follows_rate_and_windows() -> None:
    schedule = Schedule(windows=(WEEKDAYS,))
    now = utc(2026, 11, 23, 8, 0)  # 09:00 Berlin, Monday
    # 600 faxes at 60/min fit in the first ten minutes of the window
    est = estimate(schedule, {(("Europe/Berlin",), now): 600}, now, 60)
    assert est.finish == utc(2026, 11, 23, 8, 10)
    # 30,000 at 60/min need 500 minutes: the 8-hour window closes at 16:00Z, the rest goes Tuesday morning
    est = estimate(schedule, {(("Europe/Berlin",), now): 30_000}, now, 60)
    assert est.finish == utc(2026, 11, 24, 8, 20)


def _three_zone_campaign(make_campaign: Make) -> CampaignDir:
    camp = make_campaign()
    write_csv(camp.csv, [(BERLIN, "Berlin"), (NEW_YORK, "New York"), (TOKYO, "Tokyo")])
    text = camp.manifest.read_text().replace(
        "retry:\n",
        "schedule:\n  windows: [{days: [mon, tue, wed, thu, fri], start: '09:00', end: '17:00'}]\n"
        "  rate: {per_minute: 30}\nretry:\n",
    )
    camp.manifest.write_text(text)
    return camp


def test_plan_at_shows_due_times_per_zone(make_campaign: Make, cli: Cli) -> None:
    camp = _three_zone_campaign(make_campaign)
    result = cli("plan", camp.manifest, "--at", "2026-11-23T12:00Z", "--json")
    assert result.code == 0, result.err
    doc = result.json
    assert doc["summary"]["send"] == 1
    assert doc["summary"]["deferred"] == 2
    deferred = {a["number"]: a for a in doc["actions"] if a["action"] == "deferred"}
    assert deferred[TOKYO]["due"] == "2026-11-24T00:00:00.000Z"
    assert deferred[TOKYO]["zone"] == "Asia/Tokyo"
    human = cli("plan", camp.manifest, "--at", "2026-11-23T12:00Z")
    assert "deferred" in human.out
    assert "Asia/Tokyo" in human.out
    assert "Tue 24 Nov 09:00 JST" in human.out
    assert "Estimate:" in human.out


@pytest.mark.usefixtures("state_backend")
def test_apply_sends_what_is_due_and_a_later_run_the_rest(
    make_campaign: Make, cli: Cli, manual_clock: clock.ManualClock
) -> None:
    camp = _three_zone_campaign(make_campaign)
    manual_clock.set(utc(2026, 11, 23, 12, 0))
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert camp.sent_numbers() == [BERLIN]
    manual_clock.set(utc(2026, 11, 23, 14, 5))  # New York's window is open
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert camp.sent_numbers() == sorted([BERLIN, NEW_YORK])


@pytest.mark.usefixtures("state_backend")
def test_apply_wait_sends_each_recipient_when_its_window_opens(
    make_campaign: Make, cli: Cli, manual_clock: clock.ManualClock
) -> None:
    camp = _three_zone_campaign(make_campaign)
    manual_clock.set(utc(2026, 11, 23, 12, 0))
    result = cli("apply", camp.manifest, "--auto-approve", "--wait")
    assert result.code == 0, result.err
    sent = {str(r["number"]): str(r["at"]) for r in camp.sent()}
    assert sorted(sent) == sorted([BERLIN, NEW_YORK, TOKYO])
    assert sent[NEW_YORK].startswith("2026-11-23T14:00")
    assert sent[TOKYO].startswith("2026-11-24T00:00")
    assert "Waiting" in result.err
    status = cli("status", camp.manifest, "--json").json
    assert status["counts"] == {"delivered": 3}


def test_a_naive_start_is_read_in_the_manifest_time_zone(tmp_path: Path) -> None:
    from faxops.manifest import ScheduleSpec

    spec = ScheduleSpec.model_validate({"start_at": "2026-11-24T09:00:00", "timezone": "America/New_York"})
    assert Schedule.from_spec(spec).start_at == utc(2026, 11, 24, 14, 0)
