"""Secrets never leave the process: a provider that echoes our credentials in its errors, then every output
faxops produced (stdout, stderr, lockfile, journal, reports, the report webhook's body, the debug log) read back."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from faxops import secrets
from faxops.cli import _debug_log
from faxops.errors import ProviderError
from faxops.testing import SIMULATORS
from faxops.testing.server import Simulator
from tests.campaigns import FINE, HttpCampaign
from tests.conftest import Result
from tests.test_provider_battery import CASES

Cli = Callable[..., Result]
SECRET = "Xq7-long-S3cret/+=value"  # '/', '+' and '=' differ in base64, URL and JSON forms
USER = "faxops"


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    secrets.clear()
    yield
    secrets.clear()


def test_registered_values_are_scrubbed_in_every_form() -> None:
    secrets.register_basic(USER, SECRET)
    basic = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
    text = f"echo: Authorization: Basic {basic}; password {SECRET!r}"
    scrubbed = secrets.scrub(text)
    assert SECRET not in scrubbed
    assert basic not in scrubbed
    assert scrubbed.startswith("echo: Authorization: Basic ***; password '***'")
    assert "S3cret" not in secrets.scrub(SECRET.replace("/", "%2F").replace("+", "%2B").replace("=", "%3D"))
    assert "S3cret" not in secrets.scrub(f'"{SECRET}"'.replace("/", "\\/"))  # neither whole nor JSON-escaped


def test_short_values_and_identifiers_are_not_scrubbed() -> None:
    secrets.register("abc")  # shorter than MIN_LENGTH: masking it would mangle ordinary words
    secrets.register_basic(USER, "pw1")
    assert secrets.scrub("abc pw1 faxops") == "abc pw1 faxops"
    header = base64.b64encode(b"faxops:pw1").decode()
    assert secrets.scrub(f"Basic {header}") == "Basic ***"  # the header itself is long enough


def test_journal_events_keep_numbers_and_ids_whole() -> None:
    secrets.register("4930")
    event = {"t": "rejected", "numbers": ["+493012345678"], "job_id": "J4930", "message": "no 4930 here"}
    updates = {"updates": [{"number": "+493012345678", "reason": "bad 4930"}]}
    assert secrets.scrub_event(event) == {**event, "message": "no *** here"}
    assert secrets.scrub_event(updates) == {"updates": [{"number": "+493012345678", "reason": "bad ***"}]}


def test_errors_and_the_debug_log_are_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets.register(SECRET)
    error = ProviderError(f"bad token {SECRET}", provider="x", code=SECRET, hint=f"not {SECRET}")
    assert SECRET not in error.describe() + str(error.hint) + str(error)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    try:
        raise RuntimeError(f"internal failure quoting {SECRET}")
    except RuntimeError as exc:
        log = _debug_log(exc)
    assert "internal failure quoting ***" in log.read_text()


class _Hook:
    """A report webhook receiver on loopback that keeps every body."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


#: the simulator's keyword for the credential it expects
_SIM_SECRET = {"retarus": "password", "faxplus": "token", "telphin": "client_secret"}


