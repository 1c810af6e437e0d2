"""The lockfile, the journal and their folding: deterministic, crash-tolerant, idempotent."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from faxops.errors import JournalWriteError, StateError, StateLockedError
from faxops.state import LocalWriter, StatePaths, fold, load_state, read_records
from faxops.state.journal import Journal, read_journal
from faxops.state.lock import StateLock, force_unlock, read_lock_info
from faxops.state.lockfile import Header, iter_records, read_header, write_lockfile


def _paths(tmp_path: Path) -> StatePaths:
    return StatePaths.for_manifest(tmp_path / "camp.yaml")


def _intent(ref: str, *numbers: str) -> dict[str, object]:
    return {"t": "intent", "ref": ref, "numbers": list(numbers), "provider": "sandbox", "at": "2026-01-01T00:00:00Z"}


def _accepted(ref: str, job: str, *numbers: str, status: str = "delivered") -> dict[str, object]:
    return {
        "t": "accepted",
        "ref": ref,
        "numbers": list(numbers),
        "job_id": job,
        "ids": {},
        "updates": [{"number": n, "status": status} for n in numbers],
        "at": "2026-01-01T00:00:01Z",
    }


def test_lockfile_is_deterministic_one_line_per_recipient_and_streams(tmp_path: Path) -> None:
    path = tmp_path / "x.lock.json"
    header = Header(lineage="L", serial=3, campaign="c", journal_seq=9)
    records = [(f"+4930{i:07d}", {"status": "delivered", "attempts": [{"n": 1, "job_id": f"j{i}"}]}) for i in range(5)]
    write_lockfile(path, header, records)
    first = path.read_bytes()
    write_lockfile(path, header, records)
    assert path.read_bytes() == first
    doc = json.loads(first)
    assert doc["serial"] == 3
    assert len(doc["recipients"]) == 5
    lines = first.decode().splitlines()
    assert sum(1 for line in lines if line.startswith('    "+4930')) == 5
    assert list(iter_records(path)) == records
    header_read = read_header(path)
    assert header_read is not None
    assert header_read.lineage == "L"


def test_lockfile_reformatted_by_hand_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "x.lock.json"
    path.write_text(
        json.dumps(
            {
                "format_version": 1,
                "lineage": "L",
                "serial": 1,
                "recipients": {"+4930123": {"status": "delivered", "attempts": []}},
            }
        )
    )
    assert [n for n, _ in iter_records(path)] == ["+4930123"]


def test_lockfile_refuses_unsorted_records(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="out of order"):
        write_lockfile(tmp_path / "x.json", Header(lineage="L"), [("+2", {}), ("+1", {})])
    assert not (tmp_path / "x.json").exists()


def test_journal_tolerates_a_torn_last_line_and_cuts_it_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "j"
    journal = Journal(path, "L", 1)
    journal.append(_intent("r1", "+1"))
    journal.close()
    with path.open("ab") as fh:
        fh.write(b'{"seq": 2, "t": "acc')  # the process died mid-write
    contents = read_journal(path)
    assert contents is not None
    assert contents.torn_tail
    assert len(contents.events) == 1
    journal = Journal(path, "L", 2)
    journal.append(_accepted("r1", "J1", "+1"))
    journal.close()
    contents = read_journal(path)
    assert contents is not None
    assert not contents.torn_tail
    assert [e["t"] for e in contents.events] == ["intent", "accepted"]


def test_journal_damaged_in_the_middle_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "j"
    path.write_bytes(b'{"t":"header","lineage":"L"}\n{garbage\n{"seq":2,"t":"intent"}\n')
    with pytest.raises(StateError, match="damaged in its middle"):
        read_journal(path)


def test_group_commit_from_many_threads_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j"
    journal = Journal(path, "L", 1)

    def work(k: int) -> None:
        for i in range(200):
            journal.append(_intent(f"r{k}-{i}", f"+{k}{i:05d}"))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    journal.close()
    contents = read_journal(path)
    assert contents is not None
    assert len(contents.events) == 1600
    assert sorted(int(e["seq"]) for e in contents.events) == list(range(1, 1601))
    assert journal.events_written == 1601  # header included; fewer fsyncs than events is the point


def test_fold_is_idempotent_when_a_crash_leaves_the_journal_behind(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    writer = LocalWriter(paths, "camp", operation="test")
    writer.record(_intent("r1", "+491"))
    writer.record(_accepted("r1", "J1", "+491"))
    journal_copy = paths.journal.read_bytes()
    writer.close()
    assert not paths.journal.exists()
    # simulate a crash between the lockfile rename and the journal's removal
    paths.journal.write_bytes(journal_copy)
    state = load_state(paths)
    assert state.summaries["+491"].attempts == 1
    header = fold(paths, "camp")
    assert header is not None
    records = dict(read_records(paths))
    assert len(records["+491"]["attempts"]) == 1
    assert records["+491"]["attempts"][0]["job_id"] == "J1"


def test_plan_reads_an_unfolded_journal(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    writer = LocalWriter(paths, "camp", operation="test")
    writer.record(_intent("r1", "+491", "+492"))
    # no answer: the process "died" here; the lock is released by the kernel in real life
    writer.lock.release()
    state = load_state(paths)
    assert {n: s.status for n, s in state.summaries.items()} == {"+491": "pending", "+492": "pending"}
    assert state.summaries["+491"].reference == "r1"


def test_journal_of_another_lineage_is_refused(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    writer = LocalWriter(paths, "camp", operation="test")
    writer.record(_intent("r1", "+491"))
    writer.close()
    Journal(paths.journal, "other-lineage", 1).close()
    with pytest.raises(StateError, match="another lockfile"):
        load_state(paths)


def test_status_updates_never_move_backwards(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    writer = LocalWriter(paths, "camp", operation="test")
    writer.record(_intent("r1", "+491"))
    writer.record(_accepted("r1", "J1", "+491", status="delivered"))
    writer.record({"t": "status", "ref": "r1", "number": "+491", "status": "sending", "at": "2026-01-01T00:00:02Z"})
    writer.record({"t": "status", "ref": "r1", "number": "+491", "status": "failed", "at": "2026-01-01T00:00:03Z"})
    writer.close()
    records = dict(read_records(paths))
    assert records["+491"]["status"] == "delivered"


def test_journal_write_failure_is_reported_and_stops(tmp_path: Path) -> None:
    path = tmp_path / "j"
    journal = Journal(path, "L", 1)
    os.close(journal._fd)
    journal._fd = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    with pytest.raises(JournalWriteError, match="cannot write the journal"):
        journal.append(_intent("r1", "+1"))
    with pytest.raises(JournalWriteError):
        journal.append(_intent("r2", "+2"))  # broken for the rest of the run


def test_state_lock_is_exclusive_and_says_who_holds_it(tmp_path: Path) -> None:
    path = tmp_path / ".camp.state-lock"
    first = StateLock(path).acquire("apply")
    with pytest.raises(StateLockedError, match=r"apply by .* \(pid \d+\)"):
        StateLock(path).acquire("apply")
    info, held = read_lock_info(path)
    assert held
    assert info is not None
    assert info.pid == os.getpid()
    with pytest.raises(StateLockedError, match="running process"):
        force_unlock(path, info.id)
    first.release()
    second = StateLock(path).acquire("apply")
    assert second.stale is None
    second.release()


def test_stale_lock_of_a_dead_holder_is_detected(tmp_path: Path) -> None:
    path = tmp_path / ".camp.state-lock"
    dead_holder = json.dumps(
        {"id": "abc", "host": "h", "pid": 999999, "operation": "apply", "since": "2026-01-01T00:00:00Z", "who": "ci"}
    )
    path.write_text(dead_holder)
    lock = StateLock(path).acquire("apply")
    assert lock.stale is not None
    assert lock.stale.id == "abc"
    lock.release()
    path.write_text(dead_holder)
    with pytest.raises(StateError, match="not nope"):
        force_unlock(path, "nope")
    assert force_unlock(path, "abc").pid == 999999
    assert read_lock_info(path) == (None, False)


def test_resend_after_proven_not_sent_is_a_new_attempt_with_its_job_id(tmp_path: Path) -> None:
    # Found by the kill -9 test: the resend reuses the deterministic reference of the lost attempt.
    paths = _paths(tmp_path)
    writer = LocalWriter(paths, "camp", operation="test")
    writer.record(_intent("r1", "+491"))
    writer.record({"t": "not_sent", "ref": "r1", "numbers": ["+491"], "reason": "reconciled: not found"})
    writer.record(_intent("r1", "+491"))
    writer.record(_accepted("r1", "J2", "+491"))
    writer.close()
    record = dict(read_records(paths))["+491"]
    assert [(a["status"], a.get("job_id"), a["n"]) for a in record["attempts"]] == [
        ("not_sent", None, 1),
        ("delivered", "J2", 1),
    ]
    assert record["status"] == "delivered"
    assert load_state(paths).summaries["+491"].attempts == 1


def test_a_later_provider_id_is_recorded_beside_the_job_id(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    writer = LocalWriter(paths, "camp", operation="test")
    writer.record(_intent("r1", "+491"))
    writer.record(_accepted("r1", "OUTBOX-1", "+491", status="queued"))
    writer.record({"t": "status", "ref": "r1", "number": "+491", "status": "delivered", "provider_id": "FAX-9"})
    writer.close()
    attempt = dict(read_records(paths))["+491"]["attempts"][0]
    assert (attempt["job_id"], attempt["fax_id"], attempt["status"]) == ("OUTBOX-1", "FAX-9", "delivered")


def test_lock_timeout_waits_then_reports(tmp_path: Path) -> None:
    import time

    path = tmp_path / ".camp.state-lock"
    holder = StateLock(path).acquire("apply")
    started = time.monotonic()
    with pytest.raises(StateLockedError):
        StateLock(path).acquire("apply", timeout=0.4)
    assert time.monotonic() - started >= 0.4
    holder.release()
    StateLock(path).acquire("apply", timeout=0.4).release()
