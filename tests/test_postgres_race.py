"""Two machines apply one campaign at the same moment against one database: every fax goes exactly once.

Each round forks two `faxops apply` processes from two checkouts (two directories) that share the
database and the provider (the sandbox's log), each in a UTS namespace of its own with its own host
name when the test runs as root (else the host name is patched in the child). The loser exits 3 naming
the winner's host, or, with --lock-timeout, waits and finds nothing left to send.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import socket
import sys
from pathlib import Path

import pytest

from tests.conftest import write_csv, write_pdf

ROUNDS = int(os.environ.get("FAXOPS_RACE_ROUNDS", "50"))
RECIPIENTS = 4
CLONE_NEWUTS = 0x04000000


def _set_hostname(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUTS) == 0 and libc.sethostname(name.encode(), len(name)) == 0:
        return
    socket.gethostname = lambda: name  # no namespaces here (not root): the lock holder row still differs


def _apply_in_child(manifest: Path, host: str, go: int, log: Path, extra: list[str]) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 99
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        # pytest's capture objects are not fds 1 and 2: write where the log is
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        _set_hostname(host)
        os.read(go, 1)  # both start at the same moment
        from faxops.cli import main

        code = main(["apply", str(manifest), "--auto-approve", *extra])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _checkout(root: Path, name: str, provider_log: Path) -> Path:
    write_pdf(root / "letter.pdf", 1)
    write_csv(root / "recipients.csv", [(f"+4930{5550000 + i}", f"R{i}") for i in range(RECIPIENTS)])
    manifest = root / "campaign.yaml"
    manifest.write_text(
        f"campaign: {{name: {name}}}\n"
        f"provider: {{type: sandbox, latency: 20ms, record_dir: {provider_log}}}\n"
        "documents: [letter.pdf]\n"
        "recipients: {files: [{path: recipients.csv, columns: {number: fax, name: company}}]}\n"
        "schedule: {concurrency: 2}\n"
        "state: {backend: postgres, url: '${env:FAXOPS_DATABASE_URL}'}\n"
    )
    return manifest


def test_two_machines_applying_at_once_send_every_fax_exactly_once(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAXOPS_DATABASE_URL", pg_url)
    monkeypatch.delenv("FAXOPS_STATE_URL", raising=False)
    provider = tmp_path / "provider"
    provider.mkdir()
    outcomes: dict[str, int] = {}
    for round_no in range(ROUNDS):
        name = f"race-{round_no}"
        (provider / "sent.jsonl").unlink(missing_ok=True)
        manifests = []
        for machine in ("a", "b"):
            root = tmp_path / f"{machine}{round_no}"
            root.mkdir()
            manifests.append(_checkout(root, name, provider))
        extra = ["--lock-timeout", "60s"] if round_no % 2 else []
        read_end, write_end = os.pipe()
        logs = [tmp_path / f"a{round_no}.log", tmp_path / f"b{round_no}.log"]
        pids = [
            _apply_in_child(manifests[0], "runner-a", read_end, logs[0], extra),
            _apply_in_child(manifests[1], "runner-b", read_end, logs[1], extra),
        ]
        os.write(write_end, b"gg")
        os.close(read_end)
        os.close(write_end)
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
        context = f"round {round_no}: exit codes {codes}; " + " | ".join(log.read_text()[-400:] for log in logs)
        sent = [json.loads(line)["number"] for line in (provider / "sent.jsonl").read_text().splitlines()]
        assert sorted(sent) == sorted(set(sent)), f"{context}: sent twice"
        assert len(sent) == RECIPIENTS, context
        assert 0 in codes, context
        assert set(codes) <= {0, 3}, context
        if 3 in codes:
            loser = codes.index(3)
            assert f"runner-{'ba'[loser]}" in logs[loser].read_text(), f"{context}: the holder is not named"
        key = "waited" if extra else ("refused" if 3 in codes else "one after the other")
        outcomes[key] = outcomes.get(key, 0) + 1
        with contextlib.suppress(OSError):
            for log in logs:
                log.unlink()
    print(f"{ROUNDS} races: {outcomes}")
    assert outcomes.get("refused", 0) > 0, outcomes  # the lock was really contended
