"""A list file's number column: a warm reading takes its numbers by position, never wrong when the list changed."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from faxops.campaign import open_campaign
from faxops.chunks import Chunk
from faxops.number_columns import NumberColumns
from faxops.recipients import NumberCache, iter_sources, resolve_sources
from tests.conftest import CampaignDir, Result, write_csv

Make = Callable[..., CampaignDir]


def _rows(count: int) -> list[tuple[str, str]]:
    """International, national and invalid numbers, as lists mix them."""
    rows = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            rows.append((f"+49 30 {20000000 + i}", f"C{i}"))
        elif kind == 1:
            rows.append((f"089 {2000000 + i}", f"C{i}"))
        elif kind == 2:
            rows.append((f"+33 1 42 {100000 + i}", f"C{i}"))
        else:
            rows.append(("12" if i % 8 == 3 else f"0221 {3000000 + i}", f"C{i}"))
    return rows


class _Reading:
    """Reads a campaign's list in chunks of 7 rows through a number cache kept in ``path``."""

    def __init__(self, camp: CampaignDir, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.camp, self.path, self.resolved = camp, path, 0
        original = NumberCache.resolve_chunk

        def counting(cache: NumberCache, chunk: Chunk, workers: int) -> Chunk:
            self.resolved += 1
            return original(cache, chunk, workers)

        monkeypatch.setattr(NumberCache, "resolve_chunk", counting)

    def numbers(self, path: Path | None = None) -> list[str]:
        self.resolved = 0
        path = path or self.path
        cache = NumberCache(path, NumberColumns(path.with_name("columns")))
        loaded = open_campaign(self.camp.manifest).loaded
        chunks = resolve_sources(iter_sources(loaded, chunk=7), cache)
        numbers = [n for c in chunks if isinstance(c, Chunk) for n in c.numbers]
        cache.save()
        return numbers

    def reference(self, tmp_path: Path) -> list[str]:
        """The same list resolved with a cache of its own, read once: what the column must give."""
        fresh = tmp_path / f"fresh-{len(list(tmp_path.iterdir()))}"
        fresh.mkdir()
        return self.numbers(fresh / "numbers")


def test_a_warm_reading_takes_every_number_from_the_column(
    make_campaign: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    camp = make_campaign(_rows(60))
    reading = _Reading(camp, tmp_path / "cache" / "numbers", monkeypatch)
    cold = reading.numbers()
    assert reading.resolved == 9  # 60 rows in chunks of 7
    assert "" in cold
    assert "+493020000000" in cold
    assert "+49892000001" in cold
    column = reading.path.with_name("columns")
    assert column.stat().st_mode & 0o777 == 0o600  # every recipient's number
    written = column.read_bytes()

    loads: list[Path] = []
    load = NumberCache._load

    def spy(path: Path) -> dict[str, str]:
        loads.append(path)
        return load(path)

    monkeypatch.setattr(NumberCache, "_load", staticmethod(spy))
    assert reading.numbers() == cold
    assert reading.resolved == 0
    assert loads == []  # the number cache's entries were never read
    assert column.read_bytes() == written  # nothing changed: not rewritten


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda rows: rows.__setitem__(20, ("+44 20 7946 0123", "changed")), id="one-row-changed"),
        pytest.param(lambda rows: rows.__delitem__(3), id="a-row-removed"),
        pytest.param(lambda rows: rows.extend(_rows(75)[60:]), id="rows-added"),
        pytest.param(lambda rows: rows.__delitem__(slice(40, None)), id="cut-short"),
        pytest.param(lambda rows: rows.insert(0, ("", "blank number")), id="row-inserted"),
    ],
)
def test_a_changed_list_is_resolved_again(
    make_campaign: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: Callable[[list[object]], None]
) -> None:
    camp = make_campaign(_rows(60))
    reading = _Reading(camp, tmp_path / "cache" / "numbers", monkeypatch)
    reading.numbers()
    rows: list[object] = list(_rows(60))
    edit(rows)
    write_csv(camp.csv, rows)  # type: ignore[arg-type]
    assert reading.numbers() == reading.reference(tmp_path)
    assert reading.resolved > 0
    again = reading.numbers()  # the column was written again for the changed list
    assert reading.resolved == 0
    assert again == reading.reference(tmp_path)


