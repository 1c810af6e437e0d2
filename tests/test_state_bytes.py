"""State read and folded from its bytes: the same answers as parsing every record, and nothing lost."""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from faxops.bulk import bulk, paused_gc
from faxops.state import LocalWriter, StatePaths, fold, load_state, read_raw_records, read_records
from faxops.state.lockfile import Header, parse_record, write_lockfile
from faxops.state.records import Summary
from tests.conftest import CampaignDir, Result

Cli = Callable[..., Result]
Make = Callable[..., CampaignDir]


def _rows(n: int) -> list[tuple[str, str]]:
    return [(f"+4930{1000000 + i}", f"R{i}") for i in range(n)]


def test_status_counts_every_record_past_the_rows_it_shows(make_campaign: Make, cli: Cli) -> None:
    rows = _rows(80)
    # Failures after the 50 rows the human status shows: counted (and classified) all the same.
    camp = make_campaign(rows, outcomes={"+49301000070": "busy", "+49301000075": "invalid"})
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    full = cli("status", camp.manifest, "--json").json
    assert sum(full["counts"].values()) == 80
    assert full["counts"]["failed"] == 2
    human = cli("status", camp.manifest).out
    assert "80 recipient(s) recorded" in human
    for status, count in full["counts"].items():
        assert re.search(rf"^{status}\s+{count}$", human, re.M), (status, count, human)
    assert re.search(r"^busy\s+1$", human, re.M), human
    assert re.search(r"^invalid_number\s+1$", human, re.M), human


def test_fold_copies_untouched_records_byte_for_byte(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign(_rows(20))
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    before = camp.lockfile.read_bytes().splitlines()
    paths = StatePaths.for_manifest(camp.manifest)
    records = dict(read_records(paths))
    attempt = records["+49301000003"]["attempts"][-1]
    writer = LocalWriter(paths, "test-campaign", operation="test")
    writer.record(
        {
            "t": "status",
            "ref": attempt["reference"],
            "number": "+49301000003",
            "status": "delivered",
            "provider_id": "FX-9",
            "raw": "BUSY",
            "at": "2030-01-01T00:00:00.000Z",
        }
    )
    writer.abandon()
    # Readers see the journal over the lockfile: the touched record parsed and folded, the others as bytes.
    raw = dict(read_raw_records(paths))
    assert isinstance(raw["+49301000003"], dict)
    assert all(isinstance(v, bytes) for k, v in raw.items() if k != "+49301000003")
    assert {k: v if isinstance(v, dict) else parse_record(paths.lockfile, v) for k, v in raw.items()} == dict(
        read_records(paths)
    )
    assert fold(paths, "test-campaign") is not None
    after = camp.lockfile.read_bytes().splitlines()
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    touched = [i for i, line in enumerate(after) if b'"+49301000003"' in line]
    assert set(changed) <= {
        *touched,
        *(i for i, line in enumerate(after) if b'"serial"' in line or b"journal_seq" in line),
    }
    folded = dict(read_records(paths))
    assert folded["+49301000003"]["attempts"][-1]["fax_id"] == "FX-9"
    assert {k: v for k, v in folded.items() if k != "+49301000003"} == {
        k: v for k, v in records.items() if k != "+49301000003"
    }
    assert orjson.loads(camp.lockfile.read_bytes())["recipients"] == folded


def test_bulk_passes_pause_the_collector_and_always_restore_it() -> None:
    seen: list[bool] = []

    @bulk
    def work(fail: bool) -> None:
        seen.append(gc.isenabled())
        with paused_gc():
            seen.append(gc.isenabled())
        seen.append(gc.isenabled())  # a nested pause does not switch it back on early
        if fail:
            raise ValueError("boom")

    assert gc.isenabled()
    work(False)
    with pytest.raises(ValueError, match="boom"):
        work(True)
    assert gc.isenabled()
    assert seen == [False] * 6


def _attempt(n: int, status: str, **extra: object) -> dict[str, object]:
    return {"n": n, "provider": "sandbox", "reference": f"r{n}", "status": status, **extra}


RECORDS: dict[str, dict[str, object]] = {
    "+491": {"attempts": [_attempt(1, "delivered", job_id="J1")], "status": "delivered"},
    "+492": {"attempts": [_attempt(1, "not_sent"), _attempt(1, "queued")], "status": "queued"},
    "+493": {"attempts": [_attempt(1, "failed", reason='he said "n": no', retryable=True)], "status": "failed"},
    "+494": {"attempts": [_attempt(1, "pending")], "status": "pending"},
    "+495": {"attempts": [_attempt(1, "failed"), _attempt(2, "sending")], "status": "sending"},
    "+496": {"attempts": [_attempt(1, "not_sent")], "expired_at": "2030-01-01T00:00:00Z", "status": "expired"},
    "+497": {
        "attempts": [_attempt(n, "failed") for n in range(1, 19)] + [_attempt(19, "delivered")],
        "status": "delivered",
    },
}


@pytest.mark.parametrize("block", [16, 100, 1 << 20])
def test_state_read_a_block_at_a_time_equals_the_line_by_line_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    paths = StatePaths.for_manifest(tmp_path / "camp.yaml")
    write_lockfile(paths.lockfile, Header("L", 1, "camp"), sorted(RECORDS.items()))
    monkeypatch.setattr("faxops.state.fastread._BLOCK", block)
    fast = load_state(paths)
    paths.summaries.unlink()  # written by that first read; the next would take it, not the lockfile
    with monkeypatch.context() as patched:
        patched.setattr("faxops.state.indexed_read.read_summaries", lambda *args: None)  # the line-by-line reader
        line_by_line = load_state(paths, detail={"+0"})
    assert fast.summaries == line_by_line.summaries
    assert list(fast.summaries) == list(RECORDS)
    assert fast.summaries["+492"].attempts == 1
    assert fast.summaries["+497"].attempts == 19
    # Reformatted by hand (or not faxops' layout at all): read the general way, same answers.
    paths.lockfile.write_text(json.dumps(json.loads(paths.lockfile.read_text()), indent=4))

    def brief(summaries: dict[str, Summary]) -> dict[str, tuple[str, int]]:
        return {number: (str(s.status), s.attempts) for number, s in summaries.items()}

    assert brief(load_state(paths).summaries) == brief(line_by_line.summaries)


@pytest.mark.parametrize("block", [16, 1 << 20])
def test_records_read_in_blocks_equal_the_whole_document_in_any_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    paths = StatePaths.for_manifest(tmp_path / "camp.yaml")
    write_lockfile(paths.lockfile, Header("L", 1, "camp"), sorted(RECORDS.items()))
    monkeypatch.setattr("faxops.state.fastread._BLOCK", block)
    assert list(read_records(paths)) == sorted(RECORDS.items())
    # Edited by hand half way down (another indentation from the fourth record on): the block reader stops
    # there and the general reader carries on, each record once, in order.
    lines = paths.lockfile.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith('    "+494"'))
    paths.lockfile.write_text("".join(lines[:at] + ["  " + line for line in lines[at:]]))
    assert list(read_records(paths)) == sorted(RECORDS.items())
    assert [n for n, _ in read_raw_records(paths)] == sorted(RECORDS)
