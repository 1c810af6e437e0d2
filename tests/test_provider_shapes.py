"""Each adapter's requests, checked field by field against its seed document."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from faxops.documents import load_document
from faxops.domain import Document, Recipient, Sender, Submission
from faxops.errors import ProviderError, TransientError
from faxops.providers import REGISTRY, JobRef
from faxops.providers.base import Provider, ProviderContext
from faxops.providers.http import HttpProvider
from faxops.providers.retarus import safe_document_name
from faxops.providers.telphin import merge_documents
from faxops.testing import SIMULATORS, Simulator
from faxops.testing.retarus import RetarusSimulator
from faxops.testing.server import Request
from tests.conftest import Result, write_pdf

Cli = Callable[..., Result]
SENDER = Sender(csid="+49 30 1234 0000", header="Nordwind", number="+493012340000", name="Nordwind")
BERGER = Recipient("+493012345678", "Kanzlei Berger", {"contact": "Anna Berger", "city": "Berlin"}, "l.csv:2")
LEMAIRE = Recipient("+33142685300", "Cabinet Lemaire", {"contact": "Claire", "city": "Paris"}, "l.csv:3")


@pytest.fixture
def documents(tmp_path: Path) -> list[Document]:
    return [
        load_document(write_pdf(tmp_path / "Cover letter (final).pdf", 1)),
        load_document(write_pdf(tmp_path / "price-list-for-the-first-quarter-of-2027.pdf", 2)),
    ]


@pytest.fixture
def running() -> Iterator[list[Any]]:
    """Simulators and providers started by a test, stopped and closed after it."""
    things: list[Any] = []
    yield things
    for thing in reversed(things):
        if isinstance(thing, Simulator):
            thing.stop()
        else:
            thing.close()


def provider_for(
    kind: str, settings: dict[str, Any], tmp_path: Path, running: list[Any], **sim_kwargs: Any
) -> tuple[Provider, Simulator]:
    sim = SIMULATORS[kind](**sim_kwargs).start()
    running.append(sim)
    cls = REGISTRY[kind]

    def fill(value: Any) -> Any:
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value.replace("{url}", sim.url) if isinstance(value, str) else value

    model = cls.settings_model.model_validate({"type": kind, **{k: fill(v) for k, v in settings.items()}})
    provider = cls(model, ProviderContext(tmp_path, "shapes"))
    assert isinstance(provider, HttpProvider)
    provider.sleep = lambda seconds: None
    running.append(provider)
    return provider, sim


def telphin(
    tmp_path: Path, running: list[Any], monkeypatch: pytest.MonkeyPatch, **sim_kwargs: Any
) -> tuple[Provider, Simulator]:
    monkeypatch.setenv("T_ID", "faxops")
    monkeypatch.setenv("T_SECRET", "secret")
    settings = {
        "base_url": "{url}/api/ver1.0",
        "client_id": "${env:T_ID}",
        "client_secret": "${env:T_SECRET}",
        "extension_id": 122,
    }
    return provider_for("telphin", settings, tmp_path, running, **sim_kwargs)


def retarus(
    tmp_path: Path, running: list[Any], monkeypatch: pytest.MonkeyPatch, **settings: Any
) -> tuple[Provider, Simulator]:
    monkeypatch.setenv("R_USER", "faxops")
    monkeypatch.setenv("R_PASS", "secret")
    base = {
        "base_url": "{url}/rest/v1",
        "report_urls": ["{url}/de1/rest/v1", "{url}/de2/rest/v1"],
        "customer_number": "99999TE",
        "username": "${env:R_USER}",
        "password": "${env:R_PASS}",
    }
    return provider_for("retarus", {**base, **settings}, tmp_path, running)


def last(sim: Simulator, method: str) -> Request:
    return [r for r in sim.log if r.method == method][-1]


def test_docoon_faxjobs_body(
    tmp_path: Path, documents: list[Document], running: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("D_USER", "faxops")
    monkeypatch.setenv("D_PASS", "secret")
    provider, sim = provider_for(
        "docoon",
        {"base_url": "{url}/api/v1", "username": "${env:D_USER}", "password": "${env:D_PASS}"},
        tmp_path,
        running,
    )
    provider.submit(Submission("fx-ref-1", [BERGER, LEMAIRE], documents, SENDER, "shapes"))
    request = last(sim, "POST")
    assert request.path == "/api/v1/FaxJobs"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"faxops:secret").decode()
    body = request.json()
    assert body["JobType"] == "NO_JTYPE"
    assert body["TrackingID"] == "fx-ref-1"
    assert body["LaunchType"] == 0
    assert [d["Type"] for d in body["Documents"]] == [1, 1]
    assert base64.b64decode(body["Documents"][0]["Content"]) == documents[0].read_bytes()
    assert body["AdhocRecipients"][0] == {
        "Name": "Kanzlei Berger",
        "Address": "00493012345678",
        "OptionalFields": ["Anna Berger", "Berlin"],
    }
    assert body["Parameter"] == {"Media": 0, "Resolution": 1, "Csid": "+49 30 1234 0000"}


def test_voipnow_multipart(
    tmp_path: Path, documents: list[Document], running: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("V_TOKEN", "secret")
    provider, sim = provider_for(
        "voipnow", {"base_url": "{url}", "token": "${env:V_TOKEN}", "extension": "0003*210"}, tmp_path, running
    )
    receipt = provider.submit(Submission("fx-ref-2", [BERGER, LEMAIRE], documents, SENDER, "shapes"))
    request = last(sim, "POST")
    assert request.path == "/uapi/faxes/@me/0003*210"
    assert request.headers["Authorization"] == "Bearer secret"
    parts = request.form()
    assert [p.name for p in parts] == ["files", "files", "request"]
    assert parts[0].data == documents[0].read_bytes()
    assert json.loads(parts[2].data) == {"recipients": ["493012345678", "33142685300"]}
    assert receipt.updates[0].raw == "accepted"  # all this API ever says


def test_voipnow_admin_limits_are_checked_before_sending(
    tmp_path: Path, documents: list[Document], running: list[Any]
) -> None:
    provider, _ = provider_for(
        "voipnow",
        {"base_url": "{url}", "token": "${env:V_TOKEN}", "extension": "1", "max_files": 1, "max_recipients": 3},
        tmp_path,
        running,
    )
    problems = provider.check(documents, SENDER)
    assert any("at most 1 files per fax" in p.message for p in problems)
    assert provider.job_size() == 3


def test_faxplus_upload_then_outbox(
    tmp_path: Path, documents: list[Document], running: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("F_TOKEN", "secret")
    provider, sim = provider_for("faxplus", {"base_url": "{url}/v3", "token": "${env:F_TOKEN}"}, tmp_path, running)
    receipt = provider.submit(Submission("fx-ref-3", [BERGER, LEMAIRE], documents, SENDER, "shapes"))
    provider.submit(Submission("fx-ref-4", [BERGER], documents, SENDER, "shapes"))
    uploads = [r for r in sim.log if r.path.endswith("/files")]
    assert len(uploads) == 2  # each document uploaded once for the whole run
    assert uploads[0].arg("format") == "pdf"
    assert uploads[0].form()[0].name == "fax_file"
    outbox = next(r for r in sim.log if r.path.endswith("/outbox"))
    assert outbox.path == "/v3/accounts/self/outbox"
    body = outbox.json()
    assert body["from"] == "+493012340000"
    assert body["to"] == ["+493012345678", "+33142685300"]
    assert body["comment"] == {"text": "fx-ref-3"}
    assert body["return_ids"] is True
    assert len(body["files"]) == 2
    assert set(receipt.recipient_ids) == {"+493012345678", "+33142685300"}


def test_faxplus_needs_a_sender_number(tmp_path: Path, documents: list[Document], running: list[Any]) -> None:
    provider, _ = provider_for("faxplus", {"base_url": "{url}/v3", "token": "${env:F_TOKEN}"}, tmp_path, running)
    problems = provider.check(documents, Sender())
    assert any("sender.number" in p.message for p in problems)


def test_telphin_one_call_one_file_per_recipient(
    tmp_path: Path, documents: list[Document], running: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, sim = telphin(tmp_path, running, monkeypatch)
    assert provider.job_size() == 1
    receipt = provider.submit(Submission("fx-ref-5", [BERGER], documents, SENDER, "shapes"))
    token = [r for r in sim.log if r.path == "/oauth/token"]
    assert len(token) == 1
    request = last(sim, "POST")
    assert request.path == "/api/ver1.0/extension/122/fax/out/"
    assert request.headers["Authorization"].startswith("Bearer ")
    parts = {p.name: p for p in request.form()}
    assert parts["dst_num"].text == "493012345678"
    merged = parts["file"].data
    assert merged.startswith(b"%PDF-")
    from pypdf import PdfReader

    assert len(PdfReader(__import__("io").BytesIO(merged)).pages) == 3  # both documents, in order
    assert receipt.updates[0].raw == "ready_to_send"
    updates = provider.cancel(JobRef(receipt.job_id, [BERGER.number]))
    assert updates[0].raw == "canceled"


def test_telphin_hourly_rate_limit_is_not_hammered(
    tmp_path: Path, documents: list[Document], running: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, sim = telphin(tmp_path, running, monkeypatch, hourly_limit=1)
    provider.submit(Submission("fx-a", [BERGER], documents, SENDER, "shapes"))
    with pytest.raises(TransientError) as info:
        provider.submit(Submission("fx-b", [LEMAIRE], documents, SENDER, "shapes"))
    assert info.value.http_status == 429
    assert info.value.retry_after is not None
    assert info.value.retry_after > 3000
    assert len([r for r in sim.log if r.method == "POST" and "fax/out" in r.path]) == 2  # no retry storm


def test_telphin_merges_tiff_and_pdf(tmp_path: Path, documents: list[Document]) -> None:
    from PIL import Image

    tiff = tmp_path / "cover.tif"
    Image.new("1", (1728, 2200), 1).save(tiff, compression="group4")
    data, fmt = merge_documents([load_document(tiff), *documents])
    from io import BytesIO

    from pypdf import PdfReader

    assert fmt == "pdf"
    assert len(PdfReader(BytesIO(data)).pages) == 4


def test_retarus_body_and_safe_names(
    tmp_path: Path, documents: list[Document], running: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, sim = retarus(tmp_path, running, monkeypatch)
    provider.submit(Submission("fx-ref-6", [BERGER, LEMAIRE], documents, SENDER, "shapes"))
    request = last(sim, "POST")
    assert request.path == "/rest/v1/99999TE/fax"
    body = request.json()
    assert body["reference"]["customerDefinedId"] == "fx-ref-6"
    assert body["recipients"][0] == {
        "number": "+493012345678",
        "properties": [
            {"key": "name", "value": "Kanzlei Berger"},
            {"key": "contact", "value": "Anna Berger"},
            {"key": "city", "value": "Berlin"},
        ],
    }
    names = [d["name"] for d in body["documents"]]
    assert names == ["01-Cover-letter-final.pdf", "02-price-list-for-the-first.pdf"]
    assert all(len(n) <= 32 for n in names)
    assert body["transportOptions"] == {"isExpress": False, "isBlacklistEnabled": True, "csid": "+49 30 1234 0000"}
    assert body["renderingOptions"] == {"paperFormat": "A4", "resolution": "HIGH", "header": "Nordwind"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Rechnung März 2027 (Kopie).PDF", "01-Rechnung-M-rz-2027-Kopie.PDF"),
        ("a" * 60 + ".tiff", "01-" + "a" * 24 + ".tiff"),
        ("no-extension", "01-no-extension"),
        ("...", "01-document"),
    ],
)
def test_retarus_safe_document_name(name: str, expected: str) -> None:
    assert safe_document_name(name, 0) == expected


def test_retarus_reports_are_read_at_every_data_centre(
    tmp_path: Path, documents: list[Document], running: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, sim = retarus(tmp_path, running, monkeypatch)
    assert isinstance(sim, RetarusSimulator)
    sim.place = "de2"  # the job lands in the second data centre; the first knows nothing of it
    receipt = provider.submit(Submission("fx-ref-7", [BERGER], documents, SENDER, "shapes"))
    sim.advance(3600)
    updates = provider.status(JobRef(receipt.job_id, [BERGER.number], "fx-ref-7"))
    assert [u.raw for u in updates] == ["OK"]
    asked = [r.path for r in sim.log if r.path.endswith(f"/reports/{receipt.job_id}")]
    assert asked == [
        f"/de1/rest/v1/99999TE/fax/reports/{receipt.job_id}",
        f"/de2/rest/v1/99999TE/fax/reports/{receipt.job_id}",
    ]
    assert not any(r.path.startswith("/rest/v1/") and "/reports" in r.path for r in sim.log)  # never the HA URL


def test_telphin_retries_a_failed_fax_under_its_id(
    tmp_path: Path, documents: list[Document], running: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, sim = telphin(tmp_path, running, monkeypatch)
    sim.outcomes[BERGER.number] = "busy"
    receipt = provider.submit(Submission("fx-r", [BERGER], documents, SENDER, "shapes"))
    job = JobRef(receipt.job_id, [BERGER.number])
    sim.advance(3600)
    assert provider.status(job)[0].raw == "failed"
    assert provider.retry(job)[0].raw == "ready_to_send"
    sim.advance(3600)
    assert provider.status(job)[0].raw == "sent"


def test_faxplus_cancel_deletes_the_outbox_entry(
    tmp_path: Path, documents: list[Document], running: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("F_TOKEN", "secret")
    provider, sim = provider_for("faxplus", {"base_url": "{url}/v3", "token": "${env:F_TOKEN}"}, tmp_path, running)
    receipt = provider.submit(Submission("fx-c", [BERGER], documents, SENDER, "shapes"))
    job = JobRef(receipt.job_id, [BERGER.number], "fx-c", receipt.recipient_ids)
    assert provider.cancel(job)[0].status == "canceled"
    assert any(r.method == "DELETE" for r in sim.log)
    sim.advance(3600)
    assert provider.status(job) == []  # gone from the outbox, never in the sent list


def test_providers_without_cancel_say_so(tmp_path: Path, running: list[Any]) -> None:
    provider, _ = provider_for(
        "retarus",
        {
            "base_url": "{url}/rest/v1",
            "report_urls": ["{url}/de1/rest/v1"],
            "customer_number": "1",
            "username": "${env:X}",
            "password": "${env:X}",
        },
        tmp_path,
        running,
    )
    with pytest.raises(ProviderError, match="cannot cancel"):
        provider.cancel(JobRef("J", ["+1"]))


def test_faxplus_fax_id_after_sending_is_reported(
    tmp_path: Path, documents: list[Document], running: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("F_TOKEN", "secret")
    provider, sim = provider_for("faxplus", {"base_url": "{url}/v3", "token": "${env:F_TOKEN}"}, tmp_path, running)
    receipt = provider.submit(Submission("fx-ids", [BERGER], documents, SENDER, "shapes"))
    job = JobRef(receipt.job_id, [BERGER.number], "fx-ids", receipt.recipient_ids)
    assert provider.status(job)[0].provider_id is None  # still in the outbox, known by its outbox id
    sim.advance(3600)
    (update,) = provider.status(job)
    assert update.status == "delivered"
    assert update.provider_id is not None
    assert update.provider_id != receipt.job_id  # the fax id that replaced the outbox id


def test_a_campaign_the_provider_cannot_send_fails_validation(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zipfile

    monkeypatch.setenv("T_ID", "x")
    monkeypatch.setenv("T_SECRET", "y")
    with zipfile.ZipFile(tmp_path / "offer.docx", "w") as archive:
        archive.writestr("word/document.xml", "<xml/>")
    (tmp_path / "campaign.yaml").write_text(
        "campaign: {name: t}\n"
        "provider: {type: telphin, extension_id: 1, client_id: '${env:T_ID}', client_secret: '${env:T_SECRET}'}\n"
        "documents: [offer.docx]\n"
        "recipients: {inline: [{number: '+493012345678'}]}\n"
    )
    result = cli("validate", tmp_path / "campaign.yaml")
    assert result.code == 1
    assert "telphin does not accept docx documents (it accepts pdf, tiff)" in result.err
    assert cli("apply", tmp_path / "campaign.yaml", "--auto-approve").code == 1


def test_fields_a_provider_cannot_deliver_are_warned_about(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("V_TOKEN", "x")
    write_pdf(tmp_path / "letter.pdf", 1)
    (tmp_path / "campaign.yaml").write_text(
        "campaign: {name: t}\n"
        "provider: {type: voipnow, base_url: 'http://127.0.0.1:9', token: '${env:V_TOKEN}', extension: '1'}\n"
        "documents: [letter.pdf]\n"
        "recipients: {inline: [{number: '+493012345678', fields: {contact: Anna}}]}\n"
    )
    result = cli("validate", tmp_path / "campaign.yaml")
    assert result.code == 0
    assert "campaign.yaml:4:" in result.err
    assert "recipients.inline[0].fields" in result.err
    assert "voipnow has no per-recipient fields" in result.err
    assert cli("validate", tmp_path / "campaign.yaml", "--strict").code == 1
