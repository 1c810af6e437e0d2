"""One battery, every HTTP provider: the adapter against its simulator over real loopback HTTP."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from faxops.documents import load_document
from faxops.domain import Document, Recipient, Sender, Status, Submission
from faxops.errors import AuthError, OutcomeUnknownError, RejectedError, TransientError
from faxops.providers import REGISTRY, JobRef
from faxops.providers.base import ProviderContext
from faxops.providers.http import HttpProvider
from faxops.testing import SIMULATORS, Simulator
from faxops.testing.server import QUEUED_FOR, SENDING_FOR
from tests.conftest import Result, write_csv, write_pdf

Cli = Callable[..., Result]


@dataclass
class Case:
    """How to point one provider at its simulator (the facts live on the simulator class)."""

    type: str
    settings: Callable[[Simulator], dict[str, Any]]
    env: dict[str, str]
    bad_env: dict[str, str]
    submit_path: str  # regex of the call that sends, for faults aimed at it
    sim_kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, kind: str) -> Case:
        sim = SIMULATORS[kind]
        return cls(kind, sim.provider_settings, dict(sim.good_env), dict(sim.bad_env), sim.submit_path)


#: every registered HTTP provider, from the registry: a provider without a simulator fails the test below
CASES = [Case.of(kind) for kind in REGISTRY if kind != "sandbox" and kind in SIMULATORS]


def test_every_registered_provider_has_a_simulator_and_battery_case() -> None:
    # The sandbox is the in-process provider: it has no API to simulate.
    assert set(REGISTRY) - {"sandbox"} == set(SIMULATORS)
    assert {c.type for c in CASES} == set(REGISTRY) - {"sandbox"}
    for case in CASES:
        assert case.env, case.type
        assert case.bad_env != case.env, case.type
        assert case.submit_path, case.type


@pytest.fixture(params=CASES, ids=lambda c: c.type)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def sim(case: Case) -> Iterator[Simulator]:
    with SIMULATORS[case.type](**case.sim_kwargs) as simulator:
        yield simulator


@pytest.fixture
def documents(tmp_path: Path) -> list[Document]:
    return [
        load_document(write_pdf(tmp_path / "cover letter.pdf", 1)),
        load_document(write_pdf(tmp_path / "price-list-for-the-first-quarter-2027.pdf", 2)),
    ]


Make = Callable[..., HttpProvider]


@pytest.fixture
def make(case: Case, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Make]:
    """Build the case's adapter pointed at the simulator; closed after the test."""
    made: list[HttpProvider] = []

    def build(*, bad: bool = False, **overrides: Any) -> HttpProvider:
        for key, value in (case.bad_env if bad else case.env).items():
            monkeypatch.setenv(key, value)
        cls = REGISTRY[case.type]
        settings = cls.settings_model.model_validate({"type": case.type, **case.settings(sim), **overrides})
        provider = cls(settings, ProviderContext(base_dir=tmp_path, campaign="battery"))
        assert isinstance(provider, HttpProvider)
        waits: list[float] = []
        provider.sleep = waits.append  # record backoff instead of sleeping
        provider.waits = waits  # type: ignore[attr-defined]
        made.append(provider)
        return provider

    yield build
    for provider in made:
        provider.close()


RECIPIENTS = [
    Recipient("+493012345678", "Kanzlei Berger", {"contact": "Anna Berger", "account": "DE-1"}, "l.csv:2"),
    Recipient("+33142685300", "Cabinet Lemaire", {"contact": "Claire", "account": "FR-2"}, "l.csv:3"),
]


def jobs(provider: HttpProvider, documents: list[Document], ref: str = "fx-battery") -> list[Submission]:
    """RECIPIENTS split into the jobs this provider takes (one per call, or several)."""
    size = provider.job_size()
    return [submission(documents, RECIPIENTS[i : i + size], f"{ref}-{i}") for i in range(0, len(RECIPIENTS), size)]


def submission(
    documents: list[Document], recipients: list[Recipient] | None = None, ref: str = "fx-battery-1"
) -> Submission:
    sender = Sender(csid="+49 30 1234 0000", header="Battery", number="+4930123400000")
    return Submission(ref, recipients or RECIPIENTS, documents, sender, "battery")


