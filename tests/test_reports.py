"""Reporting targets as a person reads them: CSV and JSON parsed, HTML parsed, a webhook received with
its signature checked, and an e-mail read back from a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import csv
import email
import hashlib
import hmac
import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from email.message import Message
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import CampaignDir, Result, write_csv

# Reports read the state through the store: the same on either backend.
pytestmark = pytest.mark.usefixtures("state_backend")

Cli = Callable[..., Result]
Make = Callable[..., CampaignDir]

ROWS = [
    ("+49 30 12345678", "Kanzlei Berger"),
    ("+33 1 42 68 53 00", '=HYPERLINK("http://evil","click")'),
    ("+44 20 7946 0123", "Harrow & Finch <b>"),
    ("+1 202 555 0123", "Capitol Title"),
    ("+49 30 9999999", "Opted Out AG"),
]


def _campaign(make_campaign: Make, reporting: str, *, env: dict[str, str] | None = None) -> CampaignDir:
    camp = make_campaign(ROWS, outcomes={"+33142685300": "busy", "+12025550123": "invalid"})
    (camp.root / "optout.txt").write_text("+49 30 9999999\n")
    text = camp.manifest.read_text() + "suppress: [{path: optout.txt, reason: asked to stop 2026-10-01}]\n"
    camp.manifest.write_text(text + "reporting:\n" + reporting)
    return camp


def test_file_reports_json_csv_html(make_campaign: Make, cli: Cli) -> None:
    camp = _campaign(
        make_campaign,
        "  - {type: file, path: out/report.json, format: json}\n"
        "  - {type: file, path: out/report.csv, format: csv}\n"
        "  - {type: file, path: out/masked.csv, format: csv, mask_numbers: true}\n"
        "  - {type: file, path: out/report.html, format: html}\n",
    )
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    # the campaign is not final (the busy number will be retried): `when: final` targets wait
    assert not (camp.root / "out").exists()
    result = cli("report", camp.manifest)
    assert result.code == 0, result.err
    assert result.err.count("✓") == 4

    doc = json.loads((camp.root / "out" / "report.json").read_text())
    assert doc["format_version"] == 1
    assert doc["final"] is False
    assert doc["summary"]["by_status"] == {"delivered": 2, "failed": 2, "skipped": 1}
    assert doc["summary"]["by_failure"] == {"busy": 1, "invalid_number": 1}
    by_number = {r["number"]: r for r in doc["recipients"]}
    assert by_number["+49309999999"]["reason"] == "suppressed: asked to stop 2026-10-01"
    assert by_number["+33142685300"]["provider_status"] == "BUSY"
    assert by_number["+493012345678"]["job_ids"]
    # A delivered recipient is unchanged in the report's plan: its name and row come from the plan's columns.
    assert (by_number["+493012345678"]["name"], by_number["+493012345678"]["source"]) == (
        "Kanzlei Berger",
        "recipients.csv:2",
    )
    assert by_number["+49309999999"]["name"] == "Opted Out AG"

    with (camp.root / "out" / "report.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5
    injected = next(r for r in rows if r["number"] == "+33142685300")
    assert injected["name"].startswith("'=HYPERLINK")  # a spreadsheet shows it, never runs it
    assert injected["failure"] == "busy"
    assert injected["attempts"] == "1"
    assert next(r for r in rows if r["number"] == "+493012345678")["status"] == "delivered"
    masked = (camp.root / "out" / "masked.csv").read_text()
    assert "+493012345678" not in masked
    assert "+4930****5678" in masked
    assert (camp.root / "out" / "report.csv").stat().st_mode & 0o777 == 0o600

    page = (camp.root / "out" / "report.html").read_text()
    parser = _Html()
    parser.feed(page)
    assert "<svg" in page  # the delivery chart is inline: the page is self-contained
    assert "http" not in page.split("<body>")[0].replace("http-equiv", "")  # no external resources
    assert "Harrow &amp; Finch &lt;b&gt;" in page
    assert parser.table_rows >= 5 + 1
    assert "Failures by class" in parser.text


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.table_rows = 0
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.table_rows += tag == "tr"

    def handle_data(self, data: str) -> None:
        self.text += data


def test_final_reports_are_rendered_once_when_the_campaign_ends(make_campaign: Make, cli: Cli) -> None:
    camp = make_campaign()
    camp.manifest.write_text(
        camp.manifest.read_text() + "reporting:\n  - {type: file, path: final.json}\n  - {type: file, path: every.csv, "
        "format: csv, when: always}\n  - {type: file, path: manual.html, format: html, when: manual}\n"
    )
    result = cli("apply", camp.manifest, "--auto-approve")
    assert result.code == 0
    assert json.loads((camp.root / "final.json").read_text())["final"] is True
    assert (camp.root / "every.csv").exists()
    assert not (camp.root / "manual.html").exists()
    (camp.root / "final.json").unlink()
    (camp.root / "every.csv").unlink()
    cli("apply", camp.manifest, "--auto-approve")
    assert not (camp.root / "final.json").exists()  # already reported for this state
    assert (camp.root / "every.csv").exists()


class _Hook:
    def __init__(self, failures: int = 0) -> None:
        self.bodies: list[tuple[dict[str, str], bytes]] = []
        self.failures = failures
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.failures:
                    hook.failures -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                hook.bodies.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def hook() -> Iterator[_Hook]:
    server = _Hook(failures=1)
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_webhook_target_is_signed_and_retried(
    make_campaign: Make, cli: Cli, hook: _Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORT_HOOK_SECRET", "hmac-key")
    camp = _campaign(
        make_campaign,
        f"  - {{type: webhook, url: '{hook.url}', secret: '${{env:REPORT_HOOK_SECRET}}', include_recipients: true}}\n",
    )
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    result = cli("report", camp.manifest)
    assert result.code == 0, result.err
    headers, body = hook.bodies[0]
    expected = "sha256=" + hmac.new(b"hmac-key", body, hashlib.sha256).hexdigest()
    assert headers["X-Faxops-Signature"] == expected
    doc = json.loads(body)
    assert doc["summary"]["recipients"] == 5
    assert all("***" in r["number"] for r in doc["recipients"])  # masked unless asked otherwise
    assert "hmac-key" not in result.out + result.err


def test_a_failing_target_is_a_warning_not_a_crash(make_campaign: Make, cli: Cli) -> None:
    camp = _campaign(
        make_campaign,
        "  - {type: webhook, url: 'http://127.0.0.1:9/nothing', retries: 0}\n  - {type: file, path: ok.json}\n",
    )
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    result = cli("report", camp.manifest)
    assert result.code == 1
    assert "Warning:" in result.err
    assert (camp.root / "ok.json").exists()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        self.auth = getattr(session, "authenticated", None)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, _Mailbox]]:
    mailbox = _Mailbox()
    with socket.socket() as probe:  # aiosmtpd's start-up check cannot use port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield controller, mailbox
    controller.stop()


def test_email_report_arrives_with_the_csv(make_campaign: Make, cli: Cli, smtp: tuple[Controller, _Mailbox]) -> None:
    controller, mailbox = smtp
    port = controller.port
    camp = _campaign(
        make_campaign,
        "  - type: email\n    to: [ops@example.org, manager@example.org]\n    from: faxops@example.org\n"
        f"    smtp: {{host: 127.0.0.1, port: {port}, starttls: false}}\n",
    )
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    result = cli("report", camp.manifest)
    assert result.code == 0, result.err
    assert len(mailbox.messages) == 1
    message = mailbox.messages[0]
    assert message["To"] == "ops@example.org, manager@example.org"
    assert message["Subject"] == "Fax campaign test-campaign: in progress"
    parts = list(message.walk())
    text = next(p for p in parts if p.get_content_type() == "text/plain").get_payload(decode=True)
    assert isinstance(text, bytes)
    assert b"delivered: 2" in text
    assert b"busy: 1" in text
    attachment = next(p for p in parts if p.get_filename() == "test-campaign-report.csv")
    data = attachment.get_payload(decode=True)
    assert isinstance(data, bytes)
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert len(rows) == 5
    assert all("***" in r["number"] for r in rows)


def test_report_format_prints_to_stdout(make_campaign: Make, cli: Cli, tmp_path: Path) -> None:
    camp = make_campaign()
    cli("apply", camp.manifest, "--auto-approve")
    out = cli("report", camp.manifest, "--format", "csv").out
    assert out.splitlines()[0].startswith("number,name,status,failure")
    assert len(out.splitlines()) == 6
    write_csv(camp.csv, [("+49 30 12345678", "x")])
    assert cli("report", camp.manifest, "--format", "json").json["summary"]["recipients"] == 5  # records kept


def test_status_summary_and_one_recipient(make_campaign: Make, cli: Cli) -> None:
    camp = _campaign(make_campaign, "  - {type: file, path: r.json, when: manual}\n")
    cli("apply", camp.manifest, "--auto-approve")
    summary = cli("status", camp.manifest)
    assert summary.code == 0
    assert "failure class" in summary.out
    assert "invalid_number" in summary.out
    one = cli("status", camp.manifest, "+33 1 42 68 53 00")
    assert one.code == 0, one.err
    assert "+33142685300" in one.out
    assert "BUSY" in one.out
    assert "line busy" in one.out
    assert cli("status", camp.manifest, "+33142685300", "--json").json["attempts"][0]["failure"] == "busy"
    missing = cli("status", camp.manifest, "+49 30 9999999")
    assert missing.code == 1
    assert "no record" in missing.err


def test_email_over_starttls_with_login(
    make_campaign: Make, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ssl
    import subprocess

    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = tmp_path / "relay.pem", tmp_path / "relay.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=relay.test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"relay-pass")

    mailbox = _Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    try:
        monkeypatch.setenv("SMTP_USER", "faxops")
        monkeypatch.setenv("SMTP_PASSWORD", "relay-pass")
        camp = _campaign(
            make_campaign,
            "  - type: email\n    to: [ops@example.org]\n    from: faxops@example.org\n"
            f"    smtp: {{host: 127.0.0.1, port: {port}, ca_file: {cert}, username: '${{env:SMTP_USER}}', "
            "password: '${env:SMTP_PASSWORD}'}\n",
        )
        assert cli("apply", camp.manifest, "--auto-approve").code == 0
        result = cli("report", camp.manifest)
        assert result.code == 0, result.err
        assert logins == [(b"faxops", b"relay-pass")]
        assert len(mailbox.messages) == 1
        assert "relay-pass" not in result.out + result.err
        # without the CA the relay's certificate is refused: a warning, nothing sent
        camp.manifest.write_text(camp.manifest.read_text().replace(f"ca_file: {cert}, ", ""))
        refused = cli("report", camp.manifest)
        assert refused.code == 1
        assert "CERTIFICATE_VERIFY_FAILED" in refused.err
        assert len(mailbox.messages) == 1
    finally:
        controller.stop()
