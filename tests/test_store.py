"""The state seam: one writer lifecycle, typed events, unknown events refused, every campaign file named."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import pytest

from faxops.domain import Receipt, Status, StatusUpdate
from faxops.errors import StateError
from faxops.state import LocalStore, StatePaths, StateStore, events, open_store
from faxops.state import local as state_module  # where LocalWriter finds fold
from faxops.state.lockfile import read_header
from tests.conftest import CampaignDir, Result

Cli = Callable[..., Result]
Make = Callable[..., CampaignDir]


def _store(tmp_path: Path) -> StateStore:
    return open_store(tmp_path / "camp.yaml", "camp")


def _sent(store: StateStore, ref: str, number: str) -> None:
    with store.writer("test") as writer:
        writer.record(events.intent(ref, [number], "sandbox"))
        answer = Receipt("job-1", updates=[StatusUpdate(number, Status.DELIVERED)])
        writer.record(events.receipt("accepted", ref, [number], answer))


def test_the_writer_folds_and_releases_on_success(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert isinstance(store, LocalStore)
    _sent(store, "fx-1", "+4930123456")
    assert not store.paths.journal.exists()  # folded into the lockfile
    assert store.paths.lockfile.exists()
    assert store.lock_info() is None  # released: the lock file names nobody
    assert dict(store.records())["+4930123456"]["status"] == "delivered"
    assert store.read().summaries["+4930123456"].status == "delivered"
    assert store.identity() == str(store.paths.lockfile.resolve())


def test_the_writer_folds_what_was_recorded_when_the_block_fails(tmp_path: Path) -> None:
    store = _store(tmp_path)

    def crashing_run() -> None:
        with store.writer("test") as writer:
            writer.record(events.intent("fx-1", ["+4930123456"], "sandbox"))
            raise RuntimeError("the provider adapter crashed")

    with pytest.raises(RuntimeError):
        crashing_run()
    # The intent is kept (the next run reconciles it) and the lock is free for that run.
    assert dict(store.records())["+4930123456"]["status"] == "pending"
    with store.writer("next") as writer:
        assert writer.stale is None


def test_a_fold_that_fails_after_a_failure_keeps_the_journal_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)
    assert isinstance(store, LocalStore)

    def full_disk(*args: object, **kwargs: object) -> None:
        raise StateError("cannot write the lockfile: No space left on device")

    def failing_run() -> None:
        with store.writer("test") as writer:
            writer.record(events.intent("fx-1", ["+4930123456"], "sandbox"))
            monkeypatch.setattr(state_module, "fold", full_disk)
            raise RuntimeError("first error")

    with pytest.raises(RuntimeError) as caught:
        failing_run()
    # The first error is the one reported; the failed fold is a note on it, and nothing is lost.
    assert "No space left on device" in " ".join(caught.value.__notes__)
    monkeypatch.undo()
    assert store.paths.journal.exists()
    assert store.lock_info() is None
    assert dict(store.records())["+4930123456"]["status"] == "pending"


def test_an_unknown_event_type_is_refused_when_written_and_when_read(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert isinstance(store, LocalStore)
    with pytest.raises(StateError, match="unknown event type 'acepted'"), store.writer("test") as writer:
        writer.record({"t": "acepted", "ref": "fx-1", "numbers": ["+4930123456"]})
    assert "acepted" not in (store.paths.journal.read_text() if store.paths.journal.exists() else "")
    _sent(store, "fx-1", "+4930123456")
    header = store.header()
    assert header is not None
    # A journal written by a newer faxops, with an event type this one does not know.
    lines = [
        {"t": "header", "lineage": header.lineage, "format_version": 1},
        {"seq": header.journal_seq + 1, "t": "forwarded", "ref": "fx-1", "number": "+4930123456", "at": "x"},
    ]
    store.paths.journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(StateError, match="unknown journal event type 'forwarded'"):
        store.read()


def test_status_refuses_a_journal_it_cannot_read(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    header = read_header(camp.lockfile)
    assert header is not None
    lines = [
        {"t": "header", "lineage": header.lineage, "format_version": 1},
        {"seq": header.journal_seq + 1, "t": "forwarded", "ref": "fx", "number": "+493012345678", "at": "x"},
    ]
    camp.journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = cli("status", camp.manifest)
    assert result.code == 1
    assert "unknown journal event type 'forwarded'" in result.err
    assert "Traceback" not in result.err


def test_state_paths_name_every_file_a_campaign_leaves(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    camp.manifest.write_text(
        camp.manifest.read_text() + "reporting:\n  - {type: file, path: out/report.json, format: json}\n"
    )
    inputs = {camp.manifest, camp.csv, camp.root / "letter.pdf", camp.root / "out" / "report.json"}
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert cli("refresh", camp.manifest, "--force").code == 0
    assert cli("report", camp.manifest).code == 0
    paths = StatePaths.for_manifest(camp.manifest)
    named = {getattr(paths, f.name) for f in fields(paths) if isinstance(getattr(paths, f.name), Path)}
    sandbox = camp.root / ".faxops" / "sandbox"  # the sandbox provider's own folder (a setting)
    left = {p for p in camp.root.rglob("*") if p.is_file() and p not in inputs and sandbox not in p.parents}
    assert left, "the run left no state at all"
    assert paths.report_marker in left  # the final report was delivered, and that is remembered
    assert left <= named, sorted(str(p) for p in left - named)
