"""`faxops webhook serve`: authenticated pushes in three forms, journalled before 200, never backwards."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from faxops.receiver import Credentials, Receiver
from faxops.state import StatePaths
from faxops.webhook import inbox_path
from tests.campaigns import BUSY, DONE, FINE, INVALID, HttpCampaign
from tests.conftest import Result

Cli = Callable[..., Result]
SECRET = "s3cret-push-token"


@pytest.fixture
def receiver_for() -> Iterator[Callable[[HttpCampaign], Receiver]]:
    started: list[Receiver] = []

    def make(camp: HttpCampaign) -> Receiver:
        paths = StatePaths.for_manifest(camp.manifest)
        receiver = Receiver(paths, "tracked", Credentials("faxops", SECRET), ingest_every=3600).start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


def _jobs(cli: Cli, camp: HttpCampaign) -> dict[str, str]:
    return {n: r["job_id"] for n, r in camp.status(cli).items()}


def _post(receiver: Receiver, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{receiver.url}{path}", content=content, timeout=5, **kwargs)


def test_authentication_is_required(
    http_campaign: Callable[[str], HttpCampaign], receiver_for: Callable[[HttpCampaign], Receiver]
) -> None:
    receiver = receiver_for(http_campaign("retarus"))
    generic = {"job_id": "J", "number": FINE, "status": "delivered"}
    assert _post(receiver, "/generic", generic).status_code == 401
    assert _post(receiver, "/generic", generic, auth=("faxops", "wrong")).status_code == 401
    assert _post(receiver, "/generic", generic, auth=("intruder", SECRET)).status_code == 401
    assert _post(receiver, "/generic?token=nope", generic).status_code == 401
    assert _post(receiver, "/generic", generic, auth=("faxops", SECRET)).status_code == 200
    assert _post(receiver, f"/generic?token={SECRET}", generic).status_code == 200
    assert _post(receiver, "/generic", generic, headers={"Authorization": f"Bearer {SECRET}"}).status_code == 200
    assert receiver.rejected == 4


def test_malformed_bodies_are_refused_and_the_server_survives(
    http_campaign: Callable[[str], HttpCampaign], receiver_for: Callable[[HttpCampaign], Receiver]
) -> None:
    receiver = receiver_for(http_campaign("retarus"))
    auth = ("faxops", SECRET)
    for path, body in [
        ("/generic", b"{not json"),
        ("/generic", {"job_id": "J", "number": FINE, "status": "exploded"}),
        ("/faxplus", {"hook": {"event": "fax_sent"}}),
        ("/retarus", b"<report><jobId>FJ1</jobId>"),
        ("/retarus", b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'),
    ]:
        response = _post(receiver, path, body, auth=auth)
        assert response.status_code == 400, (path, response.text)
        assert "error" in response.json()
    assert _post(receiver, "/nowhere", {}, auth=auth).status_code == 404
    assert (
        _post(receiver, "/generic", {"job_id": "J", "number": FINE, "status": "queued"}, auth=auth).status_code == 200
    )


def test_retarus_xml_and_json_pushes_are_recorded(
    http_campaign: Callable[[str], HttpCampaign],
    receiver_for: Callable[[HttpCampaign], Receiver],
    cli: Cli,
) -> None:
    camp = http_campaign("retarus")
    camp.write("schedule: {batch_size: 1}\n")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    jobs = _jobs(cli, camp)
    receiver = receiver_for(camp)
    xml = (
        f'<?xml version="1.0"?><faxJobReport xmlns="http://retarus.com/fax4ba/report"><jobId>{jobs[BUSY]}</jobId>'
        "<pages>1</pages><recipientStatus><number>" + BUSY + "</number><status>BUSY</status>"
        "<reason>Line busy</reason></recipientStatus></faxJobReport>"
    ).encode()
    response = _post(receiver, "/retarus", xml, auth=("faxops", SECRET), headers={"Content-Type": "application/xml"})
    assert response.status_code == 200, response.text
    report = {"jobId": jobs[FINE], "pages": 1, "recipientStatus": [{"number": FINE, "status": "OK"}]}
    assert _post(receiver, "/retarus", report, auth=("faxops", SECRET)).status_code == 200
    # accepted means on disk, before any state was touched
    assert len(inbox_path(StatePaths.for_manifest(camp.manifest)).read_text().splitlines()) == 2
    assert receiver.ingest_now() == 2
    rows = camp.status(cli)
    assert (rows[BUSY]["status"], rows[BUSY]["failure"], rows[BUSY]["raw_status"]) == ("failed", "busy", "BUSY")
    assert rows[FINE]["status"] == "delivered"
    assert rows[INVALID]["status"] == "queued"


def test_duplicated_and_out_of_order_pushes_never_move_backwards(
    http_campaign: Callable[[str], HttpCampaign],
    receiver_for: Callable[[HttpCampaign], Receiver],
    cli: Cli,
) -> None:
    camp = http_campaign("retarus")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    job = _jobs(cli, camp)[FINE]
    receiver = receiver_for(camp)
    auth = ("faxops", SECRET)
    for status in ("delivered", "delivered", "sending", "queued", "failed"):
        assert (
            _post(receiver, "/generic", {"job_id": job, "number": FINE, "status": status}, auth=auth).status_code == 200
        )
    receiver.ingest_now()
    assert camp.status(cli)[FINE]["status"] == "delivered"
    # and a poll that comes later agrees, without moving it either
    camp.sim.advance(DONE)
    assert cli("refresh", camp.manifest).code == 0
    assert camp.status(cli)[FINE]["status"] == "delivered"


def test_faxplus_fax_sent_push_before_any_poll(
    http_campaign: Callable[[str], HttpCampaign],
    receiver_for: Callable[[HttpCampaign], Receiver],
    cli: Cli,
) -> None:
    camp = http_campaign("faxplus")
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    receiver = receiver_for(camp)
    push = {
        "hook": {"id": "fx-9", "event": "fax_sent", "event_time": "2099-01-01 10:00:00", "target": "x"},
        "data": {
            "id": "fx-9",
            "pages": 1,
            "from": "+493012340000",
            "to": BUSY,
            "cost": 1,
            "status": "failed_user_busy",
            "start_time": "2099-01-01 10:00:00",
        },
    }
    assert _post(receiver, f"/faxplus?token={SECRET}", push).status_code == 200
    # taken in by the next command that holds the state lock: here, apply (nothing else to send)
    assert cli("apply", camp.manifest, "--auto-approve", "--refresh=false").code == 0
    assert camp.status(cli)[BUSY]["status"] == "queued"  # --refresh=false: the inbox is not read either
    assert cli("refresh", camp.manifest).code == 0
    rows = camp.status(cli)
    assert (rows[BUSY]["status"], rows[BUSY]["failure"]) == ("failed", "busy")
    lock = camp.manifest.with_name("campaign.lock.json").read_text()
    assert '"fax_id":"fx-9"' in lock.replace(" ", "")


def test_pushes_for_unknown_jobs_wait_in_the_inbox(
    http_campaign: Callable[[str], HttpCampaign],
    receiver_for: Callable[[HttpCampaign], Receiver],
    cli: Cli,
) -> None:
    camp = http_campaign("retarus")
    receiver = receiver_for(camp)
    auth = ("faxops", SECRET)
    assert (
        _post(receiver, "/generic", {"job_id": "FJX", "number": FINE, "status": "delivered"}, auth=auth).status_code
        == 200
    )
    assert receiver.ingest_now() == 0
    assert inbox_path(StatePaths.for_manifest(camp.manifest)).read_text().count("FJX") == 1


def test_webhook_serve_command_stops_cleanly_on_sigterm(make_campaign: Any, tmp_path: Any) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    camp = make_campaign()
    camp.manifest.write_text(camp.manifest.read_text() + "status_push: {secret: '${env:PUSH_SECRET}'}\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PUSH_SECRET": SECRET}
    proc = subprocess.Popen(
        [sys.executable, "-m", "faxops", "webhook", "serve", str(camp.manifest), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/generic",
                    json={"job_id": "J1", "number": "+493012345678", "status": "delivered"},
                    auth=("faxops", SECRET),
                    timeout=2,
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Stopped: 1 update(s) accepted" in out
    assert SECRET not in out + err
    assert "J1" in (camp.root / "campaign.inbox").read_text()  # no such job yet: kept for later
