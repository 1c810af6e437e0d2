"""`plan --format markdown` and `show PLANFILE --format markdown`: the pull-request comment."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from faxops.changes import InputChanges
from faxops.domain import Invalid, Recipient
from faxops.plan import make_plan
from faxops.render_markdown import MAX_CHARS, marker, render, view_of_plan
from tests.conftest import CampaignDir, Result, write_csv, write_pdf

GOLDEN = Path(__file__).parent / "golden" / "plan.md"
AT = "2026-11-24T09:00Z"
ROWS = [
    ("+49 30 12345678", "Kanzlei Berger"),
    ("+33 1 42 68 53 00", "<b>Cabinet</b> | Lemaire @team [x](http://evil.example)"),
    ("+44 20 7946 0123", "Harrow & Finch call +44 20 7946 0999"),
    ("+1 202 555 0123", "Capitol Title"),
    ("030 90182000", "Praxis Mitte"),
    ("12", "Broken Row"),
]
MANIFEST = """
campaign:
  name: pr-comment
provider:
  type: sandbox
documents:
  - letter.pdf
recipients:
  default_region: DE
  files:
    - path: recipients.csv
      columns: {number: fax, name: company}
suppress:
  - path: suppress.csv
    reason: opted out
budget:
  currency: EUR
  per_page: {DE: 0.04, "*": 0.10}
