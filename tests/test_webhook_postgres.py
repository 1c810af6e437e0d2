"""`webhook serve` on the postgres backend: pushes are committed to the database, not to a local inbox file,
so receivers on other machines (two behind a load balancer) feed the campaign that `apply` runs elsewhere."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from faxops.receiver import Credentials, Receiver
from faxops.state import StatePaths
from faxops.state.pg_writer import PostgresWriter
from faxops.state.postgres import Conn, PgLocation, PostgresStore
from tests.campaigns import BUSY, FINE, INVALID, HttpCampaign
from tests.conftest import Result

Cli = Callable[..., Result]
SECRET = "s3cret-push-token"
EXTRA = "status_push: {secret: '${env:PUSH_SECRET}'}\nstate: {backend: postgres, url: '${env:FAXOPS_DATABASE_URL}'}\n"


@pytest.fixture
def pg_tracked(
    http_campaign: Callable[[str], HttpCampaign], pg_url: str, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> HttpCampaign:
    """A Retarus campaign applied with its state on PostgreSQL: every recipient queued, none final."""
    monkeypatch.setenv("FAXOPS_DATABASE_URL", pg_url)
    monkeypatch.setenv("PUSH_SECRET", SECRET)
    camp = http_campaign("retarus")
    camp.write(EXTRA)
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    return camp


def _pushes(pg_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(pg_url) as conn:
        return [dict(r[0]) for r in conn.execute("SELECT push FROM faxops.pushes ORDER BY id")]


def _status_events(pg_url: str) -> int:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT count(*) FROM faxops.journal WHERE event->>'t' = 'status'").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def serve() -> Iterator[Callable[[Path], tuple[subprocess.Popen[str], str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(manifest: Path) -> tuple[subprocess.Popen[str], str]:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "faxops", "webhook", "serve", str(manifest), "--port", str(port)],
            env=dict(os.environ),
            cwd=manifest.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=2)
                return proc, url
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.1)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_two_receivers_in_two_checkouts_commit_pushes_to_the_database_and_refresh_takes_them_in(
    pg_tracked: HttpCampaign,
    pg_url: str,
    cli: Cli,
    tmp_path: Path,
    serve: Callable[[Path], tuple[subprocess.Popen[str], str]],
) -> None:
    camp = pg_tracked
    jobs = {n: r["job_id"] for n, r in camp.status(cli).items()}
    assert {r["status"] for r in camp.status(cli).values()} == {"queued"}
    # Another machine: a checkout of the same campaign in another directory, pointing at the same database.
    other = tmp_path / "other-machine"
    other.mkdir()
    for name in ("campaign.yaml", "letter.pdf", "list.csv"):
        shutil.copy(camp.root / name, other / name)
    first, first_url = serve(camp.manifest)
    second, second_url = serve(other / "campaign.yaml")
    # An apply elsewhere holds the writer lock the whole time: the receivers must accept without it.
    holder = PostgresStore(PgLocation(pg_url), "tracked").open_writer("apply")
    try:
        posts = [
            (first_url, {"job_id": jobs[FINE], "number": FINE, "status": "delivered"}),
            (second_url, {"job_id": jobs[BUSY], "number": BUSY, "status": "failed", "raw": "BUSY"}),
            (first_url, {"job_id": jobs[INVALID], "number": INVALID, "status": "sending"}),
            (second_url, {"job_id": jobs[FINE], "number": FINE, "status": "delivered"}),  # a duplicate
        ] * 5
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda p: httpx.post(f"{p[0]}/generic", json=p[1], auth=("faxops", SECRET), timeout=10), posts)
            )
        assert [a.status_code for a in answers] == [200] * len(posts), [a.text for a in answers]
        # 200 means committed in the database, whichever receiver answered
        stored = _pushes(pg_url)
        assert len(stored) == len(posts)
        assert sorted((p["number"], p["status"]) for p in stored) == sorted(
            (p[1]["number"], p[1]["status"]) for p in posts
        )
        for proc in (first, second):
            proc.send_signal(signal.SIGTERM)
        outs = [proc.communicate(timeout=30) for proc in (first, second)]
        assert [proc.returncode for proc in (first, second)] == [0, 0], outs
        # half each (the probe's GET that waited for the start is the refused request)
        assert all("Stopped: 10 update(s) accepted, 1 request(s) refused" in out for out, _ in outs)
        assert all(SECRET not in out + err and "pw" not in err for out, err in outs)
        assert len(_pushes(pg_url)) == len(posts)  # the lock was held: nothing taken in, nothing lost
    finally:
        holder.close()
    assert not list(camp.root.glob("*.inbox"))
    assert not list(other.glob("*.inbox"))
    assert _status_events(pg_url) == 0
    refreshed = cli("refresh", camp.manifest)
    assert refreshed.code == 0, refreshed.err
    assert "Took in 20 status push(es)" in refreshed.out + refreshed.err
    assert _pushes(pg_url) == []
    rows = camp.status(cli)
    assert (rows[FINE]["status"], rows[BUSY]["status"], rows[INVALID]["status"]) == ("delivered", "failed", "sending")
    # from the other checkout too: the state is the database's
    other_rows = {r["number"]: r["status"] for r in cli("status", other / "campaign.yaml", "--json").json["recipients"]}
    assert other_rows == {FINE: "delivered", BUSY: "failed", INVALID: "sending"}
    assert "Took in" not in cli("refresh", camp.manifest).err  # taken in once


def test_taking_pushes_in_commits_their_events_and_their_removal_together(
    pg_tracked: HttpCampaign, pg_url: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    camp = pg_tracked
    job = {n: r["job_id"] for n, r in camp.status(cli).items()}[FINE]
    store = PostgresStore(PgLocation(pg_url), "tracked")
    receiver = Receiver(
        StatePaths.for_manifest(camp.manifest), "tracked", Credentials("faxops", SECRET), ingest_every=3600, store=store
    ).start()
    try:
        auth = ("faxops", SECRET)
        for body in (
            {"job_id": job, "number": FINE, "status": "delivered"},
            {"job_id": "NOT-SENT-YET", "number": "+4930999999", "status": "delivered"},
        ):
            assert httpx.post(f"{receiver.url}/generic", json=body, auth=auth, timeout=10).status_code == 200
        assert receiver.inbox.waiting()
        # The connection dies inside the transaction that records the event and deletes the push: neither happens.
        original = PostgresWriter.record_with

        def dying(self: PostgresWriter, events: list[Any], then: Callable[[Conn], None]) -> None:
            def then_die(conn: Conn) -> None:
                then(conn)
                raise psycopg.OperationalError("server closed the connection unexpectedly")

            original(self, events, then_die)

        monkeypatch.setattr(PostgresWriter, "record_with", dying)
        assert receiver.ingest_now() == 0
        assert len(_pushes(pg_url)) == 2
        assert _status_events(pg_url) == 0
        monkeypatch.setattr(PostgresWriter, "record_with", original)
        assert receiver.ingest_now() == 1
        assert receiver.ingest_now() == 0  # never twice
        assert _status_events(pg_url) == 1
        # the push for an attempt not recorded yet waits in the table for a later take-in
        assert [p["ids"] for p in _pushes(pg_url)] == [["NOT-SENT-YET"]]
    finally:
        receiver.stop()
    assert camp.status(cli)[FINE]["status"] == "delivered"
    assert not (camp.root / "campaign.inbox").exists()
