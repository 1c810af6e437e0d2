"""The columnar reading of recipient files: the same rows, line numbers and decisions as row by row."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from faxops.campaign import open_campaign
from faxops.chunks import Chunk
from faxops.domain import Status
from faxops.plan import Action, make_plan
from faxops.recipients import NumberCache, iter_sources, resolve_sources
from faxops.state.records import Summary
from faxops.tables import ListFile, iter_table
from tests.conftest import CampaignDir

Make = Callable[..., CampaignDir]

TRICKY = (
    "fax,company\r\n"
    "+49 30 12345678,One\r\n"
    '030 90182000,"Two\r\nlines"\r\n'
    "\r\n"
    '+33 1 42 68 53 00,"Three\nmore\rlines"\n'
    ",Nobody\n"
    "+44 20 7946 0123\n"
    "+1 202 555 0123,Last\n"
)


@pytest.mark.parametrize("size", [1, 2, 3, 50])
def test_chunks_have_the_rows_and_lines_of_the_table_reader(make_campaign: Make, size: int) -> None:
    camp = make_campaign()
    camp.csv.write_bytes(TRICKY.encode())
    rows = list(iter_table(ListFile(camp.csv, "csv", "utf-8", None, None)))
    assert [line for line, _ in rows] == [1, 2, 3, 5, 6, 9, 10, 11]
    loaded = open_campaign(camp.manifest).loaded
    chunks = [c for c in iter_sources(loaded, chunk=size) if isinstance(c, Chunk)]
    got = [(c.lines[i], c.cells[i]) for c in chunks for i in range(len(c))]
    # Line 5 is blank; a row shorter than the mapped columns is padded with empty cells.
    assert got == [(line, cells + [""] * (2 - len(cells))) for line, cells in rows[1:] if line != 5]


def test_chunks_keep_sources_names_and_skip_blank_lines(make_campaign: Make, tmp_path: Path) -> None:
    camp = make_campaign()
    camp.csv.write_bytes(TRICKY.encode())
    loaded = open_campaign(camp.manifest).loaded
    chunks = [c for c in iter_sources(loaded, chunk=2) if isinstance(c, Chunk)]
    assert [c.source(i) for c in chunks for i in range(len(c))] == [f"recipients.csv:{n}" for n in (2, 3, 6, 9, 10, 11)]
    resolved = list(resolve_sources(iter_sources(loaded, chunk=2), NumberCache(None)))
    items = [item for chunk in resolved if isinstance(chunk, Chunk) for item in chunk.items()]
    assert [getattr(i, "number", None) for i in items] == [
        "+493012345678",
        "+493090182000",
        "+33142685300",
        None,
        "+442079460123",
        "+12025550123",
    ]
    assert [getattr(i, "name", None) for i in items] == [
        "One",
        "Two\r\nlines",
        "Three\nmore\rlines",
        None,
        None,
        "Last",
    ]
    assert getattr(items[3], "reason", "") == "empty number"


def test_a_chunk_is_planned_like_the_same_recipients_one_by_one(make_campaign: Make) -> None:
    rows = [(f"+49 30 {20000000 + i}", f"C{i}") for i in range(40)] + [("030 20000003", "dup"), ("12", "bad")]
    camp = make_campaign(rows)
    campaign = open_campaign(camp.manifest)
    delivered = Summary(Status.DELIVERED, 1)
    failed = Summary(Status.FAILED, 1, retryable=True, reason="busy")
    state = {f"+4930{20000000 + i}": delivered for i in range(0, 40, 2)}
    state["+493020000001"] = failed
    suppressed = {"+493020000002": "asked"}

    def plan(items: object) -> dict[str, list[tuple[str, str | None, str | None]]]:
        result = make_plan("c", items, state, suppressed=suppressed)  # type: ignore[arg-type]
        assert result.duplicates == 1
        return {str(a): [(p.number, p.source, p.reason) for p in g] for a, g in result.groups.items()}

    chunked = plan(campaign.candidate_chunks())
    assert any(isinstance(c, Chunk) for c in campaign.candidate_chunks())
    assert chunked == plan(list(campaign.candidates()))
    assert len(chunked[str(Action.UNCHANGED)]) == 19  # every second one, less the suppressed
    assert chunked[str(Action.SKIP)][0][0] == "+493020000002"


def test_number_cache_survives_a_cut_file_and_a_number_with_a_line_break(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    cache = NumberCache(path)
    cache.known.update({"+49 30 12345678": "+493012345678", "DE|030\n1": "", "DE|12": ""})
    cache.dirty = True
    cache.save()
    assert NumberCache(path).known == {"+49 30 12345678": "+493012345678", "DE|12": ""}
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 3])  # a crash mid-write of a copy someone made
    assert NumberCache(path).known == {}