def test_happy_path_records_every_recipient_and_field(
    case: Case, sim: Simulator, documents: list[Document], make: Make
) -> None:
    provider = make()
    receipts = {}
    for job in jobs(provider, documents):
        receipt = provider.submit(job)
        assert receipt.job_id
        receipts.update({r.number: receipt.job_id for r in job.recipients})
    got = {r["number"]: r for r in sim.received}
    assert set(got) == {"+493012345678", "+33142685300"}
    assert {n: r["job_id"] for n, r in got.items()} == receipts
    if provider.reference_field:
        assert {r["reference"] for r in got.values()} <= {j.reference for j in jobs(provider, documents)}
    if provider.personalisation:
        assert "Anna Berger" in str(got["+493012345678"])  # personalisation delivered


def test_bad_credentials_stop_with_an_auth_error(
    case: Case, sim: Simulator, documents: list[Document], make: Make
) -> None:
    provider = make(bad=True)
    with pytest.raises(AuthError) as info:
        provider.submit(jobs(provider, documents)[0])
    assert info.value.http_status == 401
    assert sim.received == []


def test_rejected_number_carries_the_providers_message(
    case: Case, sim: Simulator, documents: list[Document], make: Make
) -> None:
    sim.rejected["+493012345678"] = "number on the provider's block list"
    provider = make()
    with pytest.raises(RejectedError) as info:
        provider.submit(jobs(provider, documents)[0])
    assert "block list" in info.value.message
    assert info.value.http_status == 400


def test_rejected_document(case: Case, sim: Simulator, documents: list[Document], make: Make) -> None:
    sim.inject("status", status=400, method="POST", path=case.submit_path)
    provider = make()
    with pytest.raises(RejectedError):
        provider.submit(jobs(provider, documents)[0])
    assert sim.received == []


def test_429_waits_for_retry_after_then_succeeds(
    case: Case, sim: Simulator, documents: list[Document], make: Make
) -> None:
    sim.inject("status", status=429, method="POST", path=case.submit_path, headers={"Retry-After": "7"}, times=2)
    provider = make()
    assert provider.submit(jobs(provider, documents)[0]).job_id
    assert provider.waits == [7.0, 7.0]  # type: ignore[attr-defined]
    assert len(sim.received) == provider.job_size() or len(sim.received) == len(RECIPIENTS)


def test_503_is_retried_with_backoff(case: Case, sim: Simulator, documents: list[Document], make: Make) -> None:
    sim.inject("status", status=503, method="POST", path=case.submit_path, times=2)
    provider = make()
    assert provider.submit(jobs(provider, documents)[0]).job_id
    assert len(provider.waits) == 2  # type: ignore[attr-defined]
    assert len(sim.received) == len(jobs(provider, documents)[0].recipients)


def test_500_after_accepting_is_an_unknown_outcome_not_a_resend(
    case: Case, sim: Simulator, documents: list[Document], make: Make
) -> None:
    sim.inject("error_after", method="POST", path=case.submit_path)
    provider = make()
    with pytest.raises(OutcomeUnknownError):
        provider.submit(jobs(provider, documents)[0])
    assert len(sim.received) == len(jobs(provider, documents)[0].recipients)  # accepted once, not sent again


def test_unreachable_provider_is_transient(case: Case, sim: Simulator, documents: list[Document], make: Make) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    provider = make(base_url=f"http://127.0.0.1:{closed_port}", max_retries=2)
    with pytest.raises(TransientError):
        provider.submit(jobs(provider, documents)[0])
    assert len(provider.waits) == 2  # type: ignore[attr-defined]


def test_dropped_connection_after_send_is_unknown_and_found_again(
    case: Case, sim: Simulator, documents: list[Document], make: Make
) -> None:
    sim.inject("drop_after", method="POST", path=case.submit_path)
    provider = make()
    sub = jobs(provider, documents, ref="fx-battery-lost")[0]
    with pytest.raises(OutcomeUnknownError):
        provider.submit(sub)
    assert len(sim.received) == len(sub.recipients)
    sim.advance(QUEUED_FOR + SENDING_FOR + 1)
    lookup = provider.find(sub)
    if provider.lookup == "none":  # the API cannot tell: a person decides, nothing is resent
        assert not lookup.decided
        assert "faxops resolve" in lookup.evidence
        return
    assert lookup.decided
    assert len(lookup.found) == 1
    found = lookup.found[0]
    # The job's id, or (FAX.PLUS, once sent) the per-destination fax ids that replaced it.
    assert found.job_id == sim.received[0]["job_id"] or set(found.recipient_ids) == {r.number for r in sub.recipients}
    other = provider.find(submission(documents, [RECIPIENTS[-1]], ref="fx-never-sent"))
    assert not other.found


