"""The push receiver faces the internet: malformed, unauthenticated, oversized, stalled and vanishing clients
over raw sockets, each answered (or dropped) within a bound computed from the receiver's timeout."""

from __future__ import annotations

import base64
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from faxops.receiver import Credentials, Receiver
from faxops.state import StatePaths
from faxops.webhook import inbox_path

SECRET = "s3cret-push-token"
AUTH = "Authorization: Basic " + base64.b64encode(f"faxops:{SECRET}".encode()).decode()
TIMEOUT = 2.0  # the receiver's per-request timeout in these tests
SLACK = 3.0  # scheduling on a loaded 2-core machine
PUSH = b'{"job_id": "J1", "number": "+493012345678", "status": "delivered"}'

Make = Callable[..., Receiver]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Make]:
    started: list[Receiver] = []

    def make(**kwargs: Any) -> Receiver:
        paths = StatePaths.for_manifest(tmp_path / "campaign.yaml")
        options: dict[str, Any] = {"timeout": TIMEOUT, "ingest_every": 3600, **kwargs}
        made = Receiver(paths, "campaign", Credentials("faxops", SECRET), **options).start()
        started.append(made)
        return made

    yield make
    for made in started:
        made.stop()


def _address(receiver: Receiver) -> tuple[str, int]:
    host, port = receiver.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _connect(receiver: Receiver, data: bytes = b"") -> socket.socket:
    sock = socket.create_connection(_address(receiver), timeout=TIMEOUT + SLACK + 5)
    if data:
        sock.sendall(data)
    return sock