def test_only_the_changed_rows_are_looked_up(
    make_campaign: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _rows(60)
    camp = make_campaign(rows)
    reading = _Reading(camp, tmp_path / "cache" / "numbers", monkeypatch)
    reading.numbers()
    rows[20] = ("+44 20 7946 0123", "changed")
    write_csv(camp.csv, rows)
    numbers = reading.numbers()
    assert reading.resolved == 1  # the one chunk holding row 20
    assert "+442079460123" in numbers
    assert "+493020000020" not in numbers


def test_the_region_is_part_of_the_column(make_campaign: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    camp = make_campaign(_rows(30))
    reading = _Reading(camp, tmp_path / "cache" / "numbers", monkeypatch)
    german = reading.numbers()
    camp.manifest.write_text(camp.manifest.read_text().replace("default_region: DE", "default_region: FR"))
    french = reading.numbers()
    assert french == reading.reference(tmp_path)
    assert french != german  # 089 ... is another subscriber in France (or none)


@pytest.mark.parametrize(
    ("damage", "resolved"),
    [
        pytest.param(lambda data: data[: len(data) // 2], 9, id="cut"),
        # only the rows whose digest no longer matches: the first chunk
        pytest.param(lambda data: data.replace(b"\n+4930", b"\n+4940", 1), 1, id="a-number-changed-by-hand"),
        pytest.param(lambda data: data.replace(b"phonenumbers ", b"phonenumbers 0", 1), 9, id="another-version"),
        pytest.param(lambda data: b"\xff" + data, 9, id="not-text"),
    ],
)
def test_a_damaged_column_is_never_trusted_beyond_its_checks(
    make_campaign: Make,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    damage: Callable[[bytes], bytes],
    resolved: int,
) -> None:
    camp = make_campaign(_rows(60))
    reading = _Reading(camp, tmp_path / "cache" / "numbers", monkeypatch)
    cold = reading.numbers()
    column = reading.path.with_name("columns")
    column.write_bytes(damage(column.read_bytes()))
    assert reading.numbers() == cold
    assert reading.resolved == resolved
    assert reading.numbers() == cold
    assert reading.resolved == 0


def test_a_warm_plan_is_the_cold_plan_through_the_cli(
    make_campaign: Make, tmp_path: Path, cli: Callable[..., Result]
) -> None:
    # write_csv writes cells as they are: the quotes make a name over two lines
    rows = [*_rows(40), ("+49 30 20000000", "a duplicate"), ("030 5550123", '"Two\nlines"'), ("", "no number")]
    camp = make_campaign(rows)
    cache = camp.root / ".faxops" / "cache"

    def plan() -> dict[str, Any]:
        result = cli("plan", camp.manifest, "--json", "--refresh=false")
        assert result.code == 0, result.err
        return {k: v for k, v in result.json.items() if k != "at"}

    cold = plan()
    assert cold["summary"]["duplicates"] == 1
    assert ("+49305550123", "recipients.csv:43") in [(a["number"], a["source"]) for a in cold["actions"]]
    assert list(cache.iterdir())  # the number cache and the list's column
    assert plan() == cold
    rows[7] = ("+44 20 7946 0123", "changed")
    del rows[30]
    write_csv(camp.csv, rows)
    warm = plan()
    shutil.rmtree(cache)
    assert warm == plan() != cold


def test_every_list_of_a_campaign_keeps_its_column(
    make_campaign: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    camp = make_campaign(_rows(30))
    write_csv(camp.root / "more.csv", _rows(50)[30:])
    text = camp.manifest.read_text()
    two = text.replace(
        "      columns: {number: fax, name: company}\n",
        "      columns: {number: fax, name: company}\n    - path: more.csv\n      columns: {number: fax}\n",
    )
    assert two != text
    camp.manifest.write_text(two)
    reading = _Reading(camp, tmp_path / "cache" / "numbers", monkeypatch)
    cold = reading.numbers()
    assert len(cold) == 50
    assert "+33142100042" in cold[30:]
    assert reading.resolved == 5 + 3
    assert reading.numbers() == cold
    assert reading.resolved == 0  # both lists from their columns
    camp.manifest.write_text(text)  # more.csv is no longer named: its column is dropped
    assert reading.numbers() == cold[:30]
    assert reading.resolved == 0
    kept = reading.path.with_name("columns").read_bytes()
    assert kept.count(b"\n+33142100042\n") == 0
    assert kept.count(b"\n+33142100002\n") == 1
