"""FAX.PLUS judged by its official client (``faxplus-api``, pinned in the dev extra): requests, answers, statuses.

The client is generated from FAX.PLUS' OpenAPI document; its models check required fields, enums, patterns
and bounds when they are built or deserialised, so a shape our adapter or simulator got wrong fails here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from faxplus import ApiClient, Configuration, FaxesApi, FilesApi, OutboxApi
from faxplus.models import (
    Fax,
    FaxCostDetails,
    FaxList,
    FaxListData,
    FaxStatus,
    Outbox,
    OutboxComment,
    OutboxList,
    OutboxStatus,
    PayloadOutbox,
)

from faxops.domain import FailureClass, Recipient, Sender, Status, Submission
from faxops.providers import REGISTRY, JobRef
from faxops.providers.base import ProviderContext
from faxops.providers.faxplus import FAX_STATUS, OUTBOX_STATUS, FaxPlusProvider
from faxops.testing.faxplus import FAX_STATUSES, FaxPlusSimulator
from faxops.testing.server import QUEUED_FOR, SENDING_FOR
from tests.campaigns import DONE, FINE, HttpCampaign
from tests.conftest import Result, write_pdf

Cli = Callable[..., Result]
SENDER = Sender(number="+493012340000")
SDK_FAX_STATUSES = {s.value for s in FaxStatus}
SDK_OUTBOX_STATUSES = {s.value for s in OutboxStatus}


class _Raw:
    """What ``ApiClient.deserialize`` reads: an HTTP answer's body."""

    def __init__(self, body: bytes) -> None:
        self.data = body


def sdk_parse(body: Any, model: str) -> Any:
    """``body`` deserialised by the official client into ``model`` (raises on a shape it refuses)."""
    return ApiClient().deserialize(_Raw(json.dumps(body).encode()), model)


def sdk_json(model: Any) -> Any:
    """A model instance as the official client puts it on the wire."""
    return ApiClient().sanitize_for_serialization(model)


@pytest.fixture
def sim() -> Iterator[FaxPlusSimulator]:
    with FaxPlusSimulator() as simulator:
        assert isinstance(simulator, FaxPlusSimulator)
        yield simulator


@pytest.fixture
def sdk(sim: FaxPlusSimulator) -> ApiClient:
    conf = Configuration()
    conf.host = f"{sim.url}/v3"
    conf.access_token = sim.token
    return ApiClient(conf)


