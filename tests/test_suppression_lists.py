"""Suppression lists: read like recipient lists (delimiter, encoding, columns), never half-read, and
``suppress add`` writing in each list's own format so that the campaign sees the number it added."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from tests.conftest import DEFAULT_ROWS, CampaignDir, Result

Cli = Callable[..., Result]
Make = Callable[..., CampaignDir]
BERLIN = "+493012345678"  # the first of DEFAULT_ROWS


def _with_list(camp: CampaignDir, entry: str) -> None:
    camp.manifest.write_text(camp.manifest.read_text() + f"suppress:\n  - {entry}\n")


def _applied_without(camp: CampaignDir, cli: Cli, number: str) -> None:
    result = cli("apply", camp.manifest, "--auto-approve")
    assert result.code == 0, result.err
    assert number not in camp.sent_numbers()
    assert len(camp.sent()) == len(DEFAULT_ROWS) - 1


def test_a_semicolon_list_is_sniffed(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    (camp.root / "dnf.csv").write_text("Fax Nr;Grund\n+49 30 12345678;Widerspruch per Telefon\n", encoding="utf-8")
    _with_list(camp, "dnf.csv")
    _applied_without(camp, cli, BERLIN)


def test_delimiter_encoding_and_columns_as_for_recipient_lists(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    (camp.root / "dnf.csv").write_bytes("Grund|Faxnummer\nMüller bat darum|030 12345678\n".encode("cp1252"))
    _with_list(camp, '{path: dnf.csv, delimiter: "|", encoding: cp1252, columns: {number: Faxnummer}}')
    _applied_without(camp, cli, BERLIN)


def test_a_wrong_encoding_is_an_error_naming_line_and_column(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    (camp.root / "dnf.csv").write_bytes("number,reason\n+49 30 12345678,Müller\n".encode("cp1252"))
    _with_list(camp, "dnf.csv")
    result = cli("apply", camp.manifest, "--auto-approve")
    assert result.code == 1
    assert "dnf.csv:2:18: byte 0xfc is not utf-8-sig text" in result.err  # the ü of Müller
    assert not camp.sent_log.exists()


def test_an_unreadable_entry_of_the_global_list_stops_the_campaign(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    global_list = Path(os.environ["FAXOPS_SUPPRESSION_LIST"])
    global_list.write_text("number,reason\n+49 30 12345678,asked\nnot-a-number,asked too\n")
    result = cli("apply", camp.manifest, "--auto-approve")
    assert result.code == 1
    assert f"{global_list}:3:" in result.err
    assert "'not-a-number' cannot be read" in result.err
    assert not camp.sent_log.exists()


@pytest.mark.parametrize("existing", ["", "+33 1 42 68 53 00\n", "# opt-outs\n+33 1 42 68 53 00"])
def test_suppress_add_to_a_text_list_writes_one_number_per_line(make_campaign: Make, cli: Cli, existing: str) -> None:
    camp = make_campaign()
    dnf = camp.root / "dnf.txt"
    if existing:
        dnf.write_text(existing)
    result = cli("suppress", "add", "+49 30 12345678", "--reason", "asked, by phone", "--list", dnf)
    assert result.code == 0, result.err
    assert "Added +493012345678" in result.out
    lines = dnf.read_text().splitlines()
    assert lines[-1] == BERLIN
    assert lines[-2].startswith("# asked, by phone (")
    _with_list(camp, "dnf.txt")
    result = cli("apply", camp.manifest, "--auto-approve")
    assert result.code == 0, result.err
    assert BERLIN not in camp.sent_numbers()
    assert ("+33142685300" in camp.sent_numbers()) == (not existing)


def test_suppress_add_keeps_a_csv_lists_delimiter_and_columns(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    dnf = camp.root / "dnf.csv"
    dnf.write_text("Fax Nr;reason;number\n;old row;+33 1 42 68 53 00\n", encoding="utf-8")
    assert cli("suppress", "add", BERLIN, "--reason", "Widerspruch", "--list", dnf).code == 0
    assert dnf.read_text().splitlines()[-1] == f";Widerspruch;{BERLIN}"
    _with_list(camp, "{path: dnf.csv, columns: {number: number}}")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert BERLIN not in camp.sent_numbers()
    assert "+33142685300" not in camp.sent_numbers()


def test_suppress_add_to_xlsx_writes_a_real_row(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    dnf = camp.root / "dnf.xlsx"
    book = Workbook()
    sheet = book.worksheets[0]
    sheet.append(["number", "reason"])
    sheet.append(["+33 1 42 68 53 00", "old"])
    book.save(dnf)
    result = cli("suppress", "add", BERLIN, "--reason", "asked", "--list", dnf)
    assert result.code == 0, result.err
    rows = list(load_workbook(dnf, read_only=True).worksheets[0].iter_rows(values_only=True))
    assert rows[-1] == (BERLIN, "asked")
    _with_list(camp, "dnf.xlsx")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert BERLIN not in camp.sent_numbers()


def test_suppress_add_refuses_a_list_it_cannot_read_back(cli: Cli, tmp_path: Path) -> None:
    dnf = tmp_path / "dnf.csv"
    dnf.write_text('number,reason\n"+33 1 42 68 53 00,never closed\n')
    result = cli("suppress", "add", BERLIN, "--reason", "x", "--list", dnf)
    assert result.code == 1
    assert "cannot be read back" in result.err
    assert "Added" not in result.out


def test_suppress_add_creates_a_csv_list(cli: Cli, tmp_path: Path) -> None:
    dnf = tmp_path / "new" / "dnf.csv"
    assert cli("suppress", "add", "030 12345678", "--region", "de", "--reason", "x", "--list", dnf).code == 0
    header, row = dnf.read_text().splitlines()
    assert header == "number,reason,added_at,added_by"
    assert row.startswith(f"{BERLIN},x,")
    assert os.stat(dnf).st_mode & 0o777 == 0o600
