"""Bad input: a clear located error, exit 1, no traceback, nothing sent, the lockfile untouched."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import DEFAULT_ROWS, CampaignDir, Result

Cli = Callable[..., Result]
Make = Callable[..., CampaignDir]


def _applied(make_campaign: Make, cli: Cli) -> tuple[CampaignDir, bytes]:
    camp = make_campaign()
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    return camp, camp.lockfile.read_bytes()


def _assert_refused(camp: CampaignDir, result: Result, lock_before: bytes, *needles: str) -> None:
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in result.err, result.err
    assert len(camp.sent()) == 5  # only the first, good apply sent anything
    assert camp.lockfile.read_bytes() == lock_before


@pytest.mark.parametrize("command", [["plan"], ["apply", "--auto-approve"], ["validate"]])
def test_malformed_yaml(make_campaign: Make, cli: Cli, command: list[str]) -> None:
    camp, before = _applied(make_campaign, cli)
    camp.manifest.write_text("campaign:\n  name: x\ndocuments: [letter.pdf\nrecipients: {}\n")
    result = cli(command[0], camp.manifest, *command[1:])
    _assert_refused(camp, result, before, "campaign.yaml:", "malformed YAML")


def test_unknown_key_names_file_line_column_and_field(make_campaign: Make, cli: Cli) -> None:
    camp, before = _applied(make_campaign, cli)
    text = camp.manifest.read_text().replace("  max_attempts: 3", "  max_attempt: 3")
    camp.manifest.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), start=1) if "max_attempt:" in t)
    result = cli("apply", camp.manifest, "--auto-approve")
    _assert_refused(camp, result, before, f"campaign.yaml:{line}:3: retry.max_attempt: unknown key")


def test_provider_typo_is_an_error(make_campaign: Make, cli: Cli) -> None:
    camp, before = _applied(make_campaign, cli)
    camp.manifest.write_text(camp.manifest.read_text().replace("  latency: 0s", "  latncy: 0s"))
    result = cli("plan", camp.manifest)
    _assert_refused(camp, result, before, "provider.latncy: unknown key")


def test_missing_document(make_campaign: Make, cli: Cli) -> None:
    camp, before = _applied(make_campaign, cli)
    (camp.root / "letter.pdf").unlink()
    result = cli("apply", camp.manifest, "--auto-approve")
    _assert_refused(camp, result, before, "campaign.yaml:", "documents[0].path: document not found")


def test_unreadable_or_damaged_document(make_campaign: Make, cli: Cli) -> None:
    camp, before = _applied(make_campaign, cli)
    (camp.root / "letter.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    result = cli("plan", camp.manifest)
    _assert_refused(camp, result, before, "documents[0].path", "damaged PDF")


def test_empty_recipient_list(make_campaign: Make, cli: Cli) -> None:
    camp, before = _applied(make_campaign, cli)
    camp.csv.write_text("fax,company\n")
    result = cli("apply", camp.manifest, "--auto-approve")
    _assert_refused(camp, result, before, "recipients", "empty")


def test_csv_without_the_number_column(make_campaign: Make, cli: Cli) -> None:
    camp, before = _applied(make_campaign, cli)
    camp.csv.write_text("telefax,company\n+493012345678,A\n")
    result = cli("apply", camp.manifest, "--auto-approve")
    _assert_refused(camp, result, before, "recipients.files[0].columns.number", "no column 'fax'", "telefax")


def test_unset_environment_variable(make_campaign: Make, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    camp, before = _applied(make_campaign, cli)
    monkeypatch.delenv("FAXOPS_TEST_HOOK_SECRET", raising=False)
    camp.manifest.write_text(
        camp.manifest.read_text()
        + "reporting:\n  - type: webhook\n    url: https://example.invalid/hook\n"
        + "    secret: ${env:FAXOPS_TEST_HOOK_SECRET}\n"
    )
    result = cli("apply", camp.manifest, "--auto-approve")
    _assert_refused(camp, result, before, "reporting[0].secret", "FAXOPS_TEST_HOOK_SECRET is not set")


def test_literal_secret_is_refused(make_campaign: Make, cli: Cli) -> None:
    camp, before = _applied(make_campaign, cli)
    camp.manifest.write_text(
        camp.manifest.read_text()
        + "reporting:\n  - type: webhook\n    url: https://example.invalid/hook\n    secret: hunter2\n"
    )
    result = cli("plan", camp.manifest)
    _assert_refused(camp, result, before, "reporting[0].secret", "${env:")
    assert "hunter2" not in result.err  # the secret itself is never echoed


def test_unquoted_number_in_yaml(make_campaign: Make, cli: Cli) -> None:
    camp, before = _applied(make_campaign, cli)
    camp.manifest.write_text(
        camp.manifest.read_text().replace("  files:", "  inline:\n    - number: +4930123456\n  files:")
    )
    result = cli("plan", camp.manifest)
    _assert_refused(camp, result, before, "recipients.inline[0].number", "quotes")


def test_corrupt_lockfile_is_never_overwritten(make_campaign: Make, cli: Cli) -> None:
    camp, _ = _applied(make_campaign, cli)
    camp.lockfile.write_text('{"format_version": 1, "lineage": "x", "serial": 1,\n  "recipients": {\n    "+49')
    before = camp.lockfile.read_bytes()
    for command in (["plan"], ["apply", "--auto-approve"], ["status"]):
        result = cli(command[0], camp.manifest, *command[1:])
        _assert_refused(camp, result, before, "lockfile is corrupt", "git checkout")


def test_every_problem_is_reported_at_once(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    text = camp.manifest.read_text().replace("name: test-campaign", "name: test-campaign\n  colour: red")
    text = text.replace("max_attempts: 3", "max_attempts: 0")
    camp.manifest.write_text(text)
    (camp.root / "letter.pdf").unlink()
    result = cli("validate", camp.manifest)
    assert result.code == 1
    assert "campaign.colour: unknown key" in result.err
    assert "retry.max_attempts" in result.err
    # document problems come from the second stage, after the schema is right
    camp.manifest.write_text(
        camp.manifest.read_text().replace("\n  colour: red", "").replace("max_attempts: 0", "max_attempts: 2")
    )
    result = cli("validate", camp.manifest)
    assert "documents[0].path: document not found" in result.err


def test_validate_reports_invalid_rows_as_warnings_and_strict_fails(make_campaign: Make, cli: Cli) -> None:
    # 1 invalid row of 6 (17 %) is under the default max_invalid_percent of 20
    camp = make_campaign([*DEFAULT_ROWS, ("12", "bad")])
    result = cli("validate", camp.manifest)
    assert result.code == 0
    assert "recipients.csv:7: warning: number '12' skipped" in result.err
    assert cli("validate", camp.manifest, "--strict").code == 1


def test_missing_manifest(cli: Cli, tmp_path: object) -> None:
    result = cli("plan", "does-not-exist.yaml")
    assert result.code == 1
    assert "no such manifest" in result.err
