"""Reports written piece by piece are the same bytes as the whole document rendered at once."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import orjson
import pytest

from faxops import reports
from faxops.campaign import open_campaign
from faxops.report_rows import ReportRow
from faxops.reports import CSV_COLUMNS, Report, _cell, iter_csv, iter_json, masked
from faxops.state import load_state
from tests.conftest import CampaignDir, Result

Cli = Callable[..., Result]
Make = Callable[..., CampaignDir]


def _report(rows: int) -> Report:
    report = Report("c", "sandbox", "2030-01-01T00:00:00.000Z")
    for i in range(rows):
        report.rows.append(
            ReportRow(
                number=f"+4930{1000000 + i}",
                name=f"=R{i}" if i % 2 else None,
                status="delivered",
                failure=None,
                provider_status="OK",
                reason='a,b\n"c"' if i == 3 else None,
                attempts=1,
                job_ids=[f"J{i}", "K"],
                pages=2,
                first_submitted=None,
                updated="2030-01-01T00:00:00.000Z",
                source=f"list.csv:{i + 2}",
            )
        )
        report.by_status["delivered"] += 1
    return report


@pytest.mark.parametrize("rows", [0, 1, 5])
@pytest.mark.parametrize("mask", [False, True])
def test_json_in_pieces_is_the_indented_document(rows: int, mask: bool) -> None:
    report = _report(rows)
    whole = orjson.dumps(report.to_json(mask=mask), option=orjson.OPT_INDENT_2)
    assert b"".join(iter_json(report, mask=mask, rows_per_chunk=2)) == whole
    # A slotted row serialises as the dictionary it replaced, key for key and in the same order.
    assert [list(r) for r in orjson.loads(whole)["recipients"]] == [list(dict(row)) for row in report.rows]
    assert [orjson.dumps(row) for row in report.rows] == [orjson.dumps(dict(row)) for row in report.rows]


@pytest.mark.parametrize("mask", [False, True])
def test_csv_in_pieces_is_the_whole_csv(mask: bool) -> None:
    report = _report(5)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        shown = masked(row) if mask else row
        writer.writerow([_cell(shown.get(c)) for c in CSV_COLUMNS])
    assert b"".join(iter_csv(report, mask=mask, rows_per_chunk=2)).decode() == out.getvalue()


def _odd_report() -> Report:
    """Rows whose cells need ``_cell`` in some columns of some chunks only (the CSV is made by column)."""
    report = Report("c", "sandbox", "2030-01-01T00:00:00.000Z")
    odd: list[dict[str, object]] = [
        {"name": "-2+3", "pages": -1, "job_ids": [7, "J"]},
        {"number": "12 34", "reason": "@SUM(A1)", "attempts": 0},
        {"name": "\tTab", "provider_status": "+ok", "updated": "=NOW()"},
        {"number": "+4930****5678", "job_ids": ["-1"], "failure": "\rx"},
        {"pages": 1.5, "first_submitted": "", "source": "+1"},
        {},
        {"name": "plain", "job_ids": [], "pages": 0},
    ]
    for i in range(24):
        values: dict[str, object] = {
            "number": f"+4930{1000000 + i}",
            "name": None,
            "status": "delivered",
            "failure": None,
            "provider_status": None,
            "reason": None,
            "attempts": 1,
            "job_ids": [f"J{i}"],
            "pages": None,
            "first_submitted": None,
            "updated": None,
            "source": f"list.csv:{i + 2}",
        }
        values.update(odd[i % len(odd)] if i % 3 else {})
        report.rows.append(ReportRow(**values))  # type: ignore[arg-type]
    return report


@pytest.mark.parametrize("mask", [False, True])
@pytest.mark.parametrize("chunk", [1, 4, 10_000])
def test_csv_by_column_is_the_csv_cell_by_cell(mask: bool, chunk: int) -> None:
    report = _odd_report()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        shown = masked(row) if mask else row
        writer.writerow([_cell(shown.get(c)) for c in CSV_COLUMNS])
    got = b"".join(iter_csv(report, mask=mask, rows_per_chunk=chunk)).decode()
    assert got == out.getvalue()
    assert "'-2+3" in got
    assert "'=NOW()" in got
    assert ",-1," not in got  # a negative count is quoted like any formula


def test_report_on_stdout_is_one_document(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    doc = cli("report", camp.manifest, "--format", "json").json
    assert doc["summary"]["recipients"] == len(doc["recipients"]) == 5
    rows = list(csv.reader(io.StringIO(cli("report", camp.manifest, "--format", "csv").out)))
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == 6


def test_a_report_takes_names_from_its_plan_as_from_a_second_reading(make_campaign: Make, cli: Cli) -> None:
    rows = [("+49 30 12345678", "First"), ("030 12345678", "Duplicate"), ("+33 1 42 68 53 00", "Lemaire")]
    camp = make_campaign([*rows, ("+44 20 7946 0123", ""), ("12", "Invalid")], outcomes={"+33142685300": "busy"})
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    camp.csv.write_text(camp.csv.read_text() + "+1 202 555 0123,Not sent yet\n")
    campaign = open_campaign(camp.manifest)
    with_names = reports.build(campaign, campaign.plan(load_state(campaign.paths), names=True))
    read_again = reports.build(campaign, campaign.plan(load_state(campaign.paths)))
    assert [dict(r) for r in with_names.rows] == [dict(r) for r in read_again.rows]
    by_number = {r.number: r.name for r in with_names.rows}
    assert by_number["+493012345678"] == "First"  # the row that was sent, not its duplicate
    assert by_number["+12025550123"] == "Not sent yet"
    assert by_number["+442079460123"] is None


def test_a_report_streamed_to_stdout_is_scrubbed_of_secrets(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    from faxops import secrets
    from faxops.output import Output

    report = _report(3)
    report.rows[1].reason = "refused: password 'hunter2-secret'"
    secrets.register("hunter2-secret")
    try:
        Output(color=False).stream(iter_json(report, rows_per_chunk=1))
    finally:
        secrets.clear()
    out = capsysbinary.readouterr().out
    assert b"hunter2-secret" not in out
    assert orjson.loads(out)["recipients"][1]["reason"] == "refused: password '***'"
