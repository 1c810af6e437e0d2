"""Retarus as its reference and SDKs describe it: regions and data centres, status codes, report shapes."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from faxops.documents import load_document
from faxops.domain import FailureClass, Recipient, Sender, Status, Submission
from faxops.errors import TransientError
from faxops.providers import REGISTRY, JobRef
from faxops.providers.base import ProviderContext
from faxops.providers.retarus import STATUS, RetarusProvider, RetarusSettings, updates_from_report
from faxops.testing.retarus import _REPORT, CODES, RetarusSimulator
from tests.campaigns import DONE, HttpCampaign
from tests.conftest import Result, write_pdf

Cli = Callable[..., Result]
SETTINGS = {"type": "retarus", "customer_number": "99999TE", "username": "${env:U}", "password": "${env:P}"}


@pytest.mark.parametrize(
    ("region", "ha", "centres"),
    [
        ("DE", "faxws-ha.de", ["faxws.de1", "faxws.de2"]),
        ("US", "faxws-ha.us", ["faxws.us1", "faxws.us2"]),
        ("CH", "faxws-ha.ch", ["faxws.ch1"]),
        ("SG", "faxws-ha.sg", ["faxws.sg1"]),
    ],
)
def test_the_region_decides_where_jobs_go_and_reports_are_read(region: str, ha: str, centres: list[str]) -> None:
    settings = RetarusSettings.model_validate({**SETTINGS, "region": region})
    assert settings.base_url == f"https://{ha}.retarus.com/rest/v1"
    assert settings.report_urls == [f"https://{c}.retarus.com/rest/v1" for c in centres]


def test_report_urls_override_the_region() -> None:
    settings = RetarusSettings.model_validate({**SETTINGS, "report_urls": ["https://dc.example/rest/v1"]})
    assert settings.base_url == "https://faxws-ha.de.retarus.com/rest/v1"
    assert settings.report_urls == ["https://dc.example/rest/v1"]


def test_a_base_url_of_ones_own_needs_its_data_centres(http_campaign: Callable[[str], HttpCampaign], cli: Cli) -> None:
    camp = http_campaign("retarus")
    text = camp.manifest.read_text()
    start = text.index('"report_urls"')
    camp.manifest.write_text(text[:start] + text[text.index("]", start) + 3 :])  # drop report_urls
    result = cli("validate", camp.manifest)
    assert result.code == 1
    assert "report_urls: required with a base_url of your own" in result.err
    assert "Traceback" not in result.err


def test_every_code_the_simulator_reports_is_a_retarus_code() -> None:
    emitted = {code for code, _ in _REPORT.values()} | CODES
    assert emitted <= set(STATUS)
    assert "CANCELED" not in STATUS  # Retarus spells it CANCELLED
    assert {"INVALID_NUMBER", "BLACKLISTED", "NO_ANSWER", "EXPIRED"}.isdisjoint(STATUS)  # never Retarus codes


@pytest.mark.parametrize(
    ("code", "status", "failure"),
    [
        ("OK", Status.DELIVERED, None),
        ("CANCELLED", Status.CANCELED, None),
        ("BLACKLIST", Status.FAILED, FailureClass.BLOCKED),
        ("PBLACKLIST", Status.FAILED, FailureClass.BLOCKED),
        ("WRONG_NO", Status.FAILED, FailureClass.INVALID_NUMBER),
        ("DIAL_NC", Status.FAILED, FailureClass.INVALID_NUMBER),
        ("NOFAX_TO", Status.FAILED, FailureClass.NOT_FAX),
        ("RING_TO", Status.FAILED, FailureClass.NO_ANSWER),
        ("REM_DIS", Status.FAILED, FailureClass.UNKNOWN),
        ("NO_TRAIN", Status.FAILED, FailureClass.UNKNOWN),
        ("EOD_FAILED", Status.DELIVERED, None),  # every page went through: never sent twice
        ("SOMETHING_NEW", Status.FAILED, FailureClass.UNKNOWN),  # not guessed from its words
        ("BUSY_BLACKLIST_NOFAX", Status.FAILED, FailureClass.UNKNOWN),
    ],
)
def test_status_codes_as_retarus_spells_them(code: str, status: Status, failure: FailureClass | None) -> None:
    (update,) = updates_from_report({"jobId": "FJ1", "recipientStatus": [{"number": "+4930", "status": code}]})
    assert update.raw == code
    assert update.status == status
    assert update.failure_class() == failure


def test_the_java_sdks_example_report_parses_in_the_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A report in the shape of retarus-java-fax's example (get_fax_reports_response.json)."""
    report = {
        "jobId": "FJEXAMPLE0000000000001",
        "recipientStatus": [
            {
                "number": "+4900000000",
                "alternativeNumbers": None,
                "properties": [{"key": "ToName", "value": "Example"}, {"key": "SubjectTitle", "value": "Test"}],
                "status": "REM_DIS",
                "reason": "simulated",
                "sentTs": "2023-05-25T11:03:39Z",
                "durationInSecs": 42,
                "sentToNumber": "004900000000",
                "remoteCsid": "",
            }
        ],
        "pages": 2,
        "reference": {"customerDefinedId": "fx-example", "billingCode": "b", "billingInfo": "i"},
    }
    monkeypatch.setenv("U", "u")
    monkeypatch.setenv("P", "p")
    settings = RetarusSettings.model_validate(SETTINGS)
    provider = RetarusProvider(settings, ProviderContext(tmp_path, "example"))

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.host in ("faxws.de1.retarus.com", "faxws.de2.retarus.com")  # never the HA URL
        if request.url.path.endswith("/reports"):
            return httpx.Response(200, json={"reports": [report]})
        return httpx.Response(200, json=report)

    provider.client = httpx.Client(transport=httpx.MockTransport(answer))
    (update,) = provider.status(JobRef("FJEXAMPLE0000000000001", ["+4900000000"]))
    assert update.raw == "REM_DIS"
    assert update.failure_class() == FailureClass.UNKNOWN
    assert update.pages == 2
    assert update.duration == 42
    assert update.at == datetime(2023, 5, 25, 11, 3, 39, tzinfo=UTC)
    documents = [load_document(write_pdf(tmp_path / "a.pdf", 1))]
    lookup = provider.find(Submission("fx-example", [Recipient("+4900000000")], documents, Sender(), "example"))
    assert [r.job_id for r in lookup.found] == ["FJEXAMPLE0000000000001"]
    provider.close()


