"""Delivery tracking end to end against the provider simulators: apply, refresh until final, retry the
busy ones after their wait, never the invalid ones; 429 on status polls; poll intervals; cancel."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta

import pytest

from faxops import clock
from tests.campaigns import BUSY, DONE, FINE, INVALID, HttpCampaign
from tests.conftest import Result

Cli = Callable[..., Result]


@pytest.mark.parametrize("kind", ["docoon", "faxplus", "retarus"])
def test_refresh_until_final_then_busy_retried_and_invalid_never(
    kind: str, http_campaign: Callable[[str], HttpCampaign], cli: Cli, manual_clock: clock.ManualClock
) -> None:
    camp = http_campaign(kind)
    camp.sim.outcomes.update({BUSY: "busy", INVALID: "invalid"})
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert {r["status"] for r in camp.status(cli).values()} == {"queued"}

    camp.sim.advance(DONE)
    refreshed = cli("refresh", camp.manifest)
    assert refreshed.code == 0, refreshed.err
    assert "3 now final" in refreshed.err
    rows = camp.status(cli)
    assert rows[FINE]["status"] == "delivered"
    assert (rows[BUSY]["status"], rows[BUSY]["failure"]) == ("failed", "busy")
    assert (rows[INVALID]["status"], rows[INVALID]["failure"]) == ("failed", "invalid_number")
    assert rows[BUSY]["raw_status"]  # the provider's own code is kept beside ours
    if kind == "retarus":  # duration and the time it was sent, where the report gives them
        attempt = camp.lock_data()["recipients"][FINE]["attempts"][0]
        assert attempt["duration"] == 42
        assert attempt["updated_at"] > attempt["submitted_at"]

    plan = {a["number"]: a for a in cli("plan", camp.manifest, "--json", "--refresh=false").json["actions"]}
    assert plan[BUSY]["action"] == "deferred"  # busy: retried after 10 minutes
    assert plan[INVALID]["action"] == "skip"
    assert "never retried" in plan[INVALID]["reason"]

    manual_clock.advance(timedelta(minutes=11))
    camp.sim.outcomes[BUSY] = "delivered"
    applied = cli("apply", camp.manifest, "--auto-approve", "--refresh=false")
    assert applied.code == 0, applied.err
    assert sorted(r["number"] for r in camp.sim.received) == sorted([FINE, BUSY, BUSY, INVALID])
    camp.sim.advance(DONE)
    assert cli("refresh", camp.manifest, "--force").code == 0
    rows = camp.status(cli)
    assert (rows[BUSY]["status"], rows[BUSY]["attempts"]) == ("delivered", 2)
    assert rows[INVALID]["attempts"] == 1
    # nothing left to do, and a repeated refresh changes nothing (updates are idempotent)
    assert cli("plan", camp.manifest, "--detailed-exitcode", "--refresh=false").code == 0
    again = cli("refresh", camp.manifest, "--force")
    assert "Nothing to refresh" in again.out


def test_telphin_failures_have_no_reason_and_are_retried_as_unknown(
    http_campaign: Callable[[str], HttpCampaign], cli: Cli, manual_clock: clock.ManualClock
) -> None:
    camp = http_campaign("telphin")
    camp.sim.outcomes[BUSY] = "busy"
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    camp.sim.advance(DONE)
    assert cli("refresh", camp.manifest).code == 0
    rows = camp.status(cli)
    assert (rows[BUSY]["status"], rows[BUSY]["failure"], rows[BUSY]["raw_status"]) == ("failed", "unknown", "failed")
    manual_clock.advance(timedelta(minutes=31))
    plan = {a["number"]: a for a in cli("plan", camp.manifest, "--json", "--refresh=false").json["actions"]}
    assert plan[BUSY]["action"] == "retry"


@pytest.mark.usefixtures("state_backend")
def test_plan_and_apply_refresh_first(http_campaign: Callable[[str], HttpCampaign], cli: Cli) -> None:
    camp = http_campaign("retarus")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    camp.sim.advance(DONE)
    plan = cli("plan", camp.manifest)
    assert "Refreshed" in plan.err
    assert {r["status"] for r in camp.status(cli).values()} == {"delivered"}
    assert cli("plan", camp.manifest, "--refresh=false").code == 0
    settled = cli("plan", camp.manifest)  # nothing queued or sending: nothing to ask the provider
    assert settled.code == 0
    assert "Refreshed" not in settled.err


@pytest.mark.usefixtures("state_backend")
def test_a_429_on_status_polls_stops_the_refresh_and_loses_nothing(
    http_campaign: Callable[[str], HttpCampaign], cli: Cli
) -> None:
    camp = http_campaign("retarus")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    camp.sim.advance(DONE)
    camp.sim.inject("status", path=r"/.*/fax/reports/.*", method="GET", status=429, headers={"Retry-After": "3600"})
    limited = cli("refresh", camp.manifest)
    assert limited.code == 0
    assert "limiting" in limited.err
    assert "3600" in limited.err
    assert {r["status"] for r in camp.status(cli).values()} == {"queued"}
    assert cli("refresh", camp.manifest).code == 0  # the limit has passed (the fault fired once)
    assert {r["status"] for r in camp.status(cli).values()} == {"delivered"}


def test_telphin_hourly_limit_is_reported_with_its_reset(
    http_campaign: Callable[[str], HttpCampaign], cli: Cli
) -> None:
    camp = http_campaign("telphin")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    camp.sim.advance(DONE)
    camp.sim.hourly_limit = 0  # type: ignore[attr-defined]
    camp.sim.calls_this_hour = 0  # type: ignore[attr-defined]
    limited = cli("refresh", camp.manifest)
    assert "rate_limit_exceeded" in limited.err
    assert {r["status"] for r in camp.status(cli).values()} == {"queued"}


def test_docoon_is_polled_at_most_every_five_minutes(
    http_campaign: Callable[[str], HttpCampaign], cli: Cli, manual_clock: clock.ManualClock
) -> None:
    camp = http_campaign("docoon")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert cli("refresh", camp.manifest).code == 0
    polls = sum(1 for r in camp.sim.log if r.path.endswith("/JobItems"))
    camp.sim.advance(DONE)
    skipped = cli("refresh", camp.manifest)
    assert "at most one status poll per 5 min" in skipped.err
    assert sum(1 for r in camp.sim.log if r.path.endswith("/JobItems")) == polls
    manual_clock.advance(timedelta(minutes=5))
    assert cli("refresh", camp.manifest).code == 0
    assert {r["status"] for r in camp.status(cli).values()} == {"delivered"}


def test_voipnow_says_it_does_not_report_delivery(http_campaign: Callable[[str], HttpCampaign], cli: Cli) -> None:
    camp = http_campaign("voipnow")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    result = cli("refresh", camp.manifest)
    assert result.code == 0
    assert "delivery not reported by this provider" in result.err


@pytest.mark.usefixtures("state_backend")
@pytest.mark.parametrize("kind", ["telphin", "faxplus"])
def test_cancel_queued_faxes(kind: str, http_campaign: Callable[[str], HttpCampaign], cli: Cli) -> None:
    camp = http_campaign(kind)
    camp.write("schedule: {batch_size: 1}\n")  # one job per recipient, so one can be canceled alone
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    result = cli("cancel", camp.manifest, BUSY)
    assert result.code == 0, result.err
    assert "Canceled 1" in result.out
    rows = camp.status(cli)
    assert rows[BUSY]["status"] == "canceled"
    assert rows[FINE]["status"] == "queued"
    camp.sim.advance(DONE)
    assert cli("refresh", camp.manifest, "--force").code == 0
    rows = camp.status(cli)
    assert rows[BUSY]["status"] == "canceled"  # a later poll never moves it back
    assert rows[FINE]["status"] == "delivered"


def test_faxplus_refuses_to_cancel_part_of_an_outbox_entry(
    http_campaign: Callable[[str], HttpCampaign], cli: Cli
) -> None:
    camp = http_campaign("faxplus")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0  # one outbox entry for all three
    partial = cli("cancel", camp.manifest, BUSY)
    assert partial.code == 1
    assert "cancels the whole job" in partial.err
    assert {r["status"] for r in camp.status(cli).values()} == {"queued"}
    assert cli("cancel", camp.manifest, "--all").code == 0
    assert {r["status"] for r in camp.status(cli).values()} == {"canceled"}


def test_cancel_where_the_api_cannot(http_campaign: Callable[[str], HttpCampaign], cli: Cli) -> None:
    camp = http_campaign("retarus")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    result = cli("cancel", camp.manifest, "--all")
    assert result.code == 1
    assert "retarus cannot cancel" in result.err


def test_a_plan_with_nothing_to_ask_never_loads_the_http_stack(
    http_campaign: Callable[[str], HttpCampaign], cli: Cli
) -> None:
    camp = http_campaign("faxplus")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    camp.sim.advance(DONE)
    assert cli("refresh", camp.manifest).code == 0
    # A fresh process: this one imported httpx long ago. The provider is made (and its settings checked), but
    # its client only when it calls out, which a plan of a settled campaign never does.
    script = (
        "import sys; from faxops.cli import main; code = main(['plan', sys.argv[1]]); "
        "print(code, 'httpx' in sys.modules)"
    )
    argv = [sys.executable, "-c", script, str(camp.manifest)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "0 False", done.stderr
