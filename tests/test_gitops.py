"""The GitOps loop around apply: receipts, automation mode, and the lockfile outgrowing Git."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from faxops.automation import in_automation
from faxops.receipt import ci_run
from faxops.redact import hash_id, mask_number, scrub
from tests.conftest import CampaignDir, Result

Make = Callable[..., CampaignDir]
Cli = Callable[..., Result]
GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "nordwind/faxes",
    "GITHUB_RUN_ID": "4242",
    "GITHUB_RUN_ATTEMPT": "2",
    "GITHUB_ACTOR": "octocat",
    "GITHUB_SHA": "0123456789abcdef",
}


def _job_ids(lock: dict[str, Any]) -> list[str]:
    return [str(a["job_id"]) for r in lock["recipients"].values() for a in r.get("attempts", []) if a.get("job_id")]


# --- masking ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+493012345678", "+49 30 •••• 5678"),
        ("+33142685301", "+33 1 •••• 5301"),
        ("+12025550123", "+1 202 •••• 0123"),
        ("+4930123", "+49 30 ••••"),  # too short to show four digits of it
        ("not a number", "••••"),
    ],
)
def test_mask_number(number: str, masked: str) -> None:
    assert mask_number(number) == masked


def test_scrub_masks_numbers_in_text_but_not_dates() -> None:
    text = "busy: +49 30 901820 00 at 2026-11-24T09:00Z, job 12345678, ref abc-1234567"
    assert scrub(text) == "busy: +49 30 •••• 2000 at 2026-11-24T09:00Z, job ••••, ref abc-1234567"


def test_hash_id_is_salted_and_stable() -> None:
    assert hash_id("J1", salt="a") == hash_id("J1", salt="a") != hash_id("J1", salt="b")
    assert hash_id("J1", salt="a").startswith("sha256:")
    assert "J1" not in hash_id("J1", salt="a")


# --- receipts -----------------------------------------------------------------------------------------


def test_apply_receipt_of_a_saved_plan_in_github_actions(
    make_campaign: Make, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    camp = make_campaign(outcomes={"+33142685300": "busy"})
    planfile = camp.root / "run.plan.json"
    assert cli("plan", camp.manifest, "--out", planfile).code == 0
    for key, value in GITHUB.items():
        monkeypatch.setenv(key, value)
    receipt_path = camp.root / "receipts" / "run.json"
    result = cli("apply", planfile, "--auto-approve", "--receipt", receipt_path)
    assert result.code == 0, result.err
    text = receipt_path.read_text()
    receipt = json.loads(text)
    import hashlib

    assert receipt["kind"] == "faxops-receipt"
    assert receipt["campaign"] == "test-campaign"
    assert receipt["lineage"] == camp.lock_data()["lineage"]
    assert receipt["serial"] == {"before": 0, "after": camp.lock_data()["serial"]}
    assert receipt["plan"] == {
        "digest": "sha256:" + hashlib.sha256(planfile.read_bytes()).hexdigest(),
        "source": "saved plan run.plan.json",
    }
    assert receipt["submitted"] == 5
    assert receipt["outcomes"] == {"accepted": 5}
    assert receipt["status"] == {"delivered": 4, "failed": 1}
    assert receipt["pages"] == 10
    assert receipt["who"] == "octocat"
    assert receipt["ci"]["url"] == "https://github.com/nordwind/faxes/actions/runs/4242/attempts/2"
    assert [j["number"] for j in receipt["jobs"]][:2] == ["+1 202 •••• 0123", "+33 1 •••• 5300"]
    # No full number, no job ID: a receipt is committed or attached to a pull request.
    for number in camp.lock_data()["recipients"]:
        assert number not in text
        assert number[1:] not in text
    job_ids = _job_ids(camp.lock_data())
    assert job_ids
    assert not [j for j in job_ids if j in text]
    lineage = receipt["lineage"]
    assert {j["job"] for j in receipt["jobs"]} == {hash_id(j, salt=lineage) for j in job_ids}


def test_receipt_target_holds_no_secret(http_campaign: Callable[[str], Any], cli: Cli) -> None:
    camp = http_campaign("faxplus")
    camp.write("reporting:\n  - type: receipt\n")
    result = cli("apply", camp.manifest, "--auto-approve")
    assert result.code == 0, result.err
    written = sorted((camp.root / "receipts").iterdir())
    assert [p.name for p in written] == [f"tracked-{camp.lock_data()['serial']}.json"]
    text = written[0].read_text()
    for secret in camp.case.env.values():
        assert secret not in text
    for number in camp.lock_data()["recipients"]:
        assert number not in text
    assert json.loads(text)["plan"]["source"] == "manifest"
    # `faxops report` renders reports; a receipt records an apply and is not one of them.
    report = cli("report", camp.manifest)
    assert report.code == 0
    assert "receipt" not in report.out


def test_ci_run_urls() -> None:
    assert ci_run({}) is None
    gitlab = {"GITLAB_CI": "true", "CI_JOB_URL": "https://gitlab.example/g/p/-/jobs/7", "CI_PROJECT_PATH": "g/p"}
    assert ci_run(gitlab) == {"system": "gitlab-ci", "url": "https://gitlab.example/g/p/-/jobs/7", "repository": "g/p"}


# --- automation mode ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, False), ({"CI": "true"}, True), ({"CI": "false"}, False), ({"FAXOPS_IN_AUTOMATION": "1"}, True)],
)
def test_in_automation(env: dict[str, str], expected: bool) -> None:
    assert in_automation(env) is expected


def test_automation_never_prompts_and_speaks_to_the_pipeline(
    make_campaign: Make, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    camp = make_campaign()
    monkeypatch.setenv("CI", "true")
    # Even with a terminal attached, apply in CI does not wait for a "yes" that never comes.
    monkeypatch.setattr("faxops.output.Output.interactive", property(lambda self: not self.automation))
    refused = cli("apply", camp.manifest)
    assert refused.code == 1
    assert "runs in automation (CI or FAXOPS_IN_AUTOMATION is set)" in refused.err
    assert camp.sent() == []
    planned = cli("plan", camp.manifest, "--out", camp.root / "p.plan.json", "--no-color")
    assert "the apply step runs `faxops apply" in planned.err
    assert "\x1b[" not in planned.out + planned.err
    shown = cli("show", camp.root / "p.plan.json")
    assert "The apply step's `faxops apply" in shown.out
    applied = cli("apply", camp.root / "p.plan.json", "--auto-approve")
    assert applied.code == 0
    assert len(camp.sent()) == 5
    # Plain progress lines, also for a small run: a CI log shows how far apply got.
    assert "sent 5/5 (100%)" in applied.err


# --- the lockfile in Git ------------------------------------------------------------------------------


def test_large_lockfile_warning(make_campaign: Make, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    camp = make_campaign()
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert "PostgreSQL" not in cli("validate", camp.manifest).err
    monkeypatch.setattr("faxops.campaign.LARGE_LOCKFILE", camp.lockfile.stat().st_size - 1)
    validate = cli("validate", camp.manifest)
    assert validate.code == 0
    assert "over 0 MB: too large to keep in Git" in validate.err
    assert "PostgreSQL backend" in validate.err
    planfile: Path = camp.root / "again.plan.json"
    assert cli("plan", camp.manifest, "--out", planfile).code == 0
    applied = cli("apply", planfile)
    assert applied.code == 0
    assert "PostgreSQL backend" in applied.err
