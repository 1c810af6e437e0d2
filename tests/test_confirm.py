"""`apply` asks a person on a terminal, and only 'yes' sends."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tests.conftest import CampaignDir

Make = Callable[..., CampaignDir]


def _run_on_terminal(camp: CampaignDir, answer: bytes) -> tuple[int, bytes]:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "faxops", "apply", str(camp.manifest)],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
        env={**os.environ, "TERM": "dumb", "COLUMNS": "120"},
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            if not answered and b"Enter a value:" in seen:
                os.write(leader, answer)
                answered = True
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=30)
    os.close(leader)
    return code, seen


@pytest.mark.parametrize(("answer", "code", "sent"), [(b"yes\n", 0, 5), (b"y\n", 1, 0)])
def test_confirmation_on_a_terminal(make_campaign: Make, answer: bytes, code: int, sent: int) -> None:
    camp = make_campaign()
    returncode, output = _run_on_terminal(camp, answer)
    assert b"Do you want to send 5 fax(es)?" in output
    assert returncode == code, output.decode(errors="replace")
    assert len(camp.sent()) == sent
    if not sent:
        assert b"Apply cancelled; nothing was sent." in output