def test_reconcile_finds_a_lost_job_in_the_second_data_centre(
    http_campaign: Callable[[str], HttpCampaign], cli: Cli
) -> None:
    camp = http_campaign("retarus")
    sim = camp.sim
    assert isinstance(sim, RetarusSimulator)
    sim.place = "de2"
    sim.inject("drop_after", method="POST", path=r"/rest/v1/[^/]+/fax")
    assert cli("apply", camp.manifest, "--auto-approve").code != 0  # the answer was lost
    assert len(sim.received) == 3
    sim.advance(DONE)
    result = cli("reconcile", camp.manifest)
    assert result.code == 0, result.out + result.err
    listed = [r.path for r in sim.log if r.method == "GET" and r.path.endswith("/reports")]
    assert listed == ["/de1/rest/v1/99999TE/fax/reports", "/de2/rest/v1/99999TE/fax/reports"]
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert len(sim.received) == 3  # nobody faxed twice
    assert {r["status"] for r in camp.status(cli).values()} == {"delivered"}


def test_a_data_centre_that_does_not_answer_proves_nothing_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("U", "faxops")
    monkeypatch.setenv("P", "secret")
    with RetarusSimulator() as sim:
        assert isinstance(sim, RetarusSimulator)
        settings = {**SETTINGS, "base_url": sim.base_url, "report_urls": sim.report_urls, "max_retries": 0}
        provider = REGISTRY["retarus"](RetarusSettings.model_validate(settings), ProviderContext(tmp_path, "absent"))
        documents = [load_document(write_pdf(tmp_path / "a.pdf", 1))]
        sub = Submission("fx-never", [Recipient("+493012345678")], documents, Sender(), "absent")
        long_ago = datetime.now(UTC) - timedelta(days=3)  # its validity ended long ago
        assert provider.find(sub, long_ago).decided  # both data centres answered: proven absent
        sim.inject("status", method="GET", path=r"/de2/rest/v1/.*/reports", status=500)
        with pytest.raises(TransientError):
            provider.find(sub, long_ago)
        provider.close()


def test_the_simulator_serves_rest_v1_and_takes_an_iso_duration() -> None:
    with RetarusSimulator() as sim:
        assert isinstance(sim, RetarusSimulator)
        auth = ("faxops", "secret")
        body: dict[str, Any] = {
            "recipients": [{"number": "+4930123456"}],
            "documents": [{"name": "a.txt", "data": base64.b64encode(b"hi").decode()}],
            "meta": {"jobValid": {"end": "PT80M"}},
        }
        sent = httpx.post(f"{sim.base_url}/99999TE/fax", json=body, auth=auth)
        assert sent.status_code == 200, sent.text
        job = sim.jobs[sent.json()["jobId"]]
        assert job.expires is not None
        assert abs(job.expires - (sim.now() + 80 * 60)) < 5
        assert httpx.post(f"{sim.url}/99999TE/fax", json=body, auth=auth).status_code == 404  # no unprefixed path
        sim.advance(3600)
        centre = job.data["dc"]
        bulk = httpx.post(
            f"{sim.url}/{centre}/rest/v1/99999TE/fax/reports", json={"action": "GET", "jobIds": [job.id]}, auth=auth
        )
        assert [r["jobId"] for r in bulk.json()["reports"]] == [job.id]
        assert httpx.get(f"{sim.base_url}/99999TE/fax/reports/{job.id}", auth=auth).status_code == 404  # not at HA
        gone = httpx.post(
            f"{sim.url}/{centre}/rest/v1/99999TE/fax/reports",
            json={"action": "DELETE", "jobIds": [job.id, "FJX"]},
            auth=auth,
        )
        assert gone.json()["reports"] == [
            {"jobId": job.id, "deleted": True},
            {"jobId": "FJX", "deleted": False, "reason": "NOT_FOUND"},
        ]
