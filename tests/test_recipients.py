"""Recipient lists: formats, normalisation, the number cache and streaming."""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path

import phonenumbers
import pytest
from openpyxl import Workbook

from faxops.campaign import open_campaign
from faxops.chunks import Row
from faxops.domain import Invalid, Recipient
from faxops.errors import InputError
from faxops.recipients import NumberCache, _fast_e164, iter_rows, normalise, resolve_rows
from tests.conftest import CampaignDir

Make = Callable[..., CampaignDir]


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+49 30 12345678", None, "+493012345678"),
        ("0049 30 12345678", None, "+493012345678"),
        ("030 12345678", "DE", "+493012345678"),
        ("(030) 1234-5678", "DE", "+493012345678"),
        ("+33 1 42 68 53 00", "DE", "+33142685300"),
        ("+39 06 1234 5678", None, "+390612345678"),  # Italian leading zero is kept
        ("+1 (202) 555-0123", None, "+12025550123"),
    ],
)
def test_normalise_valid(raw: str, region: str | None, expected: str) -> None:
    assert normalise(raw, region) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "region", "why"),
    [
        ("", "DE", "empty"),
        ("030 12345678", None, "default_region"),
        ("0172 12", "DE", "not a valid number for DE"),
        ("call me", "DE", "not a phone number"),
    ],
)
def test_normalise_invalid(raw: str, region: str | None, why: str) -> None:
    e164, reason = normalise(raw, region)
    assert e164 is None
    assert reason is not None
    assert why in reason


def test_fast_path_agrees_with_phonenumbers_for_every_region() -> None:
    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (
            phonenumbers.PhoneNumberType.FIXED_LINE,
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.TOLL_FREE,
        ):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            for text in (e164, e164[:-1], e164 + "7", e164[:-2] + "00"):
                full = phonenumbers.parse(text, None)
                expected = (
                    phonenumbers.format_number(full, phonenumbers.PhoneNumberFormat.E164)
                    if phonenumbers.is_valid_number(full)
                    else None
                )
                fast = _fast_e164(text)
                if fast is not None:  # the fast path may only confirm what the parser confirms
                    assert fast == expected, text
                assert normalise(text, None)[0] == expected, text
                checked += 1
    assert checked > 1000


def test_csv_tsv_and_xlsx_lists(make_campaign: Make) -> None:
    camp = make_campaign()
    (camp.root / "more.tsv").write_text("nummer\tfirma\tkdnr\n+33 1 42 68 53 00\tLemaire\t42\n")
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["fax", "name", "city"])
    sheet.append(["+44 20 7946 0123", "Harrow", "London"])
    sheet.append([None, None, None])
    sheet.append([493012345678, "no plus, read as national", "Berlin"])
    book.save(camp.root / "list.xlsx")
    camp.write_manifest("""
        campaign: {name: lists}
        documents: [letter.pdf]
        recipients:
          default_region: DE
          inline:
            - {number: "+39 06 1234 5678", name: Conti, fields: {city: Roma}}
          files:
            - {path: more.tsv, columns: {number: nummer, name: firma, fields: {customer: kdnr}}}
            - {path: list.xlsx, columns: {number: fax, name: name, fields: [city]}}
    """)
    campaign = open_campaign(camp.manifest)
    rows = list(iter_rows(campaign.loaded))
    assert [(r.raw, r.name, r.fields, r.source) for r in rows] == [
        ("+39 06 1234 5678", "Conti", {"city": "Roma"}, "campaign.yaml:6"),
        ("+33 1 42 68 53 00", "Lemaire", {"customer": "42"}, "more.tsv:2"),
        ("+44 20 7946 0123", "Harrow", {"city": "London"}, "list.xlsx:2"),
        ("493012345678", "no plus, read as national", {"city": "Berlin"}, "list.xlsx:4"),
    ]


def test_xlsx_missing_sheet(make_campaign: Make) -> None:
    camp = make_campaign()
    book = Workbook()
    book.save(camp.root / "list.xlsx")
    camp.write_manifest("""
        campaign: {name: lists}
        documents: [letter.pdf]
        recipients:
          files: [{path: list.xlsx, sheet: Customers}]
    """)
    with pytest.raises(InputError, match="no sheet named 'Customers'"):
        list(iter_rows(open_campaign(camp.manifest).loaded))


def test_rows_are_streamed_not_loaded(make_campaign: Make) -> None:
    camp = make_campaign()
    with camp.csv.open("w") as fh:
        fh.write("fax,company\n")
        for i in range(100_000):
            fh.write(f"+4930{i:08d},C{i}\n")
    rows = iter_rows(open_campaign(camp.manifest).loaded)
    assert isinstance(rows, types.GeneratorType)
    first = next(rows)
    assert first.source == "recipients.csv:2"


def test_number_cache_remembers_across_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cache"
    rows = [Row("+49 30 12345678", None, None, None, "a:1"), Row("12", "DE", None, None, "a:2")]
    cache = NumberCache(path)
    out = list(resolve_rows(rows, cache))
    cache.save()
    assert isinstance(out[0], Recipient)
    assert out[0].number == "+493012345678"
    assert isinstance(out[1], Invalid)

    calls: list[object] = []

    def spy(keys: list[tuple[str, str | None]]) -> list[str | None]:
        calls.append(keys)
        return []

    monkeypatch.setattr("faxops.recipients._normalise_chunk", spy)
    warm = NumberCache(path)
    assert warm.resolve(rows, workers=1) == ["+493012345678", None]
    assert calls == []  # a warm run never calls phonenumbers


def test_parallel_normalisation_matches_serial(tmp_path: Path) -> None:
    rows = [Row(f"+4930{i:08d}", None, None, None, f"x:{i}") for i in range(25_000)]
    rows += [Row("030 1", "DE", None, None, "x:bad")]
    serial = NumberCache(None).resolve(rows, workers=1)
    parallel = NumberCache(None).resolve(rows, workers=2)
    assert serial == parallel
    assert parallel[-1] is None