def _read(sock: socket.socket) -> bytes:
    """Everything until the server closes (b"" when it closes without answering)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return b"".join(chunks)


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def _head(path: str = "/generic", *lines: str) -> bytes:
    return ("\r\n".join([f"POST {path} HTTP/1.1", "Host: x", *lines]) + "\r\n\r\n").encode()


def _push(receiver: Receiver) -> httpx.Response:
    return httpx.post(f"{receiver.url}/generic", content=PUSH, auth=("faxops", SECRET), timeout=TIMEOUT + SLACK)


@pytest.mark.parametrize(
    ("length", "with_auth", "without_auth"),
    [
        ("abc", 400, 400),
        ("-1", 400, 400),
        ("1e3", 400, 400),
        ("99999999999999999999999999", 400, 400),  # h11 refuses lengths it cannot represent
        ("5000000000", 413, 401),  # well-formed but absurd: refused by size, or first by authentication
    ],
)
@pytest.mark.parametrize("auth", [True, False])
def test_a_malformed_content_length_is_400_at_once(
    receiver: Make, length: str, with_auth: int, without_auth: int, auth: bool
) -> None:
    hook = receiver()
    started = time.monotonic()
    lines = [AUTH] if auth else []
    response = _read(_connect(hook, _head("/generic", *lines, f"Content-Length: {length}")))
    elapsed = time.monotonic() - started
    assert _status(response) == (with_auth if auth else without_auth), response
    assert elapsed < TIMEOUT, f"answered after {elapsed:.2f}s: by the timeout, not at once"
    assert _push(hook).status_code == 200  # and the receiver goes on


def test_authentication_comes_before_the_body(receiver: Make) -> None:
    hook = receiver()
    # 100 MB announced, 64 KiB sent: the 401 comes from the headers, long before the body could be complete
    sock = _connect(hook, _head("/generic", "Content-Length: 100000000") + b"x" * 65536)
    started = time.monotonic()
    response = _read(sock)
    assert _status(response) == 401, response
    assert time.monotonic() - started < TIMEOUT
    assert hook.rejected == 1


def test_bodies_over_the_limit_are_413(receiver: Make) -> None:
    hook = receiver(max_body=1000)
    declared = _read(_connect(hook, _head("/generic", AUTH, "Content-Length: 1001")))
    assert _status(declared) == 413
    chunked = _head("/generic", AUTH, "Transfer-Encoding: chunked") + b"".join(
        b"200\r\n" + b"y" * 512 + b"\r\n" for _ in range(3)
    )
    started = time.monotonic()
    assert _status(_read(_connect(hook, chunked))) == 413  # counted as it arrives: no length was declared
    assert time.monotonic() - started < TIMEOUT
    assert not inbox_path(hook.paths).exists()


def test_a_client_silent_before_its_headers_is_dropped_after_the_timeout(receiver: Make) -> None:
    hook = receiver()
    sock = _connect(hook, b"POST /generic HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    started = time.monotonic()
    assert _read(sock) == b""
    assert TIMEOUT - 0.1 <= time.monotonic() - started < TIMEOUT + SLACK


def test_a_hundred_stalled_clients_neither_block_others_nor_stay_open(receiver: Make) -> None:
    hook = receiver()
    started = time.monotonic()
    stalled = [_connect(hook, _head("/generic", AUTH, "Content-Length: 1000") + b'{"job_id"') for _ in range(100)]
    response = _push(hook)  # served while the hundred wait
    assert response.status_code == 200
    assert time.monotonic() - started < TIMEOUT
    answers = [_status(_read(sock)) for sock in stalled]
    assert answers == [408] * 100
    assert time.monotonic() - started < TIMEOUT + SLACK


def test_beyond_max_connections_clients_get_503_not_a_queue(receiver: Make) -> None:
    hook = receiver(max_connections=10)
    started = time.monotonic()
    stalled = [_connect(hook, b"POST /generic HTTP/1.1\r\n") for _ in range(12)]
    time.sleep(0.2)  # the server has accepted them all
    response = _push(hook)
    assert response.status_code == 503  # at once, not after the stalled ones
    assert time.monotonic() - started < TIMEOUT
    assert [_read(sock) for sock in stalled] == [b""] * 12  # dropped at their deadline
    assert time.monotonic() - started < TIMEOUT + SLACK
    assert _push(hook).status_code == 200  # and service resumes


def test_a_client_that_hangs_up_is_one_log_line(receiver: Make, caplog: pytest.LogCaptureFixture) -> None:
    hook = receiver()
    caplog.set_level(logging.INFO)
    for _ in range(20):
        sock = _connect(hook, _head("/generic", AUTH, "Content-Length: 1000") + b"{")
        sock.close()
    assert _push(hook).status_code == 200
    deadline = time.monotonic() + TIMEOUT + SLACK
    while sum("hung up" in r.getMessage() for r in caplog.records) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    hung_up = [r for r in caplog.records if "hung up" in r.getMessage()]
    assert len(hung_up) == 20
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_each_accepted_push_is_logged_masked(receiver: Make, caplog: pytest.LogCaptureFixture) -> None:
    hook = receiver()
    caplog.set_level(logging.INFO, logger="faxops.webhook")
    assert _push(hook).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "faxops.webhook" and r.levelno == logging.INFO]
    assert lines == ["accepted generic push: +4930****5678 delivered (job J1)"]


def test_webhook_serve_logs_one_line_per_event_and_no_traceback(make_campaign: Any) -> None:
    camp = make_campaign()
    camp.manifest.write_text(camp.manifest.read_text() + "status_push: {secret: '${env:PUSH_SECRET}'}\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "faxops", "webhook", "serve", str(camp.manifest), "--port", str(port)],
        env={**os.environ, "PUSH_SECRET": SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.post(f"{url}/generic", content=PUSH, auth=("faxops", SECRET), timeout=5)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        for raw in (_head("/generic", "Content-Length: abc"), _head("/generic", "Content-Length: -1")):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(raw)
                assert sock.recv(100).startswith(b"HTTP/1.1 400")
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(_head("/generic", AUTH, "Content-Length: 500") + b"{")
        assert httpx.post(f"{url}/generic?token=wrong", content=PUSH, timeout=5).status_code == 401
        time.sleep(0.5)  # the hang-ups are noticed
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    lines = err.splitlines()
    assert "Traceback" not in err
    assert len(lines) == 1 + 2 + 5 + 1, err  # accepted, two malformed, five hang-ups, one refused
    assert "accepted generic push: +4930****5678 delivered (job J1)" in lines[0]
    assert sum("Invalid HTTP request" in line for line in lines) == 2
    assert sum("hung up" in line for line in lines) == 5
    assert "+493012345678" not in err
    assert "wrong" not in err  # the query string is never logged
    assert SECRET not in out + err


def test_the_inbox_keeps_no_secret_a_push_quoted(receiver: Make) -> None:
    from faxops import secrets

    hook = receiver()
    secrets.register(SECRET)  # as `webhook serve` does when it resolves status_push.secret
    try:
        body = (
            b'{"job_id": "J1", "number": "+493012345678", "status": "failed", "reason": "bad token ' + SECRET.encode()
        )
        response = httpx.post(f"{hook.url}/generic", content=body + b'"}', auth=("faxops", SECRET), timeout=5)
    finally:
        secrets.clear()
    assert response.status_code == 200
    inbox = inbox_path(hook.paths).read_text()
    assert SECRET not in inbox
    assert "bad token ***" in inbox