@pytest.mark.parametrize("kind", ["retarus", "faxplus", "telphin"])
def test_a_provider_echoing_credentials_never_gets_them_into_any_output(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    """Basic auth (Retarus), a fixed bearer token (FAX.PLUS) and an OAuth token fetched at run time (Telphin)."""
    case = next(c for c in CASES if c.type == kind)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REPORT_HOOK_SECRET", "hmac-" + SECRET)
    hook = _Hook()
    credential: dict[str, Any] = {_SIM_SECRET[kind]: SECRET}
    sim: Simulator = SIMULATORS[kind](**credential).start()
    try:
        (tmp_path / "c").mkdir()
        camp = HttpCampaign(tmp_path / "c", case, sim, monkeypatch)
        secret_env = next(k for k in case.env if k.endswith(("PASSWORD", "TOKEN", "SECRET")))
        monkeypatch.setenv(secret_env, SECRET)
        camp.write(
            "schedule: {batch_size: 1}\n"
            "reporting:\n"
            "  - {type: file, path: out/r.json, format: json, when: always}\n"
            "  - {type: file, path: out/r.csv, format: csv, when: always}\n"
            "  - {type: file, path: out/r.html, format: html, when: always}\n"
            f"  - {{type: webhook, url: '{hook.url}', secret: '${{env:REPORT_HOOK_SECRET}}', include_recipients: true,"
            " mask_numbers: false, when: always}\n"
        )
        results: list[Result] = []
        # credentials "refused" with themselves quoted: the run stops
        sim.inject("echo_auth", path=case.submit_path, method="POST", status=401)
        results.append(cli("apply", camp.manifest, "--auto-approve"))
        assert results[-1].code == 1
        assert not sim.faults, "the echo fault was never served"
        # the first send is refused with our credentials quoted in the error body; the others go through
        sim.inject("echo_auth", path=case.submit_path, method="POST", status=400)
        results.append(cli("apply", camp.manifest, "--auto-approve"))
        assert not sim.faults, "the echo fault was never served"
        sim.inject("echo_auth", path=".*", method="GET", status=400, times=5)
        results.append(cli("refresh", camp.manifest, "--force"))
        results.append(cli("status", camp.manifest))
        results.append(cli("status", camp.manifest, "--json"))
        results += [cli("status", camp.manifest, number) for number in camp.status(cli)]
        results.append(cli("report", camp.manifest))
        for fmt in ("json", "csv", "html"):
            results.append(cli("report", camp.manifest, "--format", fmt))
        tokens = set(getattr(sim, "tokens", ()))  # Telphin's access tokens, issued at run time
    finally:
        sim.stop()
        hook.close()

    outputs = {f"{i}:{r.code}": r.out + r.err for i, r in enumerate(results)}
    for path in tmp_path.rglob("*"):
        if path.is_file():
            outputs[str(path)] = path.read_text(errors="replace")
    for i, body in enumerate(hook.bodies):
        outputs[f"webhook body {i}"] = body.decode()
    assert hook.bodies
    assert any(p.endswith("r.html") for p in outputs)
    forbidden = [SECRET, base64.b64encode(SECRET.encode()).decode(), "hmac-" + SECRET, *tokens]
    forbidden.append(base64.b64encode(f"{case.env.get('RETARUS_USER', USER)}:{SECRET}".encode()).decode())
    for name, text in outputs.items():
        for value in forbidden:
            assert value not in text, f"{value!r} leaked into {name}"
    lockfile = (camp.root / "campaign.lock.json").read_text()
    assert "***" in lockfile, "the echoed error was not recorded at all"
    assert FINE in lockfile  # numbers are kept whole


def test_the_journal_and_lockfile_keep_no_secret_a_provider_reason_carried(tmp_path: Path) -> None:
    from faxops.state import LocalWriter, StatePaths

    paths = StatePaths.for_manifest(tmp_path / "c.yaml")
    secrets.register(SECRET)
    writer = LocalWriter(paths, "c", operation="test")
    at = "2026-11-24T09:00:00Z"
    writer.record({"t": "intent", "ref": "r1", "numbers": [FINE], "provider": "x", "at": at})
    update = {"number": FINE, "status": "failed", "raw": f"E {SECRET}", "reason": f"echo {SECRET}"}
    writer.record({"t": "accepted", "ref": "r1", "numbers": [FINE], "job_id": "J1", "updates": [update], "at": at})
    assert SECRET not in paths.journal.read_text()
    assert "echo ***" in paths.journal.read_text()
    writer.close()
    assert SECRET not in paths.lockfile.read_text()
    assert "echo ***" in paths.lockfile.read_text()


def test_report_targets_scrub_what_an_older_lockfile_recorded(
    make_campaign: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret already in the state (written by an older faxops) stays out of files and webhook bodies."""
    from faxops import reports
    from faxops.campaign import open_campaign
    from faxops.report_rows import ReportRow

    hook = _Hook()
    camp = make_campaign()
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    camp.manifest.write_text(
        camp.manifest.read_text() + "reporting:\n"
        "  - {type: file, path: out/r.json, format: json}\n"
        "  - {type: file, path: out/r.csv, format: csv}\n"
        "  - {type: file, path: out/r.html, format: html}\n"
        f"  - {{type: webhook, url: '{hook.url}', secret: '${{env:HOOK_SECRET}}', include_recipients: true,"
        " mask_numbers: false}\n"
    )
    try:
        campaign = open_campaign(camp.manifest)  # resolves (and so registers) every secret of the manifest
        row: dict[str, Any] = dict.fromkeys(reports.CSV_COLUMNS)
        row.update(
            number=FINE,
            name="Echo GmbH",
            status="failed",
            job_ids=["J1"],
            attempts=1,
            reason=f'refused: password "{SECRET}"',
        )
        rows = [ReportRow(**row)]
        report = reports.Report("test-campaign", "sandbox", "2026-11-24T09:00:00Z", rows=rows)
        results = reports.deliver(campaign, report, [0, 1, 2, 3])
    finally:
        hook.close()
    assert all(r.ok for r in results), results
    texts = [(camp.root / "out" / name).read_text() for name in ("r.json", "r.csv", "r.html")]
    texts += [body.decode() for body in hook.bodies]
    assert len(texts) == 4
    for text in texts:
        assert SECRET not in text
        assert "***" in text, text


def test_validate_warns_that_a_very_short_secret_is_not_masked(
    make_campaign: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    camp = make_campaign()
    monkeypatch.setenv("PUSH_SECRET", "abc")
    camp.manifest.write_text(camp.manifest.read_text() + "status_push: {secret: '${env:PUSH_SECRET}'}\n")
    result = cli("validate", camp.manifest)
    assert result.code == 0
    assert "status_push.secret: a secret shorter than 4 characters is not masked in output" in result.err


def test_opening_a_campaign_registers_its_secrets_and_basic_header(
    make_campaign: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command that never sends a credential (report, plan --refresh=false) still knows what to mask."""
    from faxops.campaign import open_campaign

    monkeypatch.setenv("R_USER", "acme-user")
    monkeypatch.setenv("R_PASSWORD", SECRET)
    camp = make_campaign(
        manifest="campaign: {name: t}\n"
        "provider: {type: retarus, base_url: 'http://127.0.0.1:9', report_urls: ['http://127.0.0.1:9'],"
        " customer_number: '99999TE',"
        " username: '${env:R_USER}', password: '${env:R_PASSWORD}'}\n"
        "sender: {number: '+493012340000', header: 'Nordwind'}\n"
        "documents: [letter.pdf]\n"
        "recipients: {inline: [{number: '+493012345678'}]}\n"
    )
    open_campaign(camp.manifest)
    header = base64.b64encode(f"acme-user:{SECRET}".encode()).decode()
    assert (
        secrets.scrub(f"user acme-user sent Basic {header} with {SECRET}") == "user acme-user sent Basic *** with ***"
    )
