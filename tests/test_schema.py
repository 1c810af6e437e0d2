"""The committed JSON Schema, checked by a real validator that checks formats, as editors use it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "schemas" / "campaign.schema.json"
CHECK = Path(sys.executable).parent / "check-jsonschema"

BASE = """\
campaign: {name: demo}
provider: {type: sandbox}
documents: [letter.pdf]
recipients: {inline: [{number: '+493012345678'}]}
"""


def _check(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK), "--schemafile", str(SCHEMA), *map(str, files)], capture_output=True, text=True, check=False
    )


def test_every_example_manifest_passes_the_committed_schema() -> None:
    examples = sorted((REPO / "campaigns").glob("*.yaml"))
    assert len(examples) >= 5
    result = _check(*examples)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_accepts_the_times_the_readme_documents(tmp_path: Path) -> None:
    manifest = tmp_path / "c.yaml"
    manifest.write_text(
        BASE + "schedule:\n"
        "  start_at: '2026-12-01T09:00:00'\n"  # no offset: read in schedule.timezone
        "  expire_at: '2026-12-03 18:00'\n"
        "  timezone: Europe/Berlin\n"
        "  windows: [{days: [mon], start: '09:00', end: '17:30:00'}]\n"
        "  holidays: ['2026-12-25']\n"
    )
    result = _check(manifest)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("schedule", "where"),
    [
        ("windows: [{start: '25:00'}]", "start"),
        ("windows: [{end: '9 am'}]", "end"),
        ("start_at: tomorrow", "start_at"),
        ("start_at: '2026-13-01T09:00'", "start_at"),
        ("holidays: ['2026-02-30']", "holidays"),  # format: date, checked only by a format-checking validator
    ],
)
def test_the_schema_still_rejects_bad_times(tmp_path: Path, schedule: str, where: str) -> None:
    manifest = tmp_path / "c.yaml"
    manifest.write_text(BASE + "schedule: {" + schedule + "}\n")
    result = _check(manifest)
    assert result.returncode == 1, result.stdout
    assert where in result.stdout
