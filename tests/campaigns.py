"""Campaigns on an HTTP provider simulator, for end-to-end tests of tracking, webhooks and reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from faxops.testing import Simulator
from faxops.testing.server import QUEUED_FOR, SENDING_FOR
from tests.conftest import write_csv, write_pdf
from tests.test_provider_battery import Case

DONE = QUEUED_FOR + SENDING_FOR + 1
BUSY, INVALID, FINE = "+33142685300", "+442079460123", "+493012345678"


class HttpCampaign:
    def __init__(self, root: Path, case: Case, sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root, self.case, self.sim = root, case, sim
        for key, value in case.env.items():
            monkeypatch.setenv(key, value)
        write_pdf(root / "letter.pdf", 1)
        write_csv(root / "list.csv", [(FINE, "Fine GmbH"), (BUSY, "Busy SARL"), (INVALID, "Gone Ltd")])
        self.write()

    @property
    def manifest(self) -> Path:
        return self.root / "campaign.yaml"

    def write(self, extra: str = "") -> None:
        provider = {"type": self.case.type, **self.case.settings(self.sim), "max_retries": 0}
        self.manifest.write_text(
            "campaign: {name: tracked}\n"
            f"provider: {json.dumps(provider)}\n"
            "sender: {number: '+493012340000', header: 'Nordwind Medical'}\n"
            "documents: [letter.pdf]\n"
            "recipients: {files: [{path: list.csv, columns: {number: fax, name: company}}]}\n" + extra
        )

    def lock_data(self) -> Any:
        return json.loads((self.root / "campaign.lock.json").read_text())

    def status(self, cli: Any) -> dict[str, Any]:
        doc = cli("status", self.manifest, "--json").json
        return {r["number"]: r for r in doc["recipients"]}
