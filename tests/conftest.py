"""Shared fixtures: temporary campaigns built the way a user would write them, and a CLI runner."""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfWriter

from faxops import clock
from faxops.cli import main

DEFAULT_ROWS = [
    ("+49 30 12345678", "Kanzlei Berger"),
    ("+33 1 42 68 53 00", "Cabinet Lemaire"),
    ("+44 20 7946 0123", "Harrow & Finch"),
    ("+1 202 555 0123", "Capitol Title"),
    ("030 90182000", "Praxis Mitte"),
]


def write_pdf(path: Path, pages: int = 2) -> Path:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def write_csv(path: Path, rows: list[tuple[str, str]], header: str = "fax,company") -> Path:
    lines = [header] + [f"{n},{c}" for n, c in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class CampaignDir:
    """A campaign directory with a manifest, a PDF and a CSV list."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "campaign.yaml"

    @property
    def lockfile(self) -> Path:
        return self.root / "campaign.lock.json"

    @property
    def journal(self) -> Path:
        return self.root / "campaign.journal"

    @property
    def csv(self) -> Path:
        return self.root / "recipients.csv"

    @property
    def sent_log(self) -> Path:
        return self.root / ".faxops" / "sandbox" / "sent.jsonl"

    def sent(self) -> list[dict[str, object]]:
        if not self.sent_log.exists():
            return []
        return [json.loads(line) for line in self.sent_log.read_text().splitlines()]

    def sent_numbers(self) -> list[str]:
        return sorted(str(r["number"]) for r in self.sent())

    def lock_data(self) -> Any:
        return json.loads(self.lockfile.read_text())

    def write_manifest(self, text: str) -> Path:
        self.manifest.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return self.manifest


MANIFEST = """
campaign:
  name: test-campaign
provider:
  type: sandbox
  outcomes: {outcomes}
  latency: {latency}
documents:
  - letter.pdf
recipients:
  default_region: DE
  files:
    - path: recipients.csv
      columns: {{number: fax, name: company}}
retry:
  max_attempts: 3
"""


@pytest.fixture
def make_campaign(tmp_path: Path) -> Callable[..., CampaignDir]:
    def make(
        rows: list[tuple[str, str]] | None = None,
        *,
        outcomes: dict[str, str] | None = None,
        latency: str = "0s",
        manifest: str | None = None,
    ) -> CampaignDir:
        camp = CampaignDir(tmp_path)
        write_pdf(tmp_path / "letter.pdf", pages=2)
        write_csv(camp.csv, DEFAULT_ROWS if rows is None else rows)
        text = manifest or MANIFEST.format(outcomes=json.dumps(outcomes or {}), latency=latency)
        camp.write_manifest(text)
        return camp

    return make


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run ``faxops ARGS`` in-process, as a user would from a shell without a terminal."""

    def run(*args: object, stdin: str = "") -> Result:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def manual_clock(monkeypatch: pytest.MonkeyPatch) -> clock.ManualClock:
    """faxops' clock, moved by the test (it starts at the real now: simulators keep real time)."""
    fake = clock.ManualClock(clock.Clock().now())
    monkeypatch.setattr(clock, "CLOCK", fake)
    return fake


@pytest.fixture(autouse=True)
def _private_global_list(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tests never read the machine's global suppression list; each gets its own (empty) one."""
    path = tmp_path_factory.mktemp("global") / "suppress.csv"
    monkeypatch.setenv("FAXOPS_SUPPRESSION_LIST", str(path))
    return path


@pytest.fixture(autouse=True)
def _not_in_automation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite runs as a person would, also on a CI runner (which sets CI); automation tests set it back."""
    for key in ("CI", "FAXOPS_IN_AUTOMATION", "GITHUB_ACTIONS", "GITLAB_CI"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def http_campaign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Any]]:
    """A campaign of three recipients on a provider simulator (see ``tests/campaigns.py``)."""
    from faxops.testing import SIMULATORS, Simulator
    from tests.campaigns import HttpCampaign
    from tests.test_provider_battery import CASES

    sims: list[Simulator] = []
    by_type = {c.type: c for c in CASES}

    def make(kind: str) -> HttpCampaign:
        sim = SIMULATORS[kind]().start()
        sims.append(sim)
        return HttpCampaign(tmp_path, by_type[kind], sim, monkeypatch)

    yield make
    for sim in sims:
        sim.stop()


from tests.pgserver import pg_server, pg_url  # noqa: E402, F401  (fixtures shared by the postgres tests)


@pytest.fixture(params=["local", "postgres"])
def state_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on both state backends: postgres through FAXOPS_STATE_URL, as CI would point at it."""
    if request.param == "postgres":
        monkeypatch.setenv("FAXOPS_STATE_URL", request.getfixturevalue("pg_url"))
    else:
        monkeypatch.delenv("FAXOPS_STATE_URL", raising=False)
    return str(request.param)
