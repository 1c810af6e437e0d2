"""Retarus judged by its official Python client (``retarus-fax``), which runs in a virtualenv of its own.

The client needs pydantic 1; faxops needs pydantic 2. The first test to need it creates
``.venv-contracts/retarus-fax-<version>/`` (git-ignored) with the pinned packages from PyPI and later runs
reuse it; ``tests/retarus_sdk_check.py`` is what runs inside.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faxops.documents import load_document
from faxops.domain import Recipient, Sender, Submission
from faxops.providers import REGISTRY, JobRef
from faxops.providers.base import ProviderContext
from faxops.providers.http import HttpProvider
from faxops.testing.retarus import RetarusSimulator
from faxops.testing.server import QUEUED_FOR, SENDING_FOR
from tests.conftest import write_pdf

#: the contract's versions: the client, the library it is built on, and the pydantic it needs
PINNED = ("retarus-fax==1.0.1", "retarus-common==0.1.2", "pydantic==1.10.27")
ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-contracts" / "retarus-fax-1.0.1"
CHECK = Path(__file__).with_name("retarus_sdk_check.py")


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


@pytest.fixture(scope="session")
def sdk_python() -> Path:
    """The interpreter of the client's virtualenv, built once and kept between runs."""
    stamp = VENV / "pinned.txt"
    if stamp.exists() and stamp.read_text() == "\n".join(PINNED):
        return _python(VENV)
    building = VENV.with_name(VENV.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(building)], check=True)
    pip = [str(_python(building)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PINNED]
    done = subprocess.run(pip, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"could not install {' '.join(PINNED)} from PyPI: {done.stderr[-2000:]}"
    (building / "pinned.txt").write_text("\n".join(PINNED))
    shutil.rmtree(VENV, ignore_errors=True)
    building.rename(VENV)  # a half-built environment is never taken for a finished one
    return _python(VENV)


def run_check(python: Path, job: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [str(python), str(CHECK)], input=json.dumps(job), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture
def sim() -> Iterator[RetarusSimulator]:
    with RetarusSimulator() as simulator:
        assert isinstance(simulator, RetarusSimulator)
        yield simulator


def adapter(sim: RetarusSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> HttpProvider:
    monkeypatch.setenv("R_USER", "faxops")
    monkeypatch.setenv("R_PASS", "secret")
    cls = REGISTRY["retarus"]
    settings = cls.settings_model.model_validate(
        {
            "type": "retarus",
            "base_url": sim.base_url,
            "report_urls": sim.report_urls,
            "customer_number": sim.customer,
            "username": "${env:R_USER}",
            "password": "${env:R_PASS}",
            **extra,
        }
    )
    provider = cls(settings, ProviderContext(tmp_path, "contract"))
    assert isinstance(provider, HttpProvider)
    provider.sleep = lambda seconds: None
    return provider


def test_requests_and_answers_satisfy_the_official_client(
    sdk_python: Path, sim: RetarusSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Submit (plain, scheduled, with cover page and push), status and lookup; then every report answer."""
    from datetime import UTC, datetime, timedelta

    documents = [load_document(write_pdf(tmp_path / "letter.pdf", 1))]
    sender = Sender(csid="+49 30 1234 0000", header="Nordwind")
    people = [Recipient("+493012345678", "Berger", {"city": "Berlin"}), Recipient("+33142685300", "Lemaire")]
    plain = adapter(sim, tmp_path, monkeypatch)
    dressed = adapter(
        sim,
        tmp_path,
        monkeypatch,
        coverpage_template="coverpage-default.ftl.html",
        status_push_url="https://example.invalid/retarus",
        status_push_password="${env:R_PASS}",
    )
    receipts = [
        plain.submit(Submission("fx-1", people, documents, sender, "contract")),
        dressed.submit(
            Submission(
                "fx-2", people[:1], documents, sender, "contract", send_at=datetime.now(UTC) + timedelta(hours=1)
            )
        ),
    ]
    sim.outcomes[people[1].number] = "PBLACKLIST"
    sim.advance(2 * 3600 + QUEUED_FOR + SENDING_FOR)
    for receipt in receipts:
        assert plain.status(JobRef(receipt.job_id, [p.number for p in people])), receipt
    assert plain.find(Submission("fx-1", people, documents, sender, "contract")).found
    plain.close()
    dressed.close()

    bodies = [r.json() for r in sim.log if r.method == "POST" and r.path == "/rest/v1/99999TE/fax"]
    assert len(bodies) == 2
    seed_fields = {"reference", "recipients", "documents", "transportOptions", "renderingOptions"}
    assert all(set(b) <= seed_fields | {"statusReportOptions", "meta"} for b in bodies)
    reports: list[dict[str, Any]] = []
    for dc in sim.data_centres:
        reports += [report for _, report in sim._reports_at(dc)]
    assert len(reports) == 2
    result = run_check(sdk_python, {"requests": bodies, "reports": reports})
    assert result == {"request_errors": [], "report_errors": []}


def test_the_official_client_sends_lists_reads_and_deletes(sdk_python: Path, sim: RetarusSimulator) -> None:
    # The client lists Europe's data centres as de2, de1 and, though it means to try each, only ever
    # awaits the first (its fetch_datacenter calls a coroutine function without awaiting it in the loop):
    # the job is placed there. faxops asks every data centre itself.
    sim.place = "de2"
    user, password = sim.credentials
    job = {"sim": {"url": sim.url, "dcs": [f"{sim.url}/de2", f"{sim.url}/de1"], "customer": sim.customer}}
    job["sim"] |= {"user": user, "password": password}
    client = run_check(sdk_python, job)["client"]
    job_id = client["sent"]["jobId"]
    assert client["report"]["jobId"] == job_id
    assert client["report"]["recipientStatus"][0]["status"] == "OK"
    assert client["deleted"] == {"jobId": job_id, "deleted": True}
    assert client["listed"]["reports"][0]["jobId"] == job_id
    assert client["deleted_all"] == {"reports": []}  # nothing more is kept there
    assert sim.deleted == {job_id}
    assert [r.path for r in sim.log if r.method == "POST"] == ["/rest/v1/99999TE/fax"]  # sent to the HA URL
