"""End-to-end: the real CLI on temporary campaigns, as a user would drive it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from faxops import clock
from tests.conftest import DEFAULT_ROWS, CampaignDir, Result, write_csv

Cli = Callable[..., Result]
Make = Callable[..., CampaignDir]

REPO = Path(__file__).resolve().parent.parent


def test_example_campaign_plans_applies_and_reports(tmp_path: Path, cli: Cli) -> None:
    shutil.copytree(REPO / "campaigns", tmp_path / "campaigns", ignore=shutil.ignore_patterns(".faxops", "*.lock.json"))
    manifest = tmp_path / "campaigns" / "example.yaml"

    plan = cli("plan", manifest, "--json")
    assert plan.code == 0
    summary = plan.json["summary"]
    assert summary == {
        "send": 17,
        "retry": 0,
        "unknown": 0,
        "unchanged": 0,
        "skip": 2,
        "deferred": 0,
        "pages": 51,
        "duplicates": 1,
    }

    applied = cli("apply", manifest, "--auto-approve")
    assert applied.code == 0, applied.err
    assert "17 accepted" in applied.out
    sent = [json.loads(x) for x in (tmp_path / "campaigns/.faxops/sandbox/sent.jsonl").read_text().splitlines()]
    assert len(sent) == 17
    # the suppressed and the invalid numbers were never sent
    assert "+442079460456" not in {s["number"] for s in sent}

    status = cli("status", manifest, "--json")
    assert status.json["counts"] == {"delivered": 16, "failed": 1}


def test_second_apply_sends_nothing_and_new_rows_are_exactly_what_is_sent(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert len(camp.sent()) == 5
    serial = camp.lock_data()["serial"]

    again = cli("apply", camp.manifest, "--auto-approve")
    assert again.code == 0
    assert "No changes. Nothing to send." in again.out
    assert len(camp.sent()) == 5
    assert camp.lock_data()["serial"] == serial  # a no-op apply does not rewrite the lockfile

    rows = [*DEFAULT_ROWS, ("+39 06 1234 5678", "Studio Conti"), ("+34 912 345 678", "Notaría Serrano")]
    write_csv(camp.csv, rows)
    plan = cli("plan", camp.manifest, "--json")
    actions = plan.json["actions"]
    to_send = sorted(a["number"] for a in actions if a["action"] == "send")
    assert to_send == ["+34912345678", "+390612345678"]
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    numbers = camp.sent_numbers()
    assert len(numbers) == len(set(numbers)) == 7


@pytest.mark.usefixtures("state_backend")
def test_plan_json_is_the_only_thing_on_stdout(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign([("+49 30 12345678", "A"), ("bogus", "B"), ("+49 30 12345678", "dup")])
    # one invalid row of three: allow it (the default limit is 20 %)
    camp.manifest.write_text(
        camp.manifest.read_text().replace("  default_region: DE\n", "  default_region: DE\n  max_invalid_percent: 50\n")
    )
    result = cli("plan", camp.manifest, "--json")
    assert result.code == 0
    doc = json.loads(result.out)
    assert doc["format_version"] == 1
    assert doc["summary"] == {
        "send": 1,
        "retry": 0,
        "unknown": 0,
        "unchanged": 0,
        "skip": 1,
        "deferred": 0,
        "pages": 2,
        "duplicates": 1,
    }
    skip = next(a for a in doc["actions"] if a["action"] == "skip")
    assert skip["number"] == "bogus"
    assert skip["source"] == "recipients.csv:3"
    assert skip["reason"].startswith("invalid number")


@pytest.mark.usefixtures("state_backend")
def test_detailed_exitcode(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    assert cli("plan", camp.manifest, "--detailed-exitcode").code == 2
    assert cli("plan", camp.manifest).code == 0
    cli("apply", camp.manifest, "--auto-approve")
    assert cli("plan", camp.manifest, "--detailed-exitcode").code == 0


@pytest.mark.usefixtures("state_backend")
def test_retry_of_busy_numbers_until_attempts_run_out(
    make_campaign: Make, cli: Cli, manual_clock: clock.ManualClock
) -> None:
    camp = make_campaign(outcomes={"+33142685300": "busy", "+12025550123": "invalid"})
    cli("apply", camp.manifest, "--auto-approve")
    plan = cli("plan", camp.manifest, "--json").json
    by_action = {a["number"]: a for a in plan["actions"]}
    # busy waits 10 minutes by default: deferred until then, with the time it becomes due
    assert by_action["+33142685300"]["action"] == "deferred"
    due = datetime.fromisoformat(by_action["+33142685300"]["due"])
    assert abs(due - manual_clock.now() - timedelta(minutes=10)) < timedelta(seconds=1)
    assert by_action["+12025550123"]["action"] == "skip"  # invalid numbers are never retried
    assert "never retried" in by_action["+12025550123"]["reason"]
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert camp.sent_numbers().count("+33142685300") == 1  # not due: nothing sent
    manual_clock.advance(timedelta(minutes=10))
    plan = cli("plan", camp.manifest, "--json").json
    by_action = {a["number"]: a for a in plan["actions"]}
    assert by_action["+33142685300"]["action"] == "retry"
    assert by_action["+33142685300"]["attempt"] == 2
    cli("apply", camp.manifest, "--auto-approve")
    manual_clock.advance(timedelta(minutes=10))
    cli("apply", camp.manifest, "--auto-approve")
    manual_clock.advance(timedelta(hours=1))
    plan = cli("plan", camp.manifest, "--json").json
    busy = next(a for a in plan["actions"] if a["number"] == "+33142685300")
    assert busy["action"] == "skip"
    assert "out of attempts (3 of 3 for busy)" in busy["reason"]
    assert camp.sent_numbers().count("+33142685300") == 3
    assert camp.sent_numbers().count("+12025550123") == 1


def test_apply_without_terminal_or_approval_refuses(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    result = cli("apply", camp.manifest)
    assert result.code == 1
    assert "--auto-approve" in result.err
    assert camp.sent() == []
    assert not camp.lockfile.exists()


@pytest.mark.usefixtures("state_backend")
def test_saved_plan_applies_exactly_and_goes_stale(make_campaign: Make, cli: Cli, tmp_path: Path) -> None:
    camp = make_campaign()
    planfile = tmp_path / "reviewed.plan.json"
    assert cli("plan", camp.manifest, "--out", planfile).code == 0
    assert (planfile.stat().st_mode & 0o777) == 0o600  # plans hold personal data
    result = cli("apply", planfile)
    assert result.code == 0, result.err
    assert len(camp.sent()) == 5
    # the state moved on: the same plan is now stale
    stale = cli("apply", planfile)
    assert stale.code == 4
    assert "stale" in stale.err
    assert len(camp.sent()) == 5


@pytest.mark.usefixtures("state_backend")
def test_saved_plan_is_stale_when_an_input_changes(make_campaign: Make, cli: Cli, tmp_path: Path) -> None:
    camp = make_campaign()
    planfile = tmp_path / "p.json"
    cli("plan", camp.manifest, "--out", planfile)
    (camp.root / "letter.pdf").write_bytes((camp.root / "letter.pdf").read_bytes() + b"\n% changed\n")
    result = cli("apply", planfile)
    assert result.code == 4
    assert "letter.pdf" in result.err
    assert camp.sent() == []

    cli("plan", camp.manifest, "--out", planfile)
    camp.manifest.write_text(camp.manifest.read_text().replace("max_attempts: 3", "max_attempts: 2"))
    result = cli("apply", planfile)
    assert result.code == 4
    assert "campaign.yaml" in result.err
    assert camp.sent() == []


@pytest.mark.usefixtures("state_backend")
def test_saved_plan_is_stale_when_state_appears(make_campaign: Make, cli: Cli, tmp_path: Path) -> None:
    camp = make_campaign()
    planfile = tmp_path / "p.json"
    cli("plan", camp.manifest, "--out", planfile)  # made with no lockfile
    cli("apply", camp.manifest, "--auto-approve")
    result = cli("apply", planfile)
    assert result.code == 4
    assert len(camp.sent()) == 5


@pytest.mark.usefixtures("state_backend")
def test_status_without_state_and_with_details(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    result = cli("status", camp.manifest)
    assert result.code == 0
    assert "no recorded state" in result.out
    cli("apply", camp.manifest, "--auto-approve")
    result = cli("status", camp.manifest, "--details")
    assert "delivered" in result.out
    assert "+4930123456" in result.out


def test_schema_command_prints_the_committed_schema(cli: Cli) -> None:
    result = cli("schema")
    assert json.loads(result.out) == json.loads((REPO / "schemas" / "campaign.schema.json").read_text())


def test_unknown_outcome_is_never_resent_blindly(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign(outcomes={"+33142685300": "timeout"})
    first = cli("apply", camp.manifest, "--auto-approve")
    assert first.code == 1  # an unknown outcome is an error of this run
    plan = cli("plan", camp.manifest, "--json", "--detailed-exitcode")
    assert plan.code == 2
    unknown = [a for a in plan.json["actions"] if a["action"] == "unknown"]
    assert [a["number"] for a in unknown] == ["+33142685300"]
    assert plan.json["summary"]["send"] == 0

    # The sandbox can look the job up by reference: apply reconciles it and sends nothing again.
    camp.manifest.write_text(camp.manifest.read_text().replace('"+33142685300": "timeout"', ""))
    second = cli("apply", camp.manifest, "--auto-approve")
    assert second.code == 0, second.err
    assert "1 found at the provider" in second.out
    assert camp.sent_numbers().count("+33142685300") == 1
    records = camp.lock_data()["recipients"]
    assert records["+33142685300"]["status"] == "delivered"
    assert records["+33142685300"]["attempts"][0]["job_id"].startswith("sbx-")


def test_a_person_resolves_a_held_send_and_it_is_audited(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign(outcomes={"+33142685300": "timeout", "+12025550123": "timeout"})
    cli("apply", camp.manifest, "--auto-approve")
    # Pretend the provider's records are gone: nothing can be looked up, so a person decides.
    camp.sent_log.unlink()
    assert cli("resolve", camp.manifest, "+4930999999", "--not-sent").code == 1
    first = cli("resolve", camp.manifest, "+33142685300", "--sent", "JOB-77", "--note", "provider portal shows it")
    assert first.code == 0, first.err
    assert cli("resolve", camp.manifest, "+12025550123", "--not-sent").code == 0
    plan = cli("plan", camp.manifest, "--json").json
    actions = {a["number"]: a["action"] for a in plan["actions"]}
    assert actions["+33142685300"] == "unchanged"
    assert actions["+12025550123"] == "send"
    lock = camp.lock_data()
    assert [a["number"] for a in lock["audit"]] == ["+33142685300", "+12025550123"]
    assert lock["audit"][0]["note"] == "provider portal shows it"
    assert lock["recipients"]["+33142685300"]["attempts"][0]["job_id"] == "JOB-77"
