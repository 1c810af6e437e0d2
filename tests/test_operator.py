"""The operator's papercuts (issue 10): saved plans bound to their state, numbers read and shown whole,
global options anywhere, NO_COLOR. Each test drives the real CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from faxops import clock
from tests.conftest import CampaignDir, Result

Cli = Callable[..., Result]
Make = Callable[..., CampaignDir]


def test_a_saved_plan_copied_with_its_checkout_is_refused_there(make_campaign: Make, cli: Cli, tmp_path: Path) -> None:
    camp = make_campaign()
    first = camp.root
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    camp.csv.write_text(camp.csv.read_text() + "+39 06 1234 5678,Studio Conti\n")
    assert cli("plan", camp.manifest, "--out", first / "reviewed.plan.json").code == 0
    doc = json.loads((first / "reviewed.plan.json").read_text())
    assert doc["manifest"] == "campaign.yaml"  # relative to the plan file, not an absolute path

    copy = tmp_path.parent / (tmp_path.name + "-copy")
    shutil.copytree(first, copy)
    original_lock = camp.lockfile.read_bytes()
    refused = cli("apply", copy / "reviewed.plan.json")
    assert refused.code == 4, refused.err
    assert "copied checkout" in refused.err
    assert camp.lockfile.read_bytes() == original_lock  # the other checkout's state is untouched
    assert (copy / "campaign.lock.json").read_bytes() == original_lock
    assert len(camp.sent()) == 5

    # an ordinary apply in the copy sends only the new row: nothing that was sent goes again
    again = cli("apply", copy / "campaign.yaml", "--auto-approve")
    assert again.code == 0, again.err
    sent_in_copy = [json.loads(x)["number"] for x in (copy / ".faxops/sandbox/sent.jsonl").read_text().splitlines()]
    assert sorted(sent_in_copy).count("+390612345678") == 1
    assert len(sent_in_copy) == 6  # the 5 copied records of the first run, and the one new row

    # the original still applies its own plan
    assert cli("apply", first / "reviewed.plan.json").code == 0
    assert len(camp.sent()) == 6
    shutil.rmtree(copy)


@pytest.mark.parametrize("drop", ["manifest", "state", "inputs", "actions"])
def test_a_saved_plan_with_missing_fields_is_a_clean_error(
    make_campaign: Make, cli: Cli, tmp_path: Path, drop: str
) -> None:
    camp = make_campaign()
    planfile = tmp_path / "p.json"
    cli("plan", camp.manifest, "--out", planfile)
    doc = json.loads(planfile.read_text())
    del doc[drop]
    planfile.write_text(json.dumps(doc))
    result = cli("apply", planfile)
    assert result.code == 1
    assert f"damaged saved plan ({drop}: field required" in result.err
    assert "Internal error" not in result.err
    assert camp.sent() == []


def test_show_and_plan_print_a_saved_plan(make_campaign: Make, cli: Cli, tmp_path: Path) -> None:
    camp = make_campaign()
    planfile = tmp_path / "p.json"
    cli("plan", camp.manifest, "--out", planfile)
    for command in ("show", "plan"):
        shown = cli(command, planfile)
        assert shown.code == 0, shown.err
        assert "Saved plan" in shown.out
        assert "+493012345678" in shown.out
        assert "5 to send" in shown.out
        assert "schema" not in shown.err
    as_json = cli("show", planfile, "--json")
    assert as_json.json["summary"]["send"] == 5
    assert camp.sent() == []


def test_numbers_in_plan_tables_are_never_cut(make_campaign: Make, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    camp = make_campaign(outcomes={"+493012345678": "rejected"})
    cli("apply", camp.manifest, "--auto-approve")
    reason = "the practice asked by registered letter never to be faxed again " * 4
    (camp.root / "dnf.csv").write_text("number\n+33 1 42 68 53 00\n")
    camp.manifest.write_text(camp.manifest.read_text() + f"suppress: [{{path: dnf.csv, reason: '{reason}'}}]\n")
    monkeypatch.setenv("FORCE_COLOR", "1")  # a terminal of 60 columns, as far as rich is concerned
    monkeypatch.setenv("COLUMNS", "60")
    for term in ("dumb", "xterm"):
        monkeypatch.setenv("TERM", term)
        result = cli("plan", camp.manifest, "--details", "--no-color")
        assert result.code == 0, result.err
        assert "+33142685300" in result.out
        assert "+493012345678" in result.out
        assert "…" in result.out or "..." in result.out  # the reason was cut instead
        status = cli("status", camp.manifest, "--details", "--no-color")
        assert "+493012345678" in status.out
        assert "+33142685300" in status.out
    # piped through a real process (200-column pipe width), the long reason still never cuts the number
    piped = subprocess.run(
        [sys.executable, "-m", "faxops", "plan", str(camp.manifest)], capture_output=True, text=True, check=False
    )
    assert "+33142685300" in piped.stdout, piped.stderr


@pytest.mark.usefixtures("state_backend")
def test_resolve_reads_numbers_as_cancel_does(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign(outcomes={"+4930901820000": "timeout"}, rows=[("+49 30 90182000", "Praxis")])
    camp.manifest.write_text(camp.manifest.read_text().replace('"+4930901820000"', '"+493090182000"'))
    cli("apply", camp.manifest, "--auto-approve")
    camp.sent_log.unlink()
    result = cli("resolve", camp.manifest, "+49 30 90182000", "--not-sent")
    assert result.code == 0, result.err
    assert "Recorded +493090182000" in result.out
    national = cli("resolve", camp.manifest, "030 90182000", "--not-sent")
    assert national.code == 1
    assert "+493090182000 is not_sent" in national.err or "not unknown" in national.err


def test_global_options_after_the_subcommand_and_no_color(
    make_campaign: Make, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    camp = make_campaign()
    monkeypatch.setenv("FORCE_COLOR", "1")  # a terminal, as far as rich is concerned
    styled = cli("plan", camp.manifest)
    assert "\x1b[" in styled.out
    plain = cli("plan", camp.manifest, "--no-color")
    assert plain.code == 0, plain.err
    assert "\x1b[" not in plain.out + plain.err
    before = cli("--no-color", "plan", camp.manifest)
    assert "\x1b[" not in before.out + before.err
    monkeypatch.setenv("NO_COLOR", "1")
    env = cli("plan", camp.manifest)
    assert "Plan:" in env.out
    assert "\x1b[" not in env.out + env.err  # not even bold or dim


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_parallelism_must_be_positive(make_campaign: Make, cli: Cli, value: str) -> None:
    camp = make_campaign()
    result = cli("apply", camp.manifest, "--auto-approve", "--parallelism", value)
    assert result.code == 1  # a usage error, with the command's usage (not argparse's 2)
    assert "usage: faxops apply" in result.err
    assert "--parallelism" in result.err
    assert camp.sent() == []


def test_plan_at_and_refresh_false_need_no_secrets(tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import write_csv, write_pdf

    write_pdf(tmp_path / "letter.pdf", 1)
    write_csv(tmp_path / "list.csv", [("+49 30 12345678", "A")])
    manifest = tmp_path / "c.yaml"
    manifest.write_text(
        "campaign: {name: c}\n"
        "provider: {type: faxplus, token: '${env:FAXPLUS_TOKEN_UNSET}', user_id: '12345'}\n"
        "sender: {number: '+493012340000', header: 'Nordwind'}\n"
        "documents: [letter.pdf]\n"
        "recipients: {files: [{path: list.csv, columns: {number: fax, name: company}}]}\n"
        "schedule: {timezone: Europe/Berlin}\n"
    )
    monkeypatch.delenv("FAXPLUS_TOKEN_UNSET", raising=False)
    needs = cli("plan", manifest)  # a plan that may refresh needs them
    assert needs.code == 1
    assert "FAXPLUS_TOKEN_UNSET" in needs.err
    offline = cli("plan", manifest, "--refresh=false")
    assert offline.code == 0, offline.err
    assert "1 to send" in offline.out
    at = cli("plan", manifest, "--at", "2026-11-24T09:00", "--json")
    assert at.code == 0, at.err
    # without an offset, --at is read in schedule.timezone as start_at is: 09:00 in Berlin is 08:00Z
    assert at.json["at"].startswith("2026-11-24T08:00:00")
    human = cli("plan", manifest, "--at", "2026-11-24T09:00")
    assert "Planned for Tue 2026-11-24 09:00 CET (08:00Z)" in human.out


@pytest.mark.usefixtures("state_backend")
def test_apply_wait_never_says_no_changes_after_sending(
    make_campaign: Make, cli: Cli, manual_clock: clock.ManualClock
) -> None:
    from tests.test_schedule import _three_zone_campaign, utc

    camp = _three_zone_campaign(make_campaign)
    manual_clock.set(utc(2026, 11, 23, 12, 0))
    result = cli("apply", camp.manifest, "--auto-approve", "--wait")
    assert result.code == 0, result.err
    assert len(camp.sent()) == 3
    assert "No changes" not in result.out


def test_ctrl_c_at_the_confirmation_prompt_exits_at_once(
    make_campaign: Make, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from faxops.output import Output

    camp = make_campaign()
    reached: list[str] = []

    def confirm(self: Output, count: int) -> bool:
        signal.raise_signal(signal.SIGINT)  # the operator presses Ctrl-C while the prompt waits
        reached.append("still asking")
        return True

    monkeypatch.setattr(Output, "interactive", property(lambda self: True))
    monkeypatch.setattr(Output, "confirm", confirm)
    # A shell without job control starts background jobs (a CI runner's) with SIGINT ignored, and Python
    # then keeps it ignored: give the test the handler an operator's terminal session has.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = cli("apply", camp.manifest)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.code == 130
    assert reached == []
    assert "finishing the faxes in flight" not in result.err
    assert camp.sent() == []


def test_progress_labels_its_times_and_counts_failures(
    make_campaign: Make, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [(f"+49 30 1234{i:04d}", f"R{i}") for i in range(1000)]
    rejected = {f"+4930 1234{i:04d}".replace(" ", ""): "rejected" for i in range(0, 1000, 10)}
    camp = make_campaign(rows, outcomes=rejected)
    logged = cli("apply", camp.manifest, "--auto-approve")  # no terminal: a line every 10 %
    assert "sent 1000/1000 (100%), 100 failed · elapsed 0:00:" in logged.err
    assert ", ETA 0:00:00" in logged.err

    camp.csv.write_text(camp.csv.read_text() + "+49 30 99999999,X\n")
    camp.manifest.write_text(
        camp.manifest.read_text().replace("outcomes: {", 'outcomes: {"+493099999999": "rejected", ')
    )
    monkeypatch.setenv("FORCE_COLOR", "1")  # a terminal: the bar
    bar = cli("apply", camp.manifest, "--auto-approve", "--no-color")
    assert "1/1" in bar.err
    assert "1 failed" in bar.err
    assert "elapsed" in bar.err
    assert "ETA" in bar.err


def test_the_shipped_gitignore_leaves_only_the_lockfile_to_commit(tmp_path: Path, cli: Cli) -> None:
    repo = Path(__file__).resolve().parent.parent
    work = tmp_path / "project"
    shutil.copytree(
        repo / "campaigns", work / "campaigns", ignore=shutil.ignore_patterns(".faxops", "*.lock.json", "reports")
    )

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=work, capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "campaigns")
    manifest = work / "campaigns" / "example.yaml"
    assert cli("apply", manifest, "--auto-approve").code == 0
    assert cli("report", manifest).code == 0
    assert (work / "campaigns" / "reports").is_dir()
    assert (work / "campaigns" / ".faxops").is_dir()
    untracked = git("status", "--porcelain", "--untracked-files=all").split("\n")
    assert [line for line in untracked if line] == ["?? campaigns/example.lock.json"]


def test_the_report_names_a_merged_duplicate_by_the_row_that_was_sent(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign([("+49 30 12345678", "Kanzlei Berger"), ("+33 1 42 68 53 00", "B"), ("030 12345678", "dup")])
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    rows = {r["number"]: r for r in cli("report", camp.manifest, "--format", "json").json["recipients"]}
    assert rows["+493012345678"]["name"] == "Kanzlei Berger"
    assert rows["+493012345678"]["source"].endswith("recipients.csv:2")
    html = cli("report", camp.manifest, "--format", "html").out
    assert "Kanzlei Berger" in html
    assert ">dup<" not in html