def adapter(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> FaxPlusProvider:
    monkeypatch.setenv("FAXPLUS_TOKEN", "secret")
    model = REGISTRY["faxplus"].settings_model.model_validate(
        {"type": "faxplus", "base_url": f"{url}/v3", "token": "${env:FAXPLUS_TOKEN}", "max_retries": 0, **settings}
    )
    provider = FaxPlusProvider(model, ProviderContext(base_dir=tmp_path, campaign="contract"))
    provider.sleep = lambda seconds: None
    return provider


def test_statuses_are_exactly_the_official_enums() -> None:
    assert set(FAX_STATUS) == SDK_FAX_STATUSES  # every value mapped, none invented
    assert set(OUTBOX_STATUS) == SDK_OUTBOX_STATUSES
    assert FAX_STATUSES == SDK_FAX_STATUSES  # the simulator emits nothing else


def test_the_official_client_sends_lists_reads_and_deletes(
    sim: FaxPlusSimulator, sdk: ApiClient, tmp_path: Path
) -> None:
    pdf = write_pdf(tmp_path / "letter.pdf", 1)
    path = FilesApi(sdk).upload_file("self", fax_file=str(pdf), format="pdf").path
    outbox, faxes = OutboxApi(sdk), FaxesApi(sdk)
    body = PayloadOutbox(
        from_number="+493012340000",
        to=["+493012345678", "+33142685300"],
        files=[path],
        comment=OutboxComment(text="sdk-ref"),
        return_ids=True,
    )
    ids = outbox.send_fax("self", body=body).ids
    assert set(ids) == {"+493012345678", "+33142685300"}
    doomed = outbox.send_fax("self", body=PayloadOutbox(from_number="+493012340000", to=["+4930999"], files=[path]))
    assert doomed.ids is None  # without return_ids the API gives no ids
    entries = outbox.list_outbox_faxes("self").records
    assert {e.comment.text for e in entries} == {"sdk-ref", ""}
    mine = next(e for e in entries if e.comment.text == "sdk-ref")
    assert outbox.get_outbox_fax("self", mine.id).uid == mine.uid
    other = next(e for e in entries if e.comment.text == "")
    outbox.delete_outbox_fax("self", other.id)
    assert [e.id for e in outbox.list_outbox_faxes("self").records] == [mine.id]
    sim.advance(QUEUED_FOR + SENDING_FOR + 1)
    first = faxes.list_faxes("self", category="sent", limit=1, offset=0).data.records
    second = faxes.list_faxes("self", category="sent", limit=1, offset=1).data.records
    assert len(first) == len(second) == 1
    assert first[0].id != second[0].id
    record = faxes.get_fax("self", first[0].id)
    assert record.comment == "sdk-ref"
    assert record.status == FaxStatus.SUCCESS
    faxes.delete_fax("self", record.id)
    remaining = faxes.list_faxes("self", category="sent").data.records
    assert [r.id for r in remaining] == [second[0].id]


def test_every_request_validates_and_every_answer_parses_with_the_official_models(
    sim: FaxPlusSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Submit (with a start time and redial options), status, lookup and cancel, as the adapter does them."""
    provider = adapter(sim.url, tmp_path, monkeypatch, redial_count=3, redial_delay=30)
    answers: list[tuple[httpx.Request, bytes]] = []

    def keep(response: httpx.Response) -> None:
        answers.append((response.request, response.read()))

    provider.client.event_hooks["response"].append(keep)
    documents = [_document(tmp_path)]
    now_job = Submission("fx-now", [Recipient(FINE)], documents, SENDER, "contract")
    later = Submission("fx-later", [Recipient("+33142685300")], documents, SENDER, "contract", send_at=_in(hours=2))
    receipt = provider.submit(now_job)
    provider.submit(later)
    sim.outcomes["+33142685300"] = "insufficient_credit"
    provider.status(JobRef(receipt.job_id, [FINE], "fx-now", receipt.recipient_ids))
    provider.find(later)
    provider.cancel(JobRef("x", ["+33142685300"], "fx-later", {"+33142685300": sim.received[-1]["job_id"]}))
    sim.advance(QUEUED_FOR + SENDING_FOR + 1)
    assert provider.find(now_job).found
    provider.close()

    seen = set()
    sent_bodies = {}
    for request, body in answers:
        if request.method == "POST" and request.url.path.endswith("/outbox"):
            payload = json.loads(request.content)
            sent_bodies[payload["comment"]["text"]] = payload
            sdk_model = sdk_parse(payload, "PayloadOutbox")  # from/send_time patterns, RetryOptions bounds
            assert set(payload) <= set(PayloadOutbox.attribute_map.values())
            assert sdk_model.comment.text in ("fx-now", "fx-later")
            sdk_parse(json.loads(body), "SendFaxResponse")
            seen.add("send")
        elif request.method == "POST":
            assert request.url.params["format"] in ("pdf", "tiff")
            assert sdk_parse(json.loads(body), "FilePath").path
            seen.add("upload")
        elif request.method == "GET" and request.url.path.endswith("/outbox"):
            sdk_parse(json.loads(body), "OutboxList")
            seen.add("outbox")
        elif request.method == "GET":
            params = request.url.params
            assert set(params) <= {"category", "after", "before", "limit", "offset", "sort_by", "order"}
            assert params["category"] == "sent"
            assert 1 <= int(params["limit"]) <= 50
            assert sdk_parse(json.loads(body), "FaxList").data is not None
            seen.add("sent")
        else:
            assert request.method == "DELETE", request.url
            assert "/outbox/" in request.url.path
            seen.add("delete")
    assert seen == {"upload", "send", "outbox", "sent", "delete"}
    scheduled = sent_bodies["fx-later"]
    assert scheduled["options"] == {"retry": {"count": 3, "delay": 30}}
    assert scheduled["send_time"].endswith("+0000")


def test_the_official_models_examples_parse_in_the_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers built by the client's own models: a string comment, every FaxStatus, an Outbox with uid."""
    numbers = [f"+4930100{i:04d}" for i in range(len(SDK_FAX_STATUSES))]
    statuses = sorted(SDK_FAX_STATUSES)
    sent = [
        Fax(
            id=f"fax{i}",
            to=number,
            comment="fx-sdk",
            status=FaxStatus(status),
            owner_id="u1",
            pages=2,
            cost=2,
            cost_details=FaxCostDetails(multiplier=1.0, notification_cost=0.0),
        )
        for i, (number, status) in enumerate(zip(numbers, statuses, strict=True))
    ]
    queued = Outbox(
        id="ob1", uid="u1", to=["+4940999"], status=OutboxStatus.CONVERTING, comment=OutboxComment(text="fx-sdk")
    )
    queued.page_count = 3
    answers = {
        "/v3/accounts/self/outbox": sdk_json(OutboxList(records=[queued])),
        "/v3/accounts/self/faxes": sdk_json(FaxList(data=FaxListData(records=sent))),
    }
    provider = adapter("http://faxplus.invalid", tmp_path, monkeypatch)
    provider.client = httpx.Client(
        base_url="http://faxplus.invalid/v3",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=answers[request.url.path])),
    )
    updates = {u.number: u for u in provider.status(JobRef("ob1", [*numbers, "+4940999"], "fx-sdk"))}
    provider.close()
    assert updates["+4940999"].status == Status.QUEUED
    assert updates["+4940999"].pages == 3
    by_raw = {u.raw: u for u in updates.values() if u.number != "+4940999"}
    assert set(by_raw) == SDK_FAX_STATUSES
    assert by_raw["success"].status == Status.DELIVERED
    assert by_raw["success"].provider_id == "fax" + str(statuses.index("success"))
    credit = by_raw["insufficient_credit"]
    assert credit.status == Status.FAILED
    assert credit.failure_class() == FailureClass.ACCOUNT
    assert by_raw["failed_user_busy"].failure_class() == FailureClass.BUSY
    assert by_raw["failed_unallocated_number"].failure_class() == FailureClass.INVALID_NUMBER
    assert all(u.status == Status.FAILED for raw, u in by_raw.items() if raw != "success")


