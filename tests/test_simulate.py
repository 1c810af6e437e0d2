"""`faxops simulate` prints a base_url that works; a 404 (a wrong base_url) stops the run, costing no attempt."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from faxops.testing import SIMULATORS
from tests.conftest import Result, write_csv, write_pdf
from tests.test_provider_battery import CASES

Cli = Callable[..., Result]


def _manifest(root: Path, provider: dict[str, Any]) -> Path:
    write_pdf(root / "letter.pdf", 1)
    write_csv(root / "list.csv", [("+49 30 12345678", "A"), ("+33 1 42 68 53 00", "B")])
    manifest = root / "campaign.yaml"
    manifest.write_text(
        "campaign: {name: sim}\n"
        f"provider: {json.dumps({**provider, 'max_retries': 0})}\n"
        "sender: {number: '+493012340000', header: 'Nordwind Medical'}\n"
        "documents: [letter.pdf]\n"
        "recipients: {files: [{path: list.csv, columns: {number: fax, name: company}}]}\n"
    )
    return manifest


@pytest.mark.parametrize("kind", ["faxplus", "docoon", "telphin", "retarus"])
def test_simulate_prints_the_base_url_a_manifest_needs(
    kind: str, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = next(c for c in CASES if c.type == kind)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    with subprocess.Popen(
        [sys.executable, "-m", "faxops", "simulate", kind, "--port", "0"], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            proc.stdout.readline()
            hint = proc.stdout.readline()
            found = re.search(r"base_url: (\S+),", hint)
            assert found, hint
            with SIMULATORS[kind]() as other:  # only for the credentials the battery uses
                settings = {k: v for k, v in case.settings(other).items() if k not in ("base_url", "report_urls")}
            reports = re.search(r"report_urls: \[([^\]]+)\]", hint)  # Retarus: the data centres
            if reports:
                settings["report_urls"] = reports.group(1).split(", ")
            manifest = _manifest(tmp_path, {"type": kind, "base_url": found.group(1), **settings})
            result = cli("apply", manifest, "--auto-approve")
            assert result.code == 0, result.err
            assert "2 accepted" in result.out
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


def test_a_404_stops_the_run_as_a_configuration_failure(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAXPLUS_TOKEN", "secret")
    with SIMULATORS["faxplus"]() as sim:
        # the API's /v3 prefix forgotten: every call is a 404
        manifest = _manifest(tmp_path, {"type": "faxplus", "base_url": sim.url, "token": "${env:FAXPLUS_TOKEN}"})
        result = cli("apply", manifest, "--auto-approve")
        assert result.code == 1
        assert "not found (HTTP 404" in result.err + result.out
        assert "base_url" in result.err + result.out
        assert "document" not in result.out
        plan = cli("plan", manifest, "--json", "--refresh=false").json
    # nothing was charged: both are still plain sends, not retries of a failed attempt
    assert plan["summary"]["send"] == 2
    assert plan["summary"]["retry"] == 0
    assert plan["summary"]["skip"] == 0
