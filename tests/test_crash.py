"""Real processes, really interrupted: Ctrl-C, kill -9 and a concurrent apply."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from tests.conftest import CampaignDir, Result

Cli = Callable[..., Result]
Make = Callable[..., CampaignDir]


def _rows(n: int) -> list[tuple[str, str]]:
    return [(f"+4930{1000000 + i}", f"R{i}") for i in range(n)]


def _start_apply(camp: CampaignDir, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "faxops", "apply", str(camp.manifest), "--auto-approve", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def _wait_for_sent(camp: CampaignDir, count: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(camp.sent()) >= count or proc.poll() is not None:
            return
        time.sleep(0.01)
    raise AssertionError(f"fewer than {count} sends after {timeout}s")


def _check_exactly_once(camp: CampaignDir, expected: int) -> None:
    sent = camp.sent()
    numbers = [str(s["number"]) for s in sent]
    assert len(numbers) == len(set(numbers)) == expected, "a recipient was faxed twice (or not at all)"
    records = camp.lock_data()["recipients"]
    assert isinstance(records, dict)
    recorded_jobs = {a["job_id"] for r in records.values() for a in r["attempts"] if "job_id" in a}
    issued_jobs = {str(s["job_id"]) for s in sent}
    assert recorded_jobs == issued_jobs, "a job ID was lost, or recorded without being issued"


def test_concurrent_apply_is_refused_with_the_holder(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign(_rows(30), latency="100ms")
    proc = _start_apply(camp, "--parallelism", "1")
    try:
        _wait_for_sent(camp, 1, proc)
        second = cli("apply", camp.manifest, "--auto-approve")
        assert second.code == 3
        assert "locked" in second.err
        assert f"pid {proc.pid}" in second.err
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err.decode()
    assert b"interrupted" in err
    # The interrupted run finished what was in flight and saved it; the rest follows on the next run.
    done = len(camp.sent())
    assert 0 < done < 30
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    _check_exactly_once(camp, 30)


def test_unwritable_journal_refuses_to_send(make_campaign: Make, cli: Cli) -> None:
    # Something in the way of the journal (works as root too, unlike a read-only directory).
    camp = make_campaign()
    camp.journal.mkdir()
    result = cli("apply", camp.manifest, "--auto-approve")
    assert result.code == 1
    assert "campaign.journal" in result.err
    assert "Is a directory" in result.err
    assert "Traceback" not in result.err
    assert camp.sent() == []
    assert not camp.lockfile.exists()