def test_a_status_outside_the_enums_is_kept_raw_and_classed_unknown() -> None:
    from faxops.providers.faxplus import fax_failure, map_fax_status

    assert map_fax_status("failed_not_fax") == (Status.FAILED, None)  # not a FAX.PLUS status: no guess
    assert fax_failure("failed_not_fax") == FailureClass.UNKNOWN


@pytest.mark.parametrize(("key", "value"), [("redial_count", 4), ("redial_delay", 31), ("redial_delay", -1)])
def test_validate_refuses_redial_options_the_api_refuses(
    key: str, value: int, http_campaign: Callable[[str], HttpCampaign], cli: Cli
) -> None:
    camp = http_campaign("faxplus")
    text = camp.manifest.read_text().replace('"max_retries": 0', f'"max_retries": 0, "{key}": {value}')
    camp.manifest.write_text(text)
    result = cli("validate", camp.manifest)
    assert result.code == 1
    assert key in result.err
    assert "Traceback" not in result.err


def test_reconcile_finds_a_lost_fax_on_the_second_page_of_the_sent_list(
    http_campaign: Callable[[str], HttpCampaign], cli: Cli, tmp_path: Path
) -> None:
    camp = http_campaign("faxplus")
    sim = camp.sim
    assert isinstance(sim, FaxPlusSimulator)
    sim.inject("drop_after", method="POST", path=r"/v3/accounts/[^/]+/outbox")
    result = cli("apply", camp.manifest, "--auto-approve")
    assert result.code != 0  # the answer was lost: the outcome is unknown
    assert len(sim.received) == 3
    # 55 newer faxes push ours to the second page of the sent list (50 a page, newest first).
    _send_others(sim, tmp_path, 55)
    sim.advance(DONE)
    reconciled = cli("reconcile", camp.manifest)
    assert reconciled.code == 0, reconciled.out + reconciled.err
    assert "found" in reconciled.out.lower()
    offsets = [r.arg("offset") for r in sim.log if r.method == "GET" and r.path.endswith("/faxes")]
    assert "50" in offsets  # it read on past the first page
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    mine = [r for r in sim.received if r["reference"] != "others"]
    assert len(mine) == 3  # nobody faxed twice
    assert {r["status"] for r in camp.status(cli).values()} <= {"delivered", "failed"}


@pytest.mark.parametrize(
    "shape",
    [
        {"records": "top-level, as faxops once read it"},
        {"data": {"records": [{"id": "f1", "to": FINE, "status": "success", "comment": {"text": "a dict"}}]}},
        {"data": {"records": [{"to": FINE, "status": "success", "comment": "no id"}]}},
    ],
    ids=["old-shape", "comment-object", "no-id"],
)
def test_reconcile_holds_a_fax_when_the_sent_list_has_another_shape(
    shape: dict[str, Any], http_campaign: Callable[[str], HttpCampaign], cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    camp = http_campaign("faxplus")
    sim = camp.sim
    sim.inject("drop_after", method="POST", path=r"/v3/accounts/[^/]+/outbox")
    cli("apply", camp.manifest, "--auto-approve")
    sim.advance(DONE)
    from faxops.testing.server import Response

    # The list answers another shape from now on.
    sim._routes = [
        (m, p, (lambda request, user: Response(200, shape)) if h.__name__ == "faxes" else h) for m, p, h in sim._routes
    ]
    result = cli("reconcile", camp.manifest)
    assert result.code == 5, result.out + result.err
    assert "Traceback" not in result.err
    assert cli("apply", camp.manifest, "--auto-approve").code == 5  # held, not resent
    assert len(sim.received) == 3


def _document(tmp_path: Path) -> Any:
    from faxops.documents import load_document

    return load_document(write_pdf(tmp_path / "letter.pdf", 1))


def _in(hours: int) -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC).replace(microsecond=0) + timedelta(hours=hours)


def _send_others(sim: FaxPlusSimulator, tmp_path: Path, count: int) -> None:
    """Another client's faxes, sent through the API after ours."""
    headers = {"Authorization": f"Bearer {sim.token}"}
    pdf = write_pdf(tmp_path / "other.pdf", 1).read_bytes()
    with httpx.Client(base_url=f"{sim.url}/v3/accounts/self", headers=headers) as client:
        path = client.post("/files", params={"format": "pdf"}, files={"fax_file": ("o.pdf", pdf)}).json()["path"]
        to = [f"+4989{i:07d}" for i in range(count)]
        body = {"from": "+493012340000", "to": to, "files": [path], "comment": {"text": "others"}}
        assert client.post("/outbox", json=body).status_code == 201