"""
FULL_NUMBERS = ["+493012345678", "+33142685300", "+442079460123", "+12025550123", "+493090182000", "+442079460999"]

Make = Callable[..., CampaignDir]
Cli = Callable[..., Result]


@pytest.fixture
def camp(make_campaign: Make) -> CampaignDir:
    camp = make_campaign(ROWS, manifest=MANIFEST)
    write_csv(camp.root / "suppress.csv", [("+1 202 555 0123", "asked by phone")], header="number,reason")
    return camp


def _markdown(cli: Cli, *args: object) -> str:
    result = cli(*args)
    assert result.code == 0, result.err
    return result.out


def test_golden(camp: CampaignDir, cli: Cli) -> None:
    text = _markdown(cli, "plan", camp.manifest, "--format", "markdown", "--at", AT)
    if os.environ.get("FAXOPS_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_masked_by_default_and_revealed_on_request(camp: CampaignDir, cli: Cli) -> None:
    masked = _markdown(cli, "plan", camp.manifest, "--format", "markdown", "--at", AT)
    digits = re.sub(r"\D", "", masked)
    for number in FULL_NUMBERS:
        assert number not in masked
        assert number[1:] not in digits  # not even spread over cells or with spaces
    assert "`+49 30 •••• 5678`" in masked
    assert "+44 20 •••• 0999" in masked  # a number inside a name is masked too
    revealed = _markdown(cli, "plan", camp.manifest, "--format", "markdown", "--at", AT, "--reveal-numbers")
    assert "`+493012345678`" in revealed


def test_deterministic_with_a_marker_and_no_injection(camp: CampaignDir, cli: Cli) -> None:
    first = _markdown(cli, "plan", camp.manifest, "--format", "markdown", "--at", AT)
    second = _markdown(cli, "plan", camp.manifest, "--format", "markdown", "--at", AT)
    assert first == second
    assert first.splitlines()[0] == marker("pr-comment") == "<!-- faxops:plan campaign=pr-comment -->"
    # A recipient's name can neither open HTML, nor break the table, nor ping anybody, nor link.
    assert "<b>" not in first
    assert "&lt;b&gt;" in first
    assert "\\| Lemaire &#64;team \\[x\\]" in first


def test_show_renders_the_saved_plan_the_same(camp: CampaignDir, cli: Cli) -> None:
    live = _markdown(cli, "plan", camp.manifest, "--format", "markdown", "--at", AT)
    planfile = camp.root / "pr.plan.json"
    assert cli("plan", camp.manifest, "--at", AT, "--out", planfile).code == 0
    shown = _markdown(cli, "show", planfile, "--format", "markdown")
    assert shown == live
    via_plan = _markdown(cli, "plan", planfile, "--format", "markdown")
    assert via_plan == live


def test_json_alias_and_conflicts(camp: CampaignDir, cli: Cli) -> None:
    assert (
        cli("plan", camp.manifest, "--json", "--at", AT).json
        == cli("plan", camp.manifest, "--format", "json", "--at", AT).json
    )
    clash = cli("plan", camp.manifest, "--json", "--format", "markdown")
    assert clash.code == 1
    assert "--json and --format markdown disagree" in clash.err
    text = cli("plan", camp.manifest, "--format", "text", "--at", AT)
    assert text.code == 0
    assert "Plan: 4 to send" in text.out


def test_the_changes_since_the_last_apply(camp: CampaignDir, cli: Cli) -> None:
    first = _markdown(cli, "plan", camp.manifest, "--format", "markdown")
    assert "**Since the last apply:** first apply: nothing recorded yet · recipients: +4 new" in first
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    same = _markdown(cli, "plan", camp.manifest, "--format", "markdown")
    assert "no input file changed · recipients: +0 new, −0 no longer listed" in same
    assert "| `+49 30 •••• 5678` |  | delivered | recipients.csv:2 |" in same  # unchanged rows show their status
    write_pdf(camp.root / "letter.pdf", pages=3)
    write_csv(camp.root / "extra.csv", [("+49 30 99999999", "New GmbH")])
    write_csv(camp.csv, ROWS[1:])  # Kanzlei Berger leaves the list
    camp.manifest.write_text(
        camp.manifest.read_text().replace(
            "      columns: {number: fax, name: company}\n",
            "      columns: {number: fax, name: company}\n    - path: extra.csv\n"
            "      columns: {number: fax, name: company}\n",
        )
    )
    line = next(x for x in _markdown(cli, "plan", camp.manifest, "--format", "markdown").splitlines() if "Since" in x)
    assert line == (
        "**Since the last apply:** manifest: changed · documents: 1 changed (letter.pdf) · "
        "lists: 1 added (extra.csv), 1 changed (recipients.csv) · recipients: +1 new, −1 no longer listed"
    )


def test_bounded_on_a_large_campaign(tmp_path: Path, cli: Cli) -> None:
    """20,000 recipients with long names and reasons in every group: the comment stays under the bound."""
    write_pdf(tmp_path / "letter.pdf", pages=1)
    long = "Ü" * 300
    rows = [(f"+4930{i:08d}", f"{long} {i}") for i in range(20_000)] + [(f"bad{i}", long) for i in range(500)]
    write_csv(tmp_path / "recipients.csv", rows)
    (tmp_path / "campaign.yaml").write_text(
        "campaign: {name: big}\ndocuments: [letter.pdf]\n"
        "recipients: {files: [{path: recipients.csv, columns: {number: fax, name: company}}]}\n"
    )
    text = _markdown(cli, "plan", tmp_path / "campaign.yaml", "--format", "markdown", "--refresh=false")
    assert len(text) <= MAX_CHARS
    assert "**20,000 to send**" in text
    assert "_… and 19,980 more" in text


def test_render_cuts_rows_when_the_bound_demands_it() -> None:
    """The renderer shows fewer rows per group, never more characters than allowed."""
    candidates: list[Recipient | Invalid] = [
        Recipient(f"+4930{i:08d}", name="N" * 500, source=f"recipients.csv:{i}") for i in range(100)
    ]
    plan = make_plan("tiny", candidates, {})
    view = view_of_plan(plan, changes=InputChanges(applied_before=False, new_recipients=100))
    full = render(view)
    small = render(view, max_chars=2_000)
    assert len(small) <= 2_000 < len(full)
    assert "**100 to send**" in small
    assert "_… and" in small
    assert full.count("| `+49 30 ••••") > small.count("| `+49 30 ••••") > 0
