"""The database goes away in the middle of an apply: no further sends, in-flight ones reconciled, no job ID lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from faxops.testing.pgserver import PgServer
from tests.conftest import Result, write_csv, write_pdf

Cli = Callable[..., Result]
TOTAL = 60


def _campaign(root: Path) -> Path:
    write_pdf(root / "letter.pdf", 1)
    write_csv(root / "recipients.csv", [(f"+4930{7770000 + i}", f"R{i}") for i in range(TOTAL)])
    manifest = root / "campaign.yaml"
    manifest.write_text(
        "campaign: {name: faults}\n"
        "provider: {type: sandbox, latency: 40ms}\n"
        "documents: [letter.pdf]\n"
        "recipients: {files: [{path: recipients.csv, columns: {number: fax, name: company}}]}\n"
        "schedule: {concurrency: 2}\n"
        "state: {backend: postgres, url: '${env:FAXOPS_DATABASE_URL}'}\n"
    )
    return manifest


def _sent(root: Path) -> list[dict[str, str]]:
    log = root / ".faxops" / "sandbox" / "sent.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _interrupted_apply(root: Path, manifest: Path, cut: Callable[[], None]) -> tuple[int, str, int, int]:
    """Start apply, cut the database after a few sends; returns (exit code, stderr, sent at the cut, sent at exit)."""
    env = {**os.environ, "HOME": str(root)}  # a rescue file of answers that could not be recorded lands here
    proc = subprocess.Popen(
        [sys.executable, "-m", "faxops", "apply", str(manifest), "--auto-approve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + 60
    while len(_sent(root)) < 6:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.01)
    cut()
    at_cut = len(_sent(root))
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode(), at_cut, len(_sent(root))


def _finish_and_check(root: Path, manifest: Path, cli: Cli) -> None:
    for _ in range(3):
        if (
            cli("apply", manifest, "--auto-approve").code == 0
            and cli("plan", manifest, "--detailed-exitcode").code == 0
        ):
            break
    sent = _sent(root)
    numbers = [s["number"] for s in sent]
    assert sorted(numbers) == sorted(set(numbers)), "a fax was sent twice"
    assert len(numbers) == TOTAL
    state = json.loads(cli("state", "pull", manifest).out)
    recorded = {a["job_id"] for r in state["recipients"].values() for a in r["attempts"] if a.get("job_id")}
    assert {s["job_id"] for s in sent} == recorded, "a job ID was lost"


@pytest.fixture
def campaign(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("FAXOPS_DATABASE_URL", pg_url)
    monkeypatch.delenv("FAXOPS_STATE_URL", raising=False)
    return tmp_path, _campaign(tmp_path)


def test_apply_whose_connection_is_terminated_stops_sending(campaign: tuple[Path, Path], pg_url: str, cli: Cli) -> None:
    root, manifest = campaign

    def terminate() -> None:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'faxops' AND pid <> pg_backend_pid()"
            )

    code, err, at_cut, at_exit = _interrupted_apply(root, manifest, terminate)
    assert code == 1, err
    assert "state database" in err
    assert "Traceback" not in err
    assert at_exit <= at_cut + 2  # at most the sends already in flight (concurrency 2) completed
    assert at_exit < TOTAL
    _finish_and_check(root, manifest, cli)


def test_apply_survives_a_server_restart_with_nothing_sent_twice(
    campaign: tuple[Path, Path], pg_server: PgServer, cli: Cli
) -> None:
    root, manifest = campaign
    code, err, at_cut, at_exit = _interrupted_apply(root, manifest, pg_server.restart)
    assert code == 1, err
    assert at_exit <= at_cut + 2
    _finish_and_check(root, manifest, cli)


def test_kill_9_on_postgres_never_duplicates_or_loses_a_job(
    tmp_path: Path, pg_url: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chaos test of tests/test_chaos.py on the postgres backend (at least 50 kills; more in `make chaos`)."""
    import random

    from tests.test_chaos import KILLS, _apply, _received

    kills_wanted = max(50, KILLS)
    monkeypatch.setenv("FAXOPS_DATABASE_URL", pg_url)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("FAXOPS_STATE_URL", raising=False)
    seed = int(os.environ.get("FAXOPS_CHAOS_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    total = kills_wanted * 30
    write_pdf(tmp_path / "letter.pdf", 1)
    write_csv(tmp_path / "recipients.csv", [(f"+4930{3000000 + i}", f"R{i}") for i in range(total)])
    manifest = tmp_path / "campaign.yaml"
    manifest.write_text(
        "campaign: {name: chaos}\n"
        "provider: {type: sandbox, latency: 50ms}\n"  # batches of 3: slow enough for kills to land mid-run
        "documents: [letter.pdf]\n"
        "recipients: {files: [{path: recipients.csv, columns: {number: fax, name: company}}]}\n"
        "schedule: {concurrency: 2, batch_size: 3}\n"
        "state: {backend: postgres, url: '${env:FAXOPS_DATABASE_URL}'}\n"
    )
    kills = rounds = 0
    context = f"seed {seed} (postgres; replay with FAXOPS_CHAOS_SEED={seed})"
    while kills < kills_wanted and rounds < kills_wanted * 4:
        rounds += 1
        before = len(_received("sandbox", None, tmp_path))
        proc = _apply(tmp_path)
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0.3, 1.2))  # somewhere in start-up: imports, connection, lock, plan
        else:
            target = before + rng.randint(1, 6)
            deadline = time.monotonic() + 60
            while proc.poll() is None and len(_received("sandbox", None, tmp_path)) < target:
                assert time.monotonic() < deadline, f"{context}: no progress"
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.03))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait(timeout=30)
        if len(_received("sandbox", None, tmp_path)) >= total:
            break
    for _ in range(5):
        result = cli("apply", manifest, "--auto-approve")
        if cli("plan", manifest, "--detailed-exitcode").code == 0:
            break
    assert result.code == 0, f"{context}: {result.err}"
    received = _received("sandbox", None, tmp_path)
    numbers = [str(r["number"]) for r in received]
    assert sorted(numbers) == sorted(set(numbers)), f"{context}, {kills} kills: a fax was sent twice"
    assert len(numbers) == total, f"{context}: {total - len(numbers)} never sent"
    state = json.loads(cli("state", "pull", manifest).out)
    recorded = {a["job_id"] for r in state["recipients"].values() for a in r["attempts"] if a.get("job_id")}
    issued = {str(r["job_id"]) for r in received}
    assert issued == recorded, (
        f"{context}: lost {sorted(issued - recorded)[:5]}, invented {sorted(recorded - issued)[:5]}"
    )
    print(f"chaos postgres: {kills} kills in {rounds} rounds, {total} recipients, 0 duplicates, 0 lost IDs")
    assert kills >= kills_wanted * 0.8, f"{context}: only {kills} kills; the runs finished too fast"
