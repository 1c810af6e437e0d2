"""The fold's one-pass replay of the journal writes the very lockfile the general (indexed) fold writes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from faxops.domain import Receipt, Status, StatusUpdate
from faxops.state import StatePaths, fold, load_state, local
from faxops.state import replay as replay_module
from faxops.state.events import expire, intent, outcome, receipt, rejected, resolve, status, updates_json
from faxops.state.journal import Journal
from faxops.state.lockfile import Header, read_header, write_lockfile
from faxops.state.records import Event
from faxops.state.replay import Replayed

OLD = {
    "+491": {"attempts": [{"n": 1, "provider": "p", "reference": "a1", "status": "failed"}], "status": "failed"},
    "+493": {"attempts": [{"n": 1, "provider": "p", "reference": "a3", "status": "pending"}], "status": "pending"},
    "+495": {"attempts": [{"n": 1, "provider": "p", "reference": "a5", "status": "delivered"}], "status": "delivered"},
}


def _events() -> list[Event]:
    """Every kind of event, over numbers old and new, in shapes a real run writes."""
    delivered = [StatusUpdate("+492", Status.DELIVERED, raw="OK", pages=2)]
    events: list[Event] = [
        intent("r1", ["+491"], "p"),  # a retry of an old number
        intent("r2", ["+492", "+494", "+496"], "p"),  # a batch of new numbers
        receipt("accepted", "r2", ["+492", "+494", "+496"], Receipt("J2", {"+494": "x4"}, delivered)),
        rejected("r1", ["+491"], code="BUSY", message="busy", retryable=True, failure="busy"),
        receipt("found", "a3", ["+493"], Receipt("J3"), evidence="listed"),  # reconcile of an old one
        status("r2", updates_json([StatusUpdate("+494", Status.FAILED, raw="NOANSWER", reason="no answer")])[0]),
        intent("r7", ["+497"], "p"),
        outcome("not_sent", "r7", ["+497"], "connection refused"),
        intent("r8", ["+498"], "p"),
        outcome("unknown", "r8", ["+498"], "timeout after sending"),
        resolve("r8", "+498", job_id="J8", note="seen in the portal", by="ops"),
        expire(["+497", "+499"]),
        intent("r1b", ["+491"], "p"),
        intent("r1b", ["+491"], "p"),  # the same intent twice: no second attempt
    ]
    # Many sends in between, so that a late status comes long after its record was answered.
    for i in range(300):
        events.append(intent(f"m{i}", [f"+48{i:04d}"], "p"))
        events.append(receipt("accepted", f"m{i}", [f"+48{i:04d}"], Receipt(f"M{i}")))
    events.append(status("r2", updates_json([StatusUpdate("+496", Status.DELIVERED, raw="OK")])[0]))
    events.append(status("m5", updates_json([StatusUpdate("+480005", Status.DELIVERED, raw="OK")])[0]))
    return events


def _count_replays(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = replay_module.replay

    def counted(*args: Any, **kwargs: Any) -> Replayed:
        calls.append("replay")
        result: Replayed = real(*args, **kwargs)
        return result

    monkeypatch.setattr(local, "replay", counted)
    return calls


def _campaign(root: Path, with_lockfile: bool) -> StatePaths:
    root.mkdir()
    paths = StatePaths.for_manifest(root / "camp.yaml", "camp")
    lineage = "L"
    if with_lockfile:
        write_lockfile(paths.lockfile, Header(lineage, 3, "camp", journal_seq=10), sorted(OLD.items()))
    journal = Journal(paths.journal, lineage, 11 if with_lockfile else 1)
    for event in _events():
        journal.append(event)
    journal.close()
    return paths


@pytest.mark.parametrize("with_lockfile", [True, False], ids=["over-a-lockfile", "first-fold"])
def test_the_replayed_fold_writes_what_the_indexed_fold_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_lockfile: bool
) -> None:
    replayed = _campaign(tmp_path / "replayed", with_lockfile)
    general = StatePaths.for_manifest(tmp_path / "general" / "camp.yaml", "camp")
    shutil.copytree(tmp_path / "replayed", tmp_path / "general")
    if with_lockfile:
        load_state(replayed)  # a plan before the apply: the lockfile's summaries index is written
        assert replayed.summaries.exists()
    unfolded = load_state(replayed)

    calls = _count_replays(monkeypatch)
    fold(replayed, "camp")
    assert calls == ["replay"]
    monkeypatch.setattr("faxops.state.local._replayed", lambda paths, header: (False, None))
    fold(general, "camp")
    monkeypatch.undo()

    assert replayed.lockfile.read_bytes() == general.lockfile.read_bytes()
    assert not replayed.journal.exists()
    assert not list(replayed.journal.parent.glob("*.fold"))  # the spill is gone with the fold
    after = load_state(replayed)
    # What readers saw before the fold, they see after it (a settled record is then known by its status
    # and attempt count only, as ever).
    assert {n: (s.status, s.attempts) for n, s in after.summaries.items()} == {
        n: (s.status, s.attempts) for n, s in unfolded.summaries.items()
    }
    settled = (Status.DELIVERED, Status.QUEUED, Status.SENDING)
    assert {n: s for n, s in after.summaries.items() if s.status not in settled} == {
        n: s for n, s in unfolded.summaries.items() if s.status not in settled
    }
    records = {n: s.status for n, s in after.summaries.items()}
    assert records["+491"] == Status.PENDING  # retried, refused, sent again (its intent once only)
    assert after.summaries["+491"].attempts == (3 if with_lockfile else 2)
    assert records["+492"] == records["+496"] == records["+480005"] == Status.DELIVERED
    assert records["+497"] == Status.EXPIRED
    header = read_header(replayed.lockfile)
    assert header is not None
    assert header.audit  # the resolve was audited


def test_a_stale_summaries_index_makes_the_fold_take_the_general_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _campaign(tmp_path / "c", with_lockfile=True)
    load_state(paths)
    reference = tmp_path / "reference"
    shutil.copytree(tmp_path / "c", reference)
    paths.lockfile.write_bytes(paths.lockfile.read_bytes())  # same bytes, written again: the index is stale
    calls = _count_replays(monkeypatch)
    fold(paths, "camp")
    assert calls == []  # the lockfile's records could not be read by offset: indexed and merged as before
    copied = StatePaths.for_manifest(reference / "camp.yaml", "camp")
    load_state(copied)  # a copy too is a new file: reading it whole writes its own index
    fold(copied, "camp")
    assert calls == ["replay"]
    assert paths.lockfile.read_bytes() == (reference / "camp.lock.json").read_bytes()


def test_a_spill_that_cannot_be_written_makes_the_fold_take_the_general_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _campaign(tmp_path / "c", with_lockfile=False)
    reference = tmp_path / "reference"
    shutil.copytree(tmp_path / "c", reference)

    def full(self: object, data: bytes) -> None:
        raise replay_module.SpillError(OSError(28, "No space left on device"))

    monkeypatch.setattr(replay_module._Spill, "write", full)
    fold(paths, "camp")  # no error: folded without a spill
    monkeypatch.undo()
    fold(StatePaths.for_manifest(reference / "camp.yaml", "camp"), "camp")
    assert paths.lockfile.read_bytes() == (reference / "camp.lock.json").read_bytes()
    assert not paths.journal.exists()
