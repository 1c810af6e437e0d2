"""The postgres backend through the CLI, as a team would use it: manifests pointing at one database."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from faxops.state.pg_schema import SCHEMA_VERSION
from tests.conftest import MANIFEST, CampaignDir, Result

Cli = Callable[..., Result]
Make = Callable[..., CampaignDir]

STATE_BLOCK = "state: {backend: postgres, url: '${env:FAXOPS_DATABASE_URL}'}\n"


def _password(url: str) -> str:
    return url.split(":")[2].split("@")[0]


@pytest.fixture
def pg_campaign(make_campaign: Make, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> CampaignDir:
    monkeypatch.setenv("FAXOPS_DATABASE_URL", pg_url)
    monkeypatch.delenv("FAXOPS_STATE_URL", raising=False)
    return make_campaign(manifest=MANIFEST.format(outcomes="{}", latency="0s") + STATE_BLOCK)


def test_plan_apply_status_pull_on_postgres_leave_no_state_files(
    pg_campaign: CampaignDir, cli: Cli, pg_url: str
) -> None:
    camp = pg_campaign
    assert cli("plan", camp.manifest, "--detailed-exitcode").code == 2
    applied = cli("apply", camp.manifest, "--auto-approve")
    assert applied.code == 0, applied.err
    assert "State saved to postgres://127.0.0.1:" in applied.out + applied.err
    assert len(camp.sent_numbers()) == 5
    assert not camp.lockfile.exists()
    assert not camp.journal.exists()
    assert not list(camp.root.glob(".*.state-lock"))
    assert cli("plan", camp.manifest, "--detailed-exitcode").code == 0
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert len(camp.sent_numbers()) == 5  # the second apply sent nothing
    status = cli("status", camp.manifest, "--json")
    assert status.json["counts"] == {"delivered": 5}
    pulled = cli("state", "pull", camp.manifest)
    doc = json.loads(pulled.out)
    assert doc["campaign"] == "test-campaign"
    assert doc["serial"] == 1
    assert len(doc["recipients"]) == 5
    listed = cli("state", "list", pg_url, "--json")
    assert listed.json[0]["counts"] == {"delivered": 5}
    assert listed.json[0]["lock"] is None
    for result in (applied, status, pulled, listed):
        assert _password(pg_url) not in result.out + result.err


def test_the_state_url_in_the_environment_overrides_the_manifest(
    make_campaign: Make, cli: Cli, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    camp = make_campaign()
    monkeypatch.setenv("FAXOPS_STATE_URL", pg_url)
    assert cli("apply", camp.manifest, "--auto-approve").code == 0
    assert not camp.lockfile.exists()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM faxops.records").fetchone() == (5,)


def test_a_saved_plan_applies_on_another_machine_and_goes_stale_when_the_state_moves(
    pg_campaign: CampaignDir, cli: Cli, tmp_path: Path
) -> None:
    camp = pg_campaign
    plan_file = camp.root / "campaign.tfplan"
    assert cli("plan", camp.manifest, "--out", plan_file).code == 0
    other = tmp_path.parent / f"{tmp_path.name}-other"
    shutil.copytree(camp.root, other)  # the second machine's checkout, same database
    stale_plan = other / "stale.tfplan"
    assert cli("plan", other / "campaign.yaml", "--out", stale_plan).code == 0
    applied = cli("apply", other / "campaign.tfplan")
    assert applied.code == 0, applied.err
    assert len(CampaignDir(other).sent_numbers()) == 5
    again = cli("apply", plan_file)  # the state changed since this plan was made
    assert again.code == 4, again.err
    assert camp.sent_numbers() == []


def test_a_database_that_cannot_be_reached_is_a_clear_error_and_nothing_is_sent(
    make_campaign: Make, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("FAXOPS_DATABASE_URL", f"postgresql://faxops:N0tThisOne-pw@127.0.0.1:{port}/faxops")
    camp = make_campaign(manifest=MANIFEST.format(outcomes="{}", latency="0s") + STATE_BLOCK)
    result = cli("apply", camp.manifest, "--auto-approve")
    assert result.code == 1
    assert f"127.0.0.1:{port}/faxops" in result.err
    assert "N0tThisOne-pw" not in result.out + result.err
    assert "Traceback" not in result.err
    assert camp.sent_numbers() == []


def test_a_read_only_or_forbidden_database_is_a_clear_error(
    pg_campaign: CampaignDir, cli: Cli, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    camp = pg_campaign
    assert cli("state", "init", pg_url).code == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE ROLE reader LOGIN PASSWORD 'reader-pw-123'")
        conn.execute("GRANT USAGE ON SCHEMA faxops TO reader")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA faxops TO reader")
    forbidden = pg_url.replace(f"faxops:{_password(pg_url)}@", "reader:reader-pw-123@")
    monkeypatch.setenv("FAXOPS_DATABASE_URL", forbidden)
    result = cli("apply", camp.manifest, "--auto-approve")
    assert result.code == 1
    assert "refused" in result.err
    assert "reader-pw-123" not in result.err
    assert camp.sent_numbers() == []
    assert cli("plan", camp.manifest, "--detailed-exitcode").code == 2  # reading needs no more than SELECT

    monkeypatch.setenv("FAXOPS_DATABASE_URL", pg_url + "?options=-c%20default_transaction_read_only%3Don")
    result = cli("apply", camp.manifest, "--auto-approve")
    assert result.code == 1
    assert "read-only" in result.err
    assert camp.sent_numbers() == []


def test_a_second_apply_is_refused_naming_the_holder_and_force_unlock_says_when_it_is_not_needed(
    pg_campaign: CampaignDir, cli: Cli, pg_url: str
) -> None:
    from faxops.state.postgres import PgLocation, PostgresStore

    camp = pg_campaign
    holder = PostgresStore(PgLocation(pg_url), "test-campaign").open_writer("apply")
    result = cli("apply", camp.manifest, "--auto-approve")
    assert result.code == 3
    assert "apply by" in result.err
    assert camp.sent_numbers() == []
    assert holder.lock.info is not None
    lock_id = holder.lock.info.id
    holder.abandon()  # its connection ends: the server frees the lock; the holder row stays
    listed = cli("state", "list", pg_url)
    assert "left by a holder that ended" in listed.out
    freed = cli("force-unlock", camp.manifest, lock_id)
    assert freed.code == 0
    assert "not needed" in freed.out
    assert cli("apply", camp.manifest, "--auto-approve").code == 0


def test_migrate_through_the_cli_both_ways(
    make_campaign: Make, cli: Cli, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    camp = make_campaign(outcomes={"+493012345678": "busy"})
    monkeypatch.delenv("FAXOPS_STATE_URL", raising=False)
    assert cli("apply", camp.manifest, "--auto-approve").code in (0, 1)
    before = camp.lockfile.read_bytes()
    moved = cli("state", "migrate", camp.manifest, "--to", pg_url)
    assert moved.code == 0, moved.err
    assert _password(pg_url) not in moved.out + moved.err
    monkeypatch.setenv("FAXOPS_STATE_URL", pg_url)
    assert cli("state", "pull", camp.manifest).out.encode() == before
    camp.lockfile.unlink()
    back = cli("state", "migrate", camp.manifest, "--to", "local")
    assert back.code == 0, back.err
    assert camp.lockfile.read_bytes() == before


def test_state_init_creates_the_tables_once(cli: Cli, pg_url: str) -> None:
    first = cli("state", "init", pg_url)
    assert first.code == 0
    assert f"created at schema version {SCHEMA_VERSION}" in first.out
    assert f"already at schema version {SCHEMA_VERSION}" in cli("state", "init", pg_url).out
    assert cli("state", "list", pg_url).out.startswith("No campaigns")