def test_dropped_connection_before_processing_is_retried(
    case: Case, sim: Simulator, documents: list[Document], make: Make
) -> None:
    sim.inject("drop_before", method="GET")
    provider = make()
    job = jobs(provider, documents)[0]
    receipt = provider.submit(job)
    if not provider.reports_status:
        pytest.skip(f"{case.type} has no status API to read")
    sim.advance(QUEUED_FOR + SENDING_FOR + 1)
    updates = provider.status(JobRef(receipt.job_id, [r.number for r in job.recipients], job.reference))
    assert {u.status for u in updates} == {Status.DELIVERED}


def test_malformed_answer_is_an_unknown_outcome(
    case: Case, sim: Simulator, documents: list[Document], make: Make
) -> None:
    sim.inject("malformed", method="POST", path=case.submit_path)
    provider = make()
    with pytest.raises(OutcomeUnknownError):
        provider.submit(jobs(provider, documents)[0])


def test_status_moves_to_delivered_and_failed(
    case: Case, sim: Simulator, documents: list[Document], make: Make
) -> None:
    sim.outcomes["+33142685300"] = "busy"
    provider = make()
    refs = []
    for job in jobs(provider, documents):
        receipt = provider.submit(job)
        refs.append(JobRef(receipt.job_id, [r.number for r in job.recipients], job.reference))
    if not provider.reports_status:  # say so rather than invent a status
        assert all(provider.status(ref) == [] for ref in refs)
        return
    early = [u for ref in refs for u in provider.status(ref)]
    assert all(u.status in (Status.QUEUED, Status.SENDING) for u in early)
    sim.advance(QUEUED_FOR + SENDING_FOR + 1)
    final = {u.number: u for ref in refs for u in provider.status(ref)}
    assert final["+493012345678"].status == Status.DELIVERED
    busy = final["+33142685300"]
    assert busy.status == Status.FAILED
    assert busy.retryable is True
    assert busy.raw


def test_constraints_are_checked_before_sending(case: Case, sim: Simulator, tmp_path: Path, make: Make) -> None:
    provider = make()
    odd = tmp_path / "image.gif"
    odd.write_bytes(b"GIF89a" + b"\x00" * 20)
    problems = provider.check([Document(odd, "image.gif", "gif", 26, "0" * 64, 1)])
    assert problems
    assert "gif" in problems[0].message


def test_apply_end_to_end_records_every_job(
    case: Case, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    write_pdf(tmp_path / "letter.pdf", 2)
    write_csv(
        tmp_path / "recipients.csv",
        [("+49 30 12345678", "Berger"), ("+33 1 42 68 53 00", "Lemaire"), ("+44 20 7946 0123", "Harrow")],
    )
    provider = {"type": case.type, **case.settings(sim)}
    (tmp_path / "campaign.yaml").write_text(
        "campaign: {name: e2e}\n"
        f"provider: {json.dumps(provider)}\n"
        "sender: {csid: FAXOPS, number: '+493012340000'}\n"
        "documents: [letter.pdf]\n"
        "recipients: {files: [{path: recipients.csv, columns: {number: fax, name: company}}]}\n"
    )
    manifest = tmp_path / "campaign.yaml"
    assert cli("validate", manifest).code == 0
    result = cli("apply", manifest, "--auto-approve")
    assert result.code == 0, result.err
    assert cli("apply", manifest, "--auto-approve").code == 0  # nothing twice
    received = sorted(r["number"] for r in sim.received)
    assert received == ["+33142685300", "+442079460123", "+493012345678"]
    lock = json.loads((tmp_path / "campaign.lock.json").read_text())
    recorded = {n: r["attempts"][0]["job_id"] for n, r in lock["recipients"].items()}
    assert recorded == {r["number"]: r["job_id"] for r in sim.received}
    assert "secret" not in (tmp_path / "campaign.lock.json").read_text()
