"""The postgres writer's group commits: what it keeps in memory, and that it never overwrites a recorded attempt."""

from __future__ import annotations

import gc
import tracemalloc

import psycopg

from faxops.state.postgres import PgLocation, PostgresStore
from faxops.state.records import Event

AT = "2026-01-01T00:00:00.000Z"


def _store(url: str) -> PostgresStore:
    return PostgresStore(PgLocation(url), "q1")


def _intent(ref: str, numbers: list[str]) -> Event:
    return {"t": "intent", "ref": ref, "numbers": numbers, "provider": "sandbox", "at": AT}


def _accepted(ref: str, numbers: list[str], job_id: str) -> Event:
    return {"t": "accepted", "ref": ref, "numbers": numbers, "job_id": job_id, "at": AT}


def test_the_writer_keeps_no_memory_per_recipient_it_wrote(pg_url: str) -> None:
    # At 1,000,000 recipients a cache of what the writer had written held 200,000 records (~800 MB of RSS).
    writer = _store(pg_url).open_writer("apply")
    writer.state()

    def send(first: int, count: int) -> None:
        for start in range(first, first + count, 100):
            numbers = [f"+4930{i:07d}" for i in range(start, start + 100)]
            writer.record(_intent(f"r{start}", numbers))
            writer.record(_accepted(f"r{start}", numbers, f"J{start}"))

    send(0, 1_000)  # warm up: prepared statements, the driver's adapters
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        send(1_000, 5_000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    writer.close()
    # 5,000 records of ~300 bytes each would be 1.5 MB and more; what is left must not depend on their number.
    assert grown < 150_000, f"the writer kept {grown} bytes after writing 5,000 recipients"
    assert len(_store(pg_url).read().summaries) == 6_000


def test_a_second_intent_after_the_answer_keeps_the_first_attempt(pg_url: str) -> None:
    """The writer no longer holds an answered record, and the state it read does not name the number: it
    takes it for new, the table refuses, and the batch is written again from the stored record."""
    store = _store(pg_url)
    writer = store.open_writer("apply")
    assert writer.state().summaries == {}
    writer.record(_intent("r1", ["+4930123"]))
    writer.record(_accepted("r1", ["+4930123"], "J1"))
    writer.record({"t": "not_sent", "ref": "r0", "numbers": ["+4930999"], "reason": "x", "at": AT})
    writer.record(_intent("r2", ["+4930123", "+4930999"]))  # a retry in the same session, before any new read
    writer.record(_accepted("r2", ["+4930123", "+4930999"], "J2"))
    writer.close()
    records = dict(store.records())
    assert [a["job_id"] for a in records["+4930123"]["attempts"]] == ["J1", "J2"]
    assert [a["n"] for a in records["+4930123"]["attempts"]] == [1, 2]
    assert [a["job_id"] for a in records["+4930999"]["attempts"]] == ["J2"]
    with psycopg.connect(pg_url) as conn:
        seqs = [row[0] for row in conn.execute("SELECT seq FROM faxops.journal ORDER BY seq")]
    assert seqs == [1, 2, 3, 4, 5]  # the refused statement left no journal row behind; none is doubled


def test_a_number_the_state_names_is_read_before_it_is_changed(pg_url: str) -> None:
    store = _store(pg_url)
    with store.writer("apply") as first:
        first.record(_intent("r1", ["+4930123"]))
        first.record(_accepted("r1", ["+4930123"], "J1"))
    writer = store.open_writer("apply")
    assert set(writer.state().summaries) == {"+4930123"}
    writer.record(_intent("r2", ["+4930123"]))
    writer.close()
    attempts = dict(store.records())["+4930123"]["attempts"]
    assert [(a["n"], a.get("job_id"), a["status"]) for a in attempts] == [(1, "J1", "queued"), (2, None, "pending")]
