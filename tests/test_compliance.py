"""Compliance gates: suppression wins over every path, the marketing gate, sender identification,
budget guards, and forced resends that are recorded with their reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from faxops import clock
from tests.conftest import CampaignDir, Result

Cli = Callable[..., Result]
Make = Callable[..., CampaignDir]


def test_suppression_wins_over_resend_and_global_list(make_campaign: Make, cli: Cli, tmp_path: Path) -> None:
    import os

    global_list = Path(os.environ["FAXOPS_SUPPRESSION_LIST"])
    camp = make_campaign()
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    added = cli("suppress", "add", "+49 30 12345678", "--reason", "asked by phone on 2026-11-20")
    assert added.code == 0, added.err
    assert "+493012345678" in global_list.read_text()
    assert "asked by phone" in global_list.read_text()
    plan = {a["number"]: a for a in cli("plan", camp.manifest, "--json").json["actions"]}
    assert plan["+493012345678"]["action"] == "skip"
    assert "asked by phone" in plan["+493012345678"]["reason"]
    refused = cli("apply", camp.manifest, "--auto-approve", "--resend", "+493012345678", "--reason", "customer asked")
    assert refused.code == 1
    assert "suppressed" in refused.err
    assert camp.sent_numbers().count("+493012345678") == 1


def test_suppress_add_rejects_a_bad_number(cli: Cli) -> None:
    result = cli("suppress", "add", "12", "--reason", "x")
    assert result.code == 1
    assert "not a valid number" in result.err


def test_resend_is_forced_recorded_and_spaced(make_campaign: Make, cli: Cli, manual_clock: clock.ManualClock) -> None:
    from datetime import timedelta

    camp = make_campaign()
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    no_reason = cli("apply", camp.manifest, "--auto-approve", "--resend", "+493012345678")
    assert no_reason.code == 1
    assert "--reason" in no_reason.err
    # one minute after the first fax: the 5-minute gap between two calls to one number holds it back
    manual_clock.advance(timedelta(minutes=1))
    early = cli("apply", camp.manifest, "--auto-approve", "--resend", "+49 30 12345678", "--reason", "page 2 missing")
    # nothing of what was asked happened: an error that says why and when, never "No changes"
    assert early.code == 1
    assert camp.sent_numbers().count("+493012345678") == 1
    assert "No changes" not in early.out
    assert "--resend +493012345678: not sent" in early.err
    assert "retry.min_gap (0:05:00)" in early.err
    due = (manual_clock.now() + timedelta(minutes=4)).strftime("%H:%M")
    assert due in early.err
    manual_clock.advance(timedelta(minutes=5))
    again = cli("apply", camp.manifest, "--auto-approve", "--resend", "+49 30 12345678", "--reason", "page 2 missing")
    assert again.code == 0, again.err
    assert camp.sent_numbers().count("+493012345678") == 2
    attempts = camp.lock_data()["recipients"]["+493012345678"]["attempts"]
    assert attempts[-1]["forced"] == "page 2 missing"
    assert cli("plan", camp.manifest, "--detailed-exitcode").code == 0  # the resend does not repeat


def _marketing(camp: CampaignDir, extra: str, first_page: str) -> None:
    (camp.root / "offer.txt").write_text(first_page)
    text = camp.manifest.read_text().replace("  - letter.pdf", "  - offer.txt")
    text = text.replace(
        "campaign:\n  name: test-campaign\n", "campaign:\n  name: test-campaign\n  purpose: marketing\n"
    )
    camp.manifest.write_text(text + extra)


def test_marketing_needs_an_opt_out_and_a_suppression_list(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    _marketing(camp, "", "Spring offer: 20% off all toner.")
    result = cli("validate", camp.manifest)
    assert result.code == 1
    assert "campaign.purpose" in result.err
    assert "needs `campaign.opt_out`" in result.err
    assert "needs a suppression list" in result.err
    assert cli("apply", camp.manifest, "--auto-approve").code == 1
    assert camp.sent() == []


def test_marketing_warns_when_the_first_page_has_no_opt_out(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    (camp.root / "optout.txt").write_text("")
    gate = "suppress: [optout.txt]\nsender: {header: 'Nordwind Medical +49 30 1234 0000'}\n"
    opt_out = "  opt_out: {number: '+49 800 1234567', method: 'free fax-back form or call'}\n"
    _marketing(camp, gate, "Spring offer: 20% off all toner.")
    camp.manifest.write_text(
        camp.manifest.read_text().replace("  purpose: marketing\n", "  purpose: marketing\n" + opt_out)
    )
    warned = cli("validate", camp.manifest)
    assert warned.code == 0, warned.err
    assert "has no opt-out notice" in warned.err
    assert cli("validate", camp.manifest, "--strict").code == 1
    (camp.root / "offer.txt").write_text("Spring offer.\nTo opt out of further faxes call free 0800 1234567.")
    clean = cli("validate", camp.manifest)
    assert clean.code == 0
    assert "opt-out" not in clean.err


def test_sender_identification_is_checked(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    result = cli("validate", camp.manifest)
    assert result.code == 0
    assert "no sender identification" in result.err
    camp.manifest.write_text(
        camp.manifest.read_text() + "sender: {header: 'Nordwind Medical', number: '+493012340000'}\n"
    )
    assert "no sender identification" not in cli("validate", camp.manifest).err


def test_budget_guards_refuse_before_sending(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    camp.manifest.write_text(
        camp.manifest.read_text() + "budget: {currency: EUR, per_page: {DE: 0.05, '*': 0.20}, max_cost: 1.0}\n"
    )
    plan = cli("plan", camp.manifest)
    assert "est. 1.40 EUR" in plan.out  # 2 pages x (2 x 0.05 + 3 x 0.20)
    over_cost = cli("apply", camp.manifest, "--auto-approve")
    assert over_cost.code == 1
    assert "max_cost" in over_cost.err
    assert camp.sent() == []
    camp.manifest.write_text(camp.manifest.read_text().replace("max_cost: 1.0", "max_cost: 5"))
    over_sends = cli("apply", camp.manifest, "--auto-approve", "--max-sends", "4")
    assert over_sends.code == 1
    assert "5 fax(es) to send, over the limit of 4" in over_sends.err
    over_pages = cli("apply", camp.manifest, "--auto-approve", "--max-pages", "9")
    assert over_pages.code == 1
    assert "10 page(s)" in over_pages.err
    assert camp.sent() == []
    assert cli("apply", camp.manifest, "--auto-approve", "--max-sends", "5", "--max-pages", "10").code == 0
    assert len(camp.sent()) == 5
