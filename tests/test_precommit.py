"""`.pre-commit-hooks.yaml`, run by the real pre-commit (`pre-commit try-repo`) on a temporary Git repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD = """\
campaign:
  name: hooked
sender:
  header: Hooked GmbH
documents:
  - letter.pdf
recipients:
  inline:
    - number: "+493012345678"
"""


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd, check=True, capture_output=True
    )


@pytest.fixture(scope="session")
def hooks_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout as it is now (uncommitted work included), committed once: one hook environment for all tests."""
    shadow = tmp_path_factory.mktemp("faxops-repo")
    files = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (shadow / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, shadow / name)
    _git(shadow, "init", "-q")
    _git(shadow, "add", "-A")
    _git(shadow, "commit", "-q", "-m", "snapshot")
    return shadow


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's repository with a campaign in it."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "campaigns" / "example" / "documents" / "price-list.pdf", project / "letter.pdf")
    (project / "good.yaml").write_text(GOOD)
    (project / "compose.yaml").write_text("services:\n    web: {image: nginx}\n")  # not a manifest
    _git(project, "init", "-q")
    return project


def _try_repo(hooks_repo: Path, project: Path, *files: str) -> subprocess.CompletedProcess[str]:
    """Both hooks, as `pre-commit try-repo` runs them (it builds their environment anew each time: ~30 s)."""
    env = {**os.environ, "PRE_COMMIT_COLOR": "never", "PRE_COMMIT_HOME": str(project.parent / "pre-commit-home")}
    _git(project, "add", "-A")
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(hooks_repo), "--ref", "HEAD", "--files", *files],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_hooks_pass_a_good_manifest_and_stop_a_bad_one(hooks_repo: Path, project: Path) -> None:
    good = _try_repo(hooks_repo, project, "good.yaml", "compose.yaml")
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.count("Passed") == 2  # faxops validate and faxops fmt
    (project / "bad.yaml").write_text(GOOD.replace("hooked", "bad name!"))
    (project / "messy.yaml").write_text(
        "documents: [letter.pdf]\ncampaign: {name: messy}\nrecipients:\n  inline:\n  - number: +493012345678\n"
    )
    bad = _try_repo(hooks_repo, project, "good.yaml", "bad.yaml", "messy.yaml", "compose.yaml")
    assert bad.returncode == 1
    fmt, validate = bad.stdout.split("faxops validate.", 1)  # pre-commit runs them by id: fmt, then validate
    # validate: the bad manifest, located; the good one and the compose file are not reported.
    assert "Failed" in validate
    assert "bad.yaml:2:3: " in validate
    assert "campaign.name: String should match pattern" in validate
    assert "✓ good.yaml: campaign hooked is valid" in validate
    # fmt: pre-commit fails a hook that changed files, so that the person reviews the change.
    assert "files were modified by this hook" in fmt
    assert (project / "messy.yaml").read_text() == (
        'campaign: {name: messy}\ndocuments: [letter.pdf]\nrecipients:\n  inline:\n    - number: "+493012345678"\n'
    )
    assert (project / "compose.yaml").read_text() == "services:\n    web: {image: nginx}\n"
    assert (project / "good.yaml").read_text() == GOOD
