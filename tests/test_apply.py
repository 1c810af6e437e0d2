"""The engine's fault handling: rejected jobs, a journal that fails after the send, provider bugs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from faxops.apply import ApplyOptions, execute
from faxops.campaign import open_campaign
from faxops.domain import Receipt, Submission
from faxops.errors import JournalWriteError
from faxops.state import LocalWriter, load_state, read_records
from faxops.state.records import Event, Summary, summarise, summarise_raw
from tests.conftest import CampaignDir, Result

Cli = Callable[..., Result]
Make = Callable[..., CampaignDir]


class AnswerLosingWriter(LocalWriter):
    """A state writer whose disk fills up right after the first intent was made durable."""

    def record(self, event: Event) -> int:
        if event["t"] != "intent":
            raise JournalWriteError("simulated: no space left on device")
        return super().record(event)


def test_job_id_that_cannot_be_journalled_is_rescued_and_sending_stops(
    make_campaign: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    camp = make_campaign()
    campaign = open_campaign(camp.manifest)
    writer = AnswerLosingWriter(campaign.paths, campaign.name, operation="test")
    plan = campaign.plan(writer.state())
    report = execute(campaign, plan, writer, ApplyOptions(pace=campaign.pace(parallelism=1)))
    writer.close()
    assert report.stopped is not None
    assert "journal cannot be written" in report.stopped
    assert len(camp.sent()) == 1  # the first fax went out; nothing after the failure
    rescued = list((tmp_path / "home" / ".faxops" / "rescue").glob("*.jsonl"))
    assert len(rescued) == 1
    event = json.loads(rescued[0].read_text())
    assert event["job_id"] == camp.sent()[0]["job_id"]
    # The intent is durable, so the next plan holds that recipient as unknown instead of resending it.
    state = load_state(campaign.paths)
    assert [s.status for s in state.summaries.values()] == ["pending"]


def test_rejected_job_is_recorded_with_the_provider_code_and_not_retried(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign(outcomes={"+33142685300": "rejected"})
    result = cli("apply", camp.manifest, "--auto-approve")
    assert result.code == 1
    assert "SANDBOX_REJECTED" in result.err
    records = dict(read_records(open_campaign(camp.manifest).paths))
    attempt = records["+33142685300"]["attempts"][0]
    assert attempt["status"] == "failed"
    assert attempt["reason"].startswith("SANDBOX_REJECTED:")
    plan = cli("plan", camp.manifest, "--json").json
    rejected = next(a for a in plan["actions"] if a["number"] == "+33142685300")
    assert rejected["action"] == "skip"
    assert len(camp.sent()) == 4


@pytest.mark.parametrize(
    "record",
    [
        {
            "attempts": [{"n": 1, "status": "delivered", "job_id": "a", "reason": 'he said "n": no'}],
            "status": "delivered",
        },
        {"attempts": [{"n": 1, "status": "not_sent"}, {"n": 1, "status": "queued"}], "status": "queued"},
        {"attempts": [{"n": 1, "status": "failed"}, {"n": 2, "status": "sending"}], "status": "sending"},
        {"attempts": [{"n": 1, "status": "failed", "retryable": True}], "status": "failed"},
        {"attempts": [{"n": 1, "status": "pending", "reference": "r"}], "status": "pending"},
    ],
)
def test_summaries_from_bytes_agree_with_parsed_ones(record: dict[str, object]) -> None:
    raw = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    fast = summarise_raw(raw)
    full = summarise(record)
    if fast is not None:
        assert (fast.status, fast.attempts) == (full.status, full.attempts)
    else:
        assert full.status in ("failed", "pending")
    assert isinstance(full, Summary)


def test_human_plan_output(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign([*[(f"+4930{1000000 + i}", f"R{i}") for i in range(15)], ("42", "bad")])
    result = cli("plan", camp.manifest)
    assert "+ send (15)" in result.out
    assert "… and 5 more (--details lists all)" in result.out
    assert "! skip (1)" in result.out
    assert "Plan: 15 to send, 0 to retry, 0 unchanged, 1 skipped · 30 pages" in result.out
    detailed = cli("plan", camp.manifest, "--details")
    assert "more (--details" not in detailed.out
    assert "+49301000014" in detailed.out


class IntentRefusingWriter(LocalWriter):
    """A state writer whose disk is full from the start: not even an intent can be recorded."""

    def record(self, event: Event) -> int:
        raise JournalWriteError("simulated: no space left on device")


def test_no_intent_no_send(make_campaign: Make) -> None:
    camp = make_campaign()
    campaign = open_campaign(camp.manifest)
    writer = IntentRefusingWriter(campaign.paths, campaign.name, operation="test")
    report = execute(campaign, campaign.plan(writer.state()), writer, ApplyOptions(pace=campaign.pace(parallelism=2)))
    writer.close()
    assert report.stopped is not None
    assert "nothing more was sent" in report.stopped
    assert camp.sent() == []


def test_a_provider_bug_is_an_unknown_outcome_not_a_resend(
    make_campaign: Make, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faxops.providers.sandbox import SandboxProvider

    camp = make_campaign()
    real_submit = SandboxProvider.submit

    def submit_then_crash(self: SandboxProvider, submission: Submission) -> Receipt:
        real_submit(self, submission)  # the fax went out...
        raise KeyError("job")  # ...and then the adapter tripped over the answer

    monkeypatch.setattr(SandboxProvider, "submit", submit_then_crash)
    result = cli("apply", camp.manifest, "--auto-approve")
    assert result.code == 1
    assert "provider crashed" in result.err or "KeyError" in result.err
    monkeypatch.setattr(SandboxProvider, "submit", real_submit)
    again = cli("apply", camp.manifest, "--auto-approve")  # reconciles: found, nothing sent twice
    assert again.code == 0, again.err
    assert "5 found at the provider" in again.out
    assert len(camp.sent()) == 5
