"""The CLI's contract with the terminal and with scripts: markup, exit codes by error type, the debug log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from faxops import __version__, clock
from faxops.commands import status as status_command
from faxops.errors import AuthError
from faxops.tracking import RefreshReport
from tests.conftest import CampaignDir, Result
from tests.test_schedule import _three_zone_campaign, utc

Cli = Callable[..., Result]
Make = Callable[..., CampaignDir]


def test_apply_planfile_with_a_deferred_recipient_prints_no_markup(
    make_campaign: Make, cli: Cli, manual_clock: clock.ManualClock, tmp_path: Path
) -> None:
    camp = _three_zone_campaign(make_campaign)
    manual_clock.set(utc(2026, 11, 23, 12, 0))  # Berlin's window is open; New York's and Tokyo's are not
    planfile = tmp_path / "reviewed.plan.json"
    assert cli("plan", camp.manifest, "--out", planfile).code == 0
    result = cli("apply", planfile)
    assert result.code == 0, result.err
    assert "2 deferred" in result.out
    for text in (result.out, result.err):
        for tag in ("[blue]", "[bold]", "[/]"):
            assert tag not in text, text


def test_an_unexpected_error_exits_70_and_logs_version_and_command(
    make_campaign: Make, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    camp = make_campaign()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(status_command, "status_row", broken)
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    result = cli("status", camp.manifest)
    assert result.code == 70
    assert "Internal error: RuntimeError: a bug" in result.err
    log = (tmp_path / "cache" / "faxops" / "debug.log").read_text()
    assert f"faxops {__version__}: faxops status {camp.manifest}" in log
    assert "RuntimeError: a bug" in log


@pytest.mark.parametrize("refused", [True, False])
def test_refresh_exit_code_follows_the_error_type_not_its_words(
    make_campaign: Make, cli: Cli, monkeypatch: pytest.MonkeyPatch, refused: bool
) -> None:
    camp = make_campaign()
    error = AuthError("bad key", provider="sandbox", http_status=401)
    # The words alone ("credentials") no longer decide: only a refusal carried as AuthError fails the run.
    report = RefreshReport(open=1, jobs=1, stopped="credentials refused: sandbox HTTP 401: bad key")
    report.refused = error if refused else None
    monkeypatch.setattr("faxops.tracking.refresh", lambda *args, **kwargs: report)
    result = cli("refresh", camp.manifest)
    assert result.code == (1 if refused else 0), result.err
    assert "credentials refused" in result.err


def test_rich_is_imported_only_by_the_output_package() -> None:
    import ast

    package = Path(__file__).resolve().parent.parent / "faxops"
    offenders = []
    for path in package.rglob("*.py"):
        if path.parent.name == "output":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            if any(n == "rich" or n.startswith("rich.") for n in names):
                offenders.append(f"{path.relative_to(package)}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "m.yaml"],
        ["plan", "m.yaml"],
        ["show", "p.json"],
        ["apply", "m.yaml"],
        ["status", "m.yaml"],
        ["reconcile", "m.yaml"],
        ["resolve", "m.yaml", "+4930123", "--not-sent"],
        ["refresh", "m.yaml"],
        ["cancel", "m.yaml", "--all"],
        ["report", "m.yaml"],
        ["webhook", "serve", "m.yaml"],
        ["suppress", "add", "+4930123", "--reason", "asked"],
        ["force-unlock", "m.yaml", "id"],
        ["schema"],
        ["fmt", "--check"],
        ["init", "new-campaign"],
        ["simulate", "retarus"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_every_command_gets_its_typed_arguments_from_the_parser(argv: list[str]) -> None:
    from faxops import cli
    from faxops.arguments import build_parser

    namespace = build_parser().parse_args(argv)
    name = cli._command_name(namespace)
    assert name in cli._COMMANDS
    # Every field of the command's dataclass is an option of its parser (a misspelt one would be exit 70).
    arguments = cli._COMMANDS[name].arguments(namespace)
    assert is_dataclass(arguments)
    assert {f.name for f in fields(arguments)} <= set(vars(namespace))
