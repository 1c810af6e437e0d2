"""The summaries index beside the lockfile: used only while it summarises exactly that file.

Most tests prove the index is read by forging one that disagrees with the lockfile in one number while
still bound to the file: the plan then follows the index. Every way of changing the lockfile (an edit,
a copy, a Git checkout), a damaged index or another campaign's, must make the plan follow the lockfile.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from faxops.domain import Receipt, Status, StatusUpdate
from faxops.state import LocalWriter, StatePaths, fold, load_state
from faxops.state.events import intent, receipt
from faxops.state.fastread import read_summaries
from faxops.state.lockfile import read_header
from faxops.state.records import Summary, summarise
from faxops.state.summary_index import IndexBuilder, load_index, write_index
from tests.conftest import CampaignDir, Result

Make = Callable[..., CampaignDir]
Cli = Callable[..., Result]
NUMBER = "+33142685300"


def _paths(camp: CampaignDir) -> StatePaths:
    return StatePaths.for_manifest(camp.manifest, "test-campaign")


def _applied(make_campaign: Make, cli: Cli) -> CampaignDir:
    camp = make_campaign()
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert _paths(camp).summaries.exists()  # written by the fold of that apply
    return camp


def _forge(paths: StatePaths, number: str = NUMBER) -> None:
    """An index bound to the current lockfile that says ``number`` was never sent (a lie the plan would
    act on: only a test writes it)."""
    header = read_header(paths.lockfile)
    assert header is not None
    whole = read_summaries(paths.lockfile, lambda raw: pytest.fail("all settled"))
    assert whole is not None
    assert number in whole.summaries
    whole.summaries[number] = Summary(Status.NOT_SENT, 0)
    assert write_index(paths.summaries, header, os.stat(paths.lockfile), whole.numbers, whole.summaries, whole.offsets)


def _to_send(cli: Cli, camp: CampaignDir) -> list[str]:
    plan = cli("plan", camp.manifest, "--json")
    assert plan.code == 0, plan.err
    return [a["number"] for a in plan.json["actions"] if a["action"] == "send"]


def test_a_valid_index_is_what_the_plan_reads_and_touching_the_lockfile_makes_it_stale(
    make_campaign: Make, cli: Cli
) -> None:
    camp = _applied(make_campaign, cli)
    paths = _paths(camp)
    assert _to_send(cli, camp) == []
    _forge(paths)
    assert _to_send(cli, camp) == [NUMBER]  # the plan read the index, not the lockfile
    os.utime(camp.lockfile)  # same bytes, new times: no longer the file the index was made from
    assert _to_send(cli, camp) == []
    # That plan read the lockfile whole and wrote a fresh index for it, which is used from then on.
    header = read_header(camp.lockfile)
    assert header is not None
    fresh = load_index(paths.summaries, camp.lockfile, header)
    assert fresh is not None
    assert fresh.summaries[NUMBER].status == Status.DELIVERED


def test_an_edited_lockfile_is_read_not_its_index(make_campaign: Make, cli: Cli) -> None:
    camp = _applied(make_campaign, cli)
    _forge(_paths(camp), "+493012345678")
    text = camp.lockfile.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith(f'    "{NUMBER}"'))
    # Same length, so only the file's times and inode tell the edit: the record now says not sent.
    edited = line.replace('"status":"delivered"', '"status":"not_sent" ')
    assert len(edited) == len(line)
    camp.lockfile.write_text(text.replace(line, edited))
    assert _to_send(cli, camp) == [NUMBER]  # as the lockfile says, not the index (which names another number)


def test_a_copied_campaign_does_not_trust_the_copied_index(make_campaign: Make, cli: Cli, tmp_path: Path) -> None:
    camp = _applied(make_campaign, cli)
    _forge(_paths(camp))
    copy = CampaignDir(tmp_path.parent / f"{tmp_path.name}-copy")
    shutil.copytree(camp.root, copy.root)  # times are kept (copy2): only the inode and ctime differ
    assert _to_send(cli, copy) == []
    assert _to_send(cli, camp) == [NUMBER]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_lockfile_checked_out_by_git_is_read_not_its_index(make_campaign: Make, cli: Cli) -> None:
    camp = _applied(make_campaign, cli)

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=camp.root, check=True, capture_output=True
        )

    git("init", "-q")
    git("add", camp.lockfile.name)
    git("commit", "-qm", "lockfile")
    camp.lockfile.write_text(camp.lockfile.read_text().replace("delivered", "queued"))
    git("checkout", "--", camp.lockfile.name)
    _forge(_paths(camp))
    assert _to_send(cli, camp) == [NUMBER]  # bound to the checked-out file: trusted
    camp.lockfile.write_text(camp.lockfile.read_text().replace("delivered", "queued"))
    git("checkout", "--", camp.lockfile.name)  # the same bytes back, as a new file
    assert _to_send(cli, camp) == []


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:-3] + bytes([data[-3] ^ 1]) + data[-2:], id="one-bit"),
        pytest.param(lambda data: data + b"\n", id="appended"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: b"\x80\x04pickle", id="not-ours"),
        pytest.param(lambda data: data.replace(b'"serial":1', b'"serial":2', 1), id="other-serial"),
    ],
)
def test_a_damaged_index_is_ignored(make_campaign: Make, cli: Cli, damage: Callable[[bytes], bytes]) -> None:
    camp = _applied(make_campaign, cli)
    paths = _paths(camp)
    _forge(paths)
    assert _to_send(cli, camp) == [NUMBER]  # undamaged, it would be read
    paths.summaries.write_bytes(damage(paths.summaries.read_bytes()))
    assert _to_send(cli, camp) == []


def test_the_index_of_another_campaign_or_lineage_is_ignored(make_campaign: Make, cli: Cli, tmp_path: Path) -> None:
    camp = _applied(make_campaign, cli)
    paths = _paths(camp)
    _forge(paths)
    header = read_header(camp.lockfile)
    assert header is not None
    data = paths.summaries.read_bytes()
    assert _to_send(cli, camp) == [NUMBER]  # as it is, it would be read
    for field, value in (("lineage", header.lineage), ("campaign", header.campaign)):
        needle = json.dumps({field: value}, separators=(",", ":"))[1:-1].encode()
        assert needle in data
        paths.summaries.write_bytes(data.replace(needle, needle[:-2] + b'x"', 1))
        assert load_index(paths.summaries, camp.lockfile, header) is None
        assert _to_send(cli, camp) == []
        _forge(paths)


def test_a_crash_between_the_lockfile_rename_and_the_index_leaves_a_correct_state(
    make_campaign: Make, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    camp = make_campaign(outcomes={NUMBER: "busy"})
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    paths = _paths(camp)
    before = load_state(paths).summaries
    assert before[NUMBER].status == Status.FAILED
    old_index = paths.summaries.read_bytes()

    def killed(self: IndexBuilder, path: Path, header: object) -> bool:
        raise KeyboardInterrupt  # as if killed right after the rename

    # The next run's fold records a delivery; the process dies before the index is written.
    camp.manifest.write_text(camp.manifest.read_text().replace(f'"{NUMBER}": "busy"', ""))
    monkeypatch.setattr(IndexBuilder, "write", killed)
    writer = LocalWriter(paths, "test-campaign", operation="test")
    writer.record(intent("r2", [NUMBER], "sandbox"))
    writer.record(receipt("accepted", "r2", [NUMBER], Receipt("J2", {}, [StatusUpdate(NUMBER, Status.DELIVERED)])))
    with pytest.raises(KeyboardInterrupt):
        writer.close()
    writer.abandon()
    monkeypatch.undo()
    assert paths.summaries.read_bytes() == old_index  # the old file's index is left, bound to the old file
    state = load_state(paths)
    assert state.journal_events == 0  # the journal left behind is known to be folded: the new lockfile holds it
    after = state.summaries
    assert after[NUMBER].status == Status.DELIVERED
    assert after[NUMBER].attempts == 2
    assert _to_send(cli, camp) == []


def test_journal_events_are_replayed_on_top_of_the_index(
    make_campaign: Make, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    camp = make_campaign(outcomes={NUMBER: "busy"})
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    paths = _paths(camp)
    header = read_header(camp.lockfile)
    assert header is not None
    assert load_index(paths.summaries, camp.lockfile, header) is not None
    writer = LocalWriter(paths, "test-campaign", operation="test")
    writer.record(intent("r2", [NUMBER], "sandbox"))
    writer.record(intent("r3", ["+4915112345678"], "sandbox"))
    writer.record(receipt("accepted", "r2", [NUMBER], Receipt("J2", {}, [StatusUpdate(NUMBER, Status.QUEUED)])))
    indexed = load_state(paths, detail={"+493012345678"})
    writer.abandon()  # the journal stays unfolded, as during or after a killed apply
    # The reference: the lockfile read line by line, as for a file in another layout.
    monkeypatch.setattr("faxops.state.indexed_read.read_summaries", lambda *args: None)
    paths.summaries.unlink()
    whole = load_state(paths, detail={"+493012345678"})
    monkeypatch.undo()
    assert not paths.summaries.exists()
    assert indexed.summaries == whole.summaries
    assert list(indexed.summaries) == list(whole.summaries)
    assert indexed.summaries[NUMBER].attempts == 2
    assert indexed.summaries[NUMBER].status == Status.QUEUED
    assert indexed.summaries["+4915112345678"].status == Status.PENDING
    assert indexed.summaries["+493012345678"].job_id  # asked for in detail: parsed in full
    assert (indexed.journal_seq, indexed.journal_events) == (whole.journal_seq, whole.journal_events)
    # And folding it gives the lockfile and index a reader computes from scratch.
    fold(paths, "test-campaign")
    header = read_header(camp.lockfile)
    assert header is not None
    folded = load_index(paths.summaries, camp.lockfile, header)
    assert folded is not None
    records = json.loads(camp.lockfile.read_text())["recipients"]
    fresh = read_summaries(camp.lockfile, lambda raw: summarise(json.loads(raw)))
    assert fresh is not None
    assert folded.summaries == fresh.summaries == {n: folded.summaries[n] for n in records}
