"""`faxops init DIR`: a campaign folder a person can start from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from faxops.manifest import SCHEMA_URL, load_manifest
from faxops.providers import REGISTRY
from faxops.scaffold import GITIGNORE
from tests.conftest import Result

Cli = Callable[..., Result]
ROOT = Path(__file__).resolve().parent.parent


def test_init_then_plan(tmp_path: Path, cli: Cli) -> None:
    folder = tmp_path / "spring-mailing"
    result = cli("init", folder)
    assert result.code == 0, result.err
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == [
        ".github/workflows/faxops.yml",
        ".gitignore",
        "campaign.yaml",
        "documents/letter.pdf",
        "recipients.csv",
        "suppress.csv",
    ]
    manifest = folder / "campaign.yaml"
    assert manifest.read_text().splitlines()[0] == f"# yaml-language-server: $schema={SCHEMA_URL}"
    assert load_manifest(manifest).name == "spring-mailing"
    assert (folder / "recipients.csv").read_text() == "number,name\n"
    # Until the list has a recipient, validate says so (file:line: field: message), and nothing else.
    empty = cli("validate", manifest)
    assert empty.code == 1
    assert "recipients: the recipient list has no valid number" in empty.err
    with (folder / "recipients.csv").open("a") as fh:
        fh.write("+49 30 12345678,Kanzlei Berger\n")
    with (folder / "suppress.csv").open("a") as fh:
        fh.write("+44 20 7946 0456,asked by phone\n")
    assert cli("validate", manifest).code == 0
    plan = cli("plan", manifest)
    assert plan.code == 0
    assert "Plan: 1 to send" in plan.out
    assert cli("fmt", "--check", manifest).code == 0  # init writes the canonical layout


def test_gitignore_keeps_local_state_out(tmp_path: Path, cli: Cli) -> None:
    assert cli("init", tmp_path / "c", "--ci", "none").code == 0
    ignored = (tmp_path / "c" / ".gitignore").read_text().splitlines()
    for pattern in (".faxops/", "*.journal", ".*.state-lock", "*.inbox", "*.plan.json", "reports/"):
        assert pattern in ignored
    assert not any(line.endswith(".lock.json") for line in ignored)  # the lockfile belongs in Git
    assert (ROOT / "campaigns" / ".gitignore").read_text().splitlines()[3:] == GITIGNORE.splitlines()[3:]


@pytest.mark.parametrize("provider", sorted(REGISTRY))
def test_every_provider_gives_a_manifest_that_loads(tmp_path: Path, cli: Cli, provider: str) -> None:
    assert cli("init", tmp_path / provider, "--provider", provider, "--ci", "gitlab").code == 0
    loaded = load_manifest(tmp_path / provider / "campaign.yaml")
    assert loaded.model.provider.type == provider
    text = (tmp_path / provider / "campaign.yaml").read_text()
    assert "${env:" in text or provider == "sandbox"  # credentials are references, never values
    assert (tmp_path / provider / ".gitlab-ci.yml").is_file()


def test_init_never_overwrites(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "campaign.yaml").write_text("mine\n")
    result = cli("init", tmp_path)
    assert result.code == 1
    assert "never overwrites" in result.err
    assert (tmp_path / "campaign.yaml").read_text() == "mine\n"
    assert not (tmp_path / "recipients.csv").exists()
    unknown = cli("init", tmp_path / "x", "--provider", "telex")
    assert unknown.code == 1
    assert "unknown provider type 'telex'" in unknown.err
