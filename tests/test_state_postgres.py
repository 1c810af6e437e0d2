"""The postgres state backend against a real server: journal, current records, lock, faults."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import orjson
import psycopg
import pytest

from faxops.errors import JournalWriteError, StateError, StateLockedError
from faxops.state import LocalStore, StatePaths
from faxops.state.moving import migrate, pull
from faxops.state.pg_schema import SCHEMA_VERSION
from faxops.state.pg_writer import PostgresWriter
from faxops.state.postgres import PgLocation, PostgresStore, ci_run_url


def _store(url: str, campaign: str = "q1") -> PostgresStore:
    return PostgresStore(PgLocation(url), campaign)


def _intent(ref: str, number: str) -> dict[str, object]:
    return {"t": "intent", "ref": ref, "numbers": [number], "provider": "sandbox", "at": "2026-01-01T00:00:00.000Z"}


def test_a_reader_of_an_empty_database_sees_no_state_and_creates_nothing(pg_url: str) -> None:
    store = _store(pg_url)
    assert store.read().header is None
    assert list(store.records()) == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'faxops'").fetchone() == (0,)


def test_events_fold_into_one_current_record_per_recipient(pg_url: str) -> None:
    store = _store(pg_url)
    writer = store.open_writer("apply")
    writer.record(_intent("r1", "+4930123"))
    writer.record({"t": "accepted", "ref": "r1", "numbers": ["+4930123"], "job_id": "J1", "at": "2026-01-01T00:00:01Z"})
    writer.record(_intent("r2", "+4930124"))
    header = writer.close()
    assert header is not None
    assert header.serial == 1
    assert header.journal_seq == 3
    state = store.read()
    assert state.summaries["+4930123"].status == "queued"
    assert state.summaries["+4930124"].status == "pending"
    records = dict(store.records())
    assert records["+4930123"]["attempts"][0]["job_id"] == "J1"
    assert list(records) == sorted(records)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM faxops.journal").fetchone() == (3,)
        assert conn.execute("SELECT max(version) FROM faxops.schema_version").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute("SELECT count(*) FROM faxops.locks").fetchone() == (0,)


def test_group_commit_keeps_every_event_of_concurrent_senders(pg_url: str) -> None:
    store = _store(pg_url)
    writer = store.open_writer("apply")
    seqs: list[int] = []

    def send(i: int) -> None:
        seqs.append(writer.record(_intent(f"r{i}", f"+49301{i:05d}")))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    assert sorted(seqs) == list(range(1, 201))
    assert len(store.read().summaries) == 200
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT xmin::text) FROM faxops.journal").fetchone()
        assert row is not None
        assert row[0] == 200
        assert row[1] < 200


def test_a_second_writer_is_refused_naming_the_holder_and_force_unlock_ends_the_holder(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/faxes")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    store = _store(pg_url)
    first = store.open_writer("apply")
    with pytest.raises(StateLockedError) as caught:
        store.open_writer("apply", lock_timeout=0.3)
    assert "apply by" in caught.value.message
    assert "actions/runs/42" in caught.value.message
    info, held = store.lock_state()
    assert held
    assert info is not None
    assert first.lock.info is not None
    assert info.id == first.lock.info.id
    released = store.force_unlock(info.id)
    assert released.id == info.id
    with pytest.raises(JournalWriteError):
        first.record(_intent("r1", "+4930123"))  # the ended holder can record no intent, so sends nothing
    first.abandon()
    second = store.open_writer("apply")
    assert second.lock.stale is None  # force-unlock removed the row
    second.close()
    assert store.lock_state() == (None, False)


def test_a_killed_holder_leaves_a_stale_row_and_a_free_lock(pg_url: str) -> None:
    store = _store(pg_url)
    first = store.open_writer("apply")
    first.abandon()  # the connection ends without the clean release (as a killed process's does)
    # The server ends the closed connection's backend, and so frees its lock, a moment after the close.
    deadline = time.monotonic() + 10
    info, held = store.lock_state()
    while held and time.monotonic() < deadline:
        time.sleep(0.05)
        info, held = store.lock_state()
    assert info is not None
    assert not held
    second = store.open_writer("apply")
    assert second.lock.stale is not None
    assert second.lock.stale.id == info.id
    second.close()
    with pytest.raises(StateError, match="no lock is recorded"):
        store.force_unlock(info.id)


def test_terminating_the_writers_connection_stops_recording(pg_url: str) -> None:
    store = _store(pg_url)
    writer = store.open_writer("apply")
    writer.record(_intent("r1", "+4930123"))
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'faxops'")
    with pytest.raises(JournalWriteError, match="cannot be written"):
        writer.record(_intent("r2", "+4930124"))
    with pytest.raises(JournalWriteError):
        writer.record(_intent("r3", "+4930125"))
    writer.abandon()
    assert set(store.read().summaries) == {"+4930123"}


def test_unreachable_database_names_host_and_port_never_the_password() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = _store(f"postgresql://faxops:Sup3rSecretPw@127.0.0.1:{port}/db")
    with pytest.raises(StateError) as caught:
        store.open_writer("apply")
    assert f"127.0.0.1:{port}/db" in caught.value.message
    assert "Sup3rSecretPw" not in caught.value.message


def test_a_newer_schema_version_is_refused(pg_url: str) -> None:
    store = _store(pg_url)
    store.open_writer("apply").close()
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO faxops.schema_version (version, faxops) VALUES (99, 'future')")
    with pytest.raises(StateError, match="schema version 99"):
        store.read()
    with pytest.raises(StateError, match="schema version 99"):
        store.open_writer("apply")


def test_ci_run_url() -> None:
    env = {"GITHUB_SERVER_URL": "https://ghe.example", "GITHUB_REPOSITORY": "a/b", "GITHUB_RUN_ID": "7"}
    assert ci_run_url(env) == "https://ghe.example/a/b/actions/runs/7"
    assert ci_run_url({"CI_JOB_URL": "https://gitlab.example/a/-/jobs/9"}) == "https://gitlab.example/a/-/jobs/9"
    assert ci_run_url({}) is None


def _local_campaign(tmp_path: Path) -> LocalStore:
    store = LocalStore(StatePaths.for_manifest(tmp_path / "q1.yaml"), "q1")
    writer = store.open_writer("apply")
    writer.record(_intent("r1", "+4930123"))
    writer.record({"t": "accepted", "ref": "r1", "numbers": ["+4930123"], "job_id": "J1", "at": "2026-01-01T00:00:01Z"})
    writer.record(_intent("r2", "+4930124"))
    writer.record({"t": "unknown", "ref": "r2", "numbers": ["+4930124"], "reason": "timeout", "at": "2026-01-01T0:02Z"})
    writer.record(_intent("r3", "+4930125"))
    writer.record({"t": "unknown", "ref": "r3", "numbers": ["+4930125"], "reason": "timeout", "at": "2026-01-01T0:02Z"})
    writer.record(
        {"t": "resolve", "ref": "r3", "number": "+4930125", "sent": "J3", "job_id": "J3", "by": "ops@h", "at": "x"}
    )
    writer.close({"manifest": "sha256:abc"})
    return store


def test_migrate_local_to_postgres_to_local_gives_the_same_lockfile(tmp_path: Path, pg_url: str) -> None:
    local = _local_campaign(tmp_path)
    before = local.paths.lockfile.read_bytes()
    remote = _store(pg_url)
    header, count = migrate(local, remote)
    assert count == 3
    assert header.audit
    assert header.serial == 1
    assert remote.read().summaries["+4930124"].status == "pending"  # the unknown outcome moved as one
    pulled = io.BytesIO()
    pull(remote, pulled)
    assert pulled.getvalue() == before

    back = LocalStore(StatePaths.for_manifest(tmp_path / "back" / "q1.yaml"), "q1")
    back.paths.lockfile.parent.mkdir()
    migrate(remote, back)
    assert back.paths.lockfile.read_bytes() == before

    # the same history moved again is fine; another history of the campaign is refused
    migrate(local, remote)
    other = LocalStore(StatePaths.for_manifest(tmp_path / "other" / "q1.yaml"), "q1")
    other.paths.lockfile.parent.mkdir()
    w = other.open_writer("apply")
    w.record(_intent("r9", "+4930999"))
    w.close()
    with pytest.raises(StateError, match="another lineage"):
        migrate(other, remote)
    assert remote.header() == header


def test_migrate_refuses_to_overwrite_a_newer_state(tmp_path: Path, pg_url: str) -> None:
    local = _local_campaign(tmp_path)
    remote = _store(pg_url)
    migrate(local, remote)
    writer = remote.open_writer("apply")
    writer.record(_intent("r4", "+4930126"))
    writer.close()
    with pytest.raises(StateError, match="newer state"):
        migrate(local, remote)
    assert "+4930126" in remote.read().summaries


def test_summaries_the_server_counts_are_the_ones_the_records_give(pg_url: str) -> None:
    """A plan's summaries from PostgreSQL: settled records are counted by the server (COPY lines), the rest
    fetched whole; every summary must be what the record itself says, whichever way it came."""
    from faxops.state.lockfile import Header
    from faxops.state.pg_schema import migrate as migrate_schema
    from faxops.state.records import attempts_of_raw, summarise, summarise_raw

    def attempt(n: int, status: str, **more: object) -> dict[str, object]:
        return {"n": n, "ref": f"r{n}", "status": status, "at": "2026-01-01T00:00:00.000Z", **more}

    records: dict[str, dict[str, object]] = {
        "+4930100": {"attempts": [attempt(1, "delivered")], "status": "delivered"},
        "+4930101": {"attempts": [attempt(1, "failed"), attempt(2, "delivered")], "status": "delivered"},
        "+4930102": {"attempts": [attempt(1, "not_sent"), attempt(2, "queued")], "status": "queued"},
        "+4930103": {"attempts": [attempt(1, "sending", job_id='J "n": 9')], "status": "sending"},
        "+4930104": {
            "attempts": [attempt(1, "failed", reason="busy", retryable=True)],
            "status": "failed",
            "updated_at": "2026-01-01T00:00:00.000Z",
        },
        "+4930105": {"attempts": [attempt(1, "pending")], "status": "pending"},
        "+4930106": {"attempts": [attempt(1, "delivered")], "status": "delivered"},  # wanted in detail
        "+49\\30\t107": {"attempts": [attempt(1, "delivered")], "status": "delivered"},  # edited by hand, migrated
    }
    store = _store(pg_url)
    writer = store.open_writer("state migrate")
    assert isinstance(writer, PostgresWriter)
    writer.load(Header(lineage="l1", serial=1, campaign="q1"), sorted(records.items()))
    writer.close()

    def expected(record: dict[str, object], whole: bool) -> object:
        raw = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        return summarise(record) if whole else (summarise_raw(raw) or summarise(record))

    state = store.read(detail={"+4930106"})
    assert state.summaries == {n: expected(r, n == "+4930106") for n, r in records.items()}
    assert state.summaries["+4930101"].attempts == 2
    assert state.summaries["+4930102"].attempts == 1  # an attempt that never left does not count
    assert state.summaries["+4930103"].attempts == 1  # "n": inside a string is escaped, not counted

    # A database of schema version 2 had no attempts column: the migration counts them on the server, as
    # the writers do; a row still without a count is fetched whole.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE faxops.records SET attempts = NULL")
        assert store.read().summaries == {n: summarise(r) for n, r in records.items()}
        conn.execute("DELETE FROM faxops.schema_version WHERE version = 3")
        assert migrate_schema(conn, "faxops", "test") == 2
        counted: dict[str, int] = dict(conn.execute("SELECT number, attempts FROM faxops.records").fetchall())
    assert counted == {n: attempts_of_raw(orjson.dumps(r, option=orjson.OPT_SORT_KEYS)) for n, r in records.items()}
    assert store.read(detail={"+4930106"}).summaries == state.summaries
