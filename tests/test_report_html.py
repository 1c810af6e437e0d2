"""The HTML report as an operations manager reads it: driven through `faxops report --format html`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from tests.conftest import CampaignDir, Result

Cli = Callable[..., Result]
Make = Callable[..., CampaignDir]

EXTRA = """\
schedule: {timezone: Europe/Berlin}
budget: {per_page: {DE: 0.05, "*": 0.10}, currency: EUR}
"""


def _campaign(make_campaign: Make, rows: list[tuple[str, str]] | None = None, **kw: object) -> CampaignDir:
    camp = make_campaign(rows, **kw)
    text = camp.manifest.read_text().replace(
        "  name: test-campaign\n",
        "  name: test-campaign\n  description: Price list for Q1\n  owner: ops@nordwind.example\n",
    )
    camp.manifest.write_text(text + EXTRA)
    return camp


def test_the_html_report_tells_a_manager_what_was_sent_for_what_cost(make_campaign: Make, cli: Cli) -> None:
    camp = _campaign(make_campaign, outcomes={"+33142685300": "busy"})
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    page = cli("report", camp.manifest, "--format", "html").out
    assert "Price list for Q1" in page
    assert "Owner: ops@nordwind.example" in page
    assert "letter.pdf" in page  # the documents sent, with their pages
    assert 'Pages delivered</th><td class="r">8 (2 per fax)' in page
    # 4 delivered faxes of 2 pages: 3 to DE at 0.05, 1 elsewhere at 0.10 per page
    assert 'Cost so far (estimated from budget.per_page)</th><td class="r">0.60 EUR' in page
    # the busy number will be retried: said so, not shown as a final red failure
    assert "will retry at " in page
    assert ">will retry<" in page or "will retry (1)" in page
    assert "st-failed" not in page.split("<tbody>")[1].split("</tbody>")[0]
    # times in the campaign's zone, to the second, never ISO milliseconds
    body = page.split("<body>")[1]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CET", body)
    assert not re.search(r"\d\d:\d\d:\d\d\.\d{3}Z", body)
    # the chart has labelled axes
    assert "delivered per hour (bars)" in page
    assert "delivered in all (line)" in page
    assert "time (CET)" in page


def test_a_large_report_pages_and_stays_small(make_campaign: Make, cli: Cli) -> None:
    rows = [(f"+49 30 1{i:07d}", f"Praxis {i}") for i in range(5_000)]
    camp = _campaign(make_campaign, rows)
    camp.manifest.write_text(camp.manifest.read_text().replace("schedule: {", "schedule: {batch_size: 1000, "))
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    page = cli("report", camp.manifest, "--format", "html").out
    per_row = len(page.encode()) / len(rows)
    assert per_row < 150, per_row  # the full HTML table took 240 bytes a row (4.8 MB at 20,000)
    # the first page is plain HTML (e-mail clients run no script); the rest pages in the browser
    assert page.count("<tr>") < 120
    data = json.loads(page.split('<script type="application/json" id="rows">')[1].split("</script>")[0])
    assert len(data["r"]) == 5_000
    assert 'id="f-status"' in page
    assert 'id="f-text"' in page
    assert "page" in page


def test_report_data_cannot_inject_markup(make_campaign: Make, cli: Cli) -> None:
    camp = _campaign(make_campaign, [("+49 30 12345678", "</script><script>alert(1)</script>")])
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    page = cli("report", camp.manifest, "--format", "html").out
    assert "<script>alert(1)" not in page
    assert page.count("<script") == 2
