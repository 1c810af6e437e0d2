"""Chaos: `faxops apply` killed with SIGKILL at random moments, against the sandbox and two HTTP simulators.

Each round starts `faxops apply --auto-approve` as a process and kills it after a random number of
new faxes (so mid-request and mid-journal-write), or at a random moment of its start (during the fold of
the previous run's journal). When the plan is empty, what the provider received is compared with the
lockfile: every recipient sent exactly once, every job ID the provider issued recorded, nothing recorded
that the provider never issued. The seed is printed on failure; FAXOPS_CHAOS_SEED replays it and
FAXOPS_CHAOS_KILLS sets the kills per provider (`make chaos` runs a thousand in all).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result, write_csv, write_pdf

Cli = Callable[..., Result]
KILLS = int(os.environ.get("FAXOPS_CHAOS_KILLS", "20"))
ENV = {
    "RETARUS_USER": "faxops",
    "RETARUS_PASSWORD": "secret",
    "TELPHIN_CLIENT_ID": "faxops",
    "TELPHIN_CLIENT_SECRET": "secret",
}
PROVIDERS: dict[str, str] = {
    "sandbox": "{{type: sandbox, latency: 50ms}}",  # it honours batch_size: slower jobs, so kills land mid-run
    # A short job validity lets a lost request be proven absent within the test (default 48h).
    "retarus": '{{type: retarus, base_url: "{url}/rest/v1", report_urls: ["{url}/de1/rest/v1", "{url}/de2/rest/v1"], '
    'customer_number: 99999TE, username: "${{env:RETARUS_USER}}", '
    'password: "${{env:RETARUS_PASSWORD}}", max_retries: 2, job_validity: 4s, report_grace: 1s}}',
    "telphin": '{{type: telphin, base_url: "{url}/api/ver1.0", extension_id: 122, '
    'client_id: "${{env:TELPHIN_CLIENT_ID}}", client_secret: "${{env:TELPHIN_CLIENT_SECRET}}", '
    "max_retries: 2}}",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SimProcess:
    """A provider simulator in a process of its own, so that it outlives every killed apply."""

    def __init__(self, kind: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Real time, fast transmission: jobs accepted after their client was killed complete on their own.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "faxops", "simulate", kind, "--port", str(self.port), "--transmit-seconds", "0.3"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"the {kind} simulator did not start") from None
                time.sleep(0.05)

    def control(self, what: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_sim/{what}",
            data=data,
            method="GET" if data is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a simulator busy after a long run: its records are read already
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture(params=sorted(PROVIDERS))
def provider(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, SimProcess | None]]:
    kind: str = request.param
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    sim = SimProcess(kind) if kind != "sandbox" else None
    if sim is not None:
        # Every API call takes a little while, so that kills land in the middle of requests.
        sim.control("faults", {"kind": "latency", "delay": 0.05, "times": 1_000_000})
    yield kind, sim
    if sim is not None:
        sim.stop()


def _received(kind: str, sim: SimProcess | None, root: Path) -> list[dict[str, Any]]:
    if sim is not None:
        return list(sim.control("received"))
    log = root / ".faxops" / "sandbox" / "sent.jsonl"
    if not log.exists():
        return []
    # The sandbox may be writing while we read: a reader can see part of its one write() per job. A final
    # line without its newline is not a record yet (bytes, so a cut inside a UTF-8 character cannot fail).
    data = log.read_bytes()
    return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines()]


def test_received_ignores_a_line_the_sandbox_is_still_writing(tmp_path: Path) -> None:
    log = tmp_path / ".faxops" / "sandbox" / "sent.jsonl"
    log.parent.mkdir(parents=True)
    log.write_bytes(b'{"number": "+4930123"}\n{"number": "+49301')
    assert _received("sandbox", None, tmp_path) == [{"number": "+4930123"}]
    log.write_bytes(b'{"number": "+4930123"}\n{"number": "+4930124"}\n')
    assert _received("sandbox", None, tmp_path) == [{"number": "+4930123"}, {"number": "+4930124"}]


def _apply(root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "faxops", "apply", str(root / "campaign.yaml"), "--auto-approve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_kill_9_never_duplicates_or_loses_a_job(
    provider: tuple[str, SimProcess | None], tmp_path: Path, cli: Cli
) -> None:
    kind, sim = provider
    seed = int(os.environ.get("FAXOPS_CHAOS_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    total = KILLS * 30  # enough that a quiet machine cannot finish the campaign between kills
    write_pdf(tmp_path / "letter.pdf", 1)
    write_csv(tmp_path / "recipients.csv", [(f"+4930{2000000 + i}", f"R{i}") for i in range(total)])
    (tmp_path / "campaign.yaml").write_text(
        "campaign: {name: chaos}\n"
        f"provider: {PROVIDERS[kind].format(url=sim.url if sim else '')}\n"
        "documents: [letter.pdf]\n"
        "recipients: {files: [{path: recipients.csv, columns: {number: fax, name: company}}]}\n"
        "schedule: {concurrency: 2, batch_size: 3}\n"
    )
    manifest = tmp_path / "campaign.yaml"
    kills = rounds = 0
    context = f"seed {seed} ({kind}; replay with FAXOPS_CHAOS_SEED={seed})"
    while kills < KILLS and rounds < KILLS * 4:
        rounds += 1
        before = len(_received(kind, sim, tmp_path))
        proc = _apply(tmp_path)
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0.3, 1.2))  # somewhere in start-up: imports, lock, fold, plan
        else:
            target = before + rng.randint(1, 9)
            deadline = time.monotonic() + 60
            while proc.poll() is None and len(_received(kind, sim, tmp_path)) < target:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{context}: no progress")
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.03))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait(timeout=30)
        if len(_received(kind, sim, tmp_path)) >= total:
            break
    for _ in range(12):  # finish: reconcile whatever the last kill left, send the rest
        result = cli("apply", manifest, "--auto-approve")
        if cli("plan", manifest, "--detailed-exitcode").code == 0:
            break
        time.sleep(1)  # until Retarus' (shortened) job validity has passed: then absence is proof
    assert result.code == 0, f"{context}: {result.err}"
    received = _received(kind, sim, tmp_path)
    numbers = [str(r["number"]) for r in received]
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
    assert not duplicates, f"{context}, {kills} kills: sent twice: {duplicates[:5]}"
    assert len(numbers) == total, f"{context}: {total - len(numbers)} never sent"
    lock = json.loads((tmp_path / "campaign.lock.json").read_text())
    recorded = {a["job_id"] for r in lock["recipients"].values() for a in r["attempts"] if a.get("job_id")}
    issued = {str(r["job_id"]) for r in received}
    assert issued - recorded == set(), f"{context}: job IDs lost: {sorted(issued - recorded)[:5]}"
    assert recorded - issued == set(), f"{context}: job IDs the provider never issued: {sorted(recorded - issued)[:5]}"
    print(f"chaos {kind}: {kills} kills in {rounds} rounds, {total} recipients, 0 duplicates, 0 lost IDs")
    assert kills >= min(KILLS, 10), f"{context}: only {kills} kills; the runs finished too fast"
